package badinput

import (
	"os"
	"strings"
	"testing"
)

// loadErr is what cdcd run and cdcd check print after "cdcd: " for the
// case's configuration file as it stands: config.Load's error, with the
// file's path written as CONFIG.
func (f *fixture) loadErr() string {
	f.t.Helper()
	_, err := f.run()
	if err == nil {
		f.t.Fatal("cdcd run started with a bad configuration")
	}
	return strings.ReplaceAll(err.Error(), f.config, "CONFIG")
}

// edit replaces old with new in the case's configuration file.
func (f *fixture) edit(old, new string) {
	f.t.Helper()
	b, err := os.ReadFile(f.config)
	if err != nil {
		f.t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		f.t.Fatalf("configuration has no %q", old)
	}
	f.write(strings.Replace(string(b), old, new, 1))
}

func wantErr(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("error:\n  got  %q\n  want %q", got, want)
	}
}

// TestMalformedTOML: a file that is not TOML names the line and column.
func TestMalformedTOML(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noKinesis: true})
	f.edit(`tables = ["public.t"]`, `tables = ["public.t"`)
	wantErr(t, f.loadErr(), "?")
}

// TestUnknownKey: a misspelt key is refused, not ignored.
func TestUnknownKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noKinesis: true, stream: `set_replica_identity = true`})
	wantErr(t, f.loadErr(), "?")
}

// TestWrongValueTypes: a value of the wrong type names the key and the
// type it needs, and every bad value is named at once.
func TestWrongValueTypes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noKinesis: true})
	f.edit(`tables = ["public.t"]`, `tables = "public.t"`)
	wantErr(t, f.loadErr(), "?")
}

// TestBadValues: values of the right type that cdcd cannot use are all
// named at once, each with its key.
func TestBadValues(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noKinesis: true})
	f.edit(`linger = "5ms"`, `linger = "5 ms"`)
	wantErr(t, f.loadErr(), "?")
}

// TestBadRoleARN: a role ARN that is not one is refused before anything
// starts.
func TestBadRoleARN(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noKinesis: true, target: `role_arn = "arn:aws:iam::12345:role/cdcd"
external_id = "x-1"`})
	wantErr(t, f.loadErr(), "?")
}

// TestBadKeyARN: a cluster key ARN that is not one is refused before
// anything starts.
func TestBadKeyARN(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noKinesis: true, cluster: `cluster_key_arn = "arn:aws:kms:us-east-1:000000000000:alias/cdcd"`})
	wantErr(t, f.loadErr(), "?")
}

// TestRoleNotAllowed: a role outside aws.role_arn_allow is refused.
func TestRoleNotAllowed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{aws: `role_arn_allow = ["arn:aws:iam::000000000000:role/cdcd-*"]`,
		target: `role_arn = "arn:aws:iam::000000000000:role/admin"
external_id = "x-1"`})
	f.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	f.start()
	v := f.waitStatus("FAILED")
	wantReason(t, v, "ROLE_ACCESS_DENIED", "?")
}
