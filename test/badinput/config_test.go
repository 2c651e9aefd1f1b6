package badinput

import (
	"fmt"
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
	wantErr(t, f.loadErr(), fmt.Sprintf("CONFIG: toml: error: expected a comma (',') or array terminator (']'), but got 's'\n\nAt line 19, column 22:\n\n"+
		"     17 | identifier = %q\n     18 | tables = [\"public.t\"\n     19 | slot = %q\n                               ^\n", f.stream, f.slot))
}

// TestUnknownKey: a misspelt key is refused, not ignored.
func TestUnknownKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noKinesis: true, stream: `set_replica_identity = true`})
	wantErr(t, f.loadErr(), "CONFIG: unknown key stream.set_replica_identity: check the spelling against config.example.toml")
}

// TestWrongValueTypes: a value of the wrong type names its line, its key
// and the type it needs, in TOML's words.
func TestWrongValueTypes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noKinesis: true})
	f.edit(`tables = ["public.t"]`, `tables = "public.t"`)
	wantErr(t, f.loadErr(), "CONFIG: line 18: stream.tables must be an array, not a string")
}

// TestBadValues: values of the right type that cdcd cannot use are all
// named at once, each with its key and what it must be.
func TestBadValues(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noKinesis: true, stream: `ordering = "SORTED"`, delivery: "max_in_flight = 100"})
	wantErr(t, f.loadErr(), "CONFIG: stream[0].ordering: \"SORTED\" is not one of UNORDERED, ROW\nstream[0].delivery.max_in_flight: 100 is outside 1..64")
}

// TestBadRoleARN: a role ARN that is not one is refused before anything
// starts.
func TestBadRoleARN(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noKinesis: true, target: `role_arn = "arn:aws:iam::12345:role/cdcd"
external_id = "x-1"`})
	wantErr(t, f.loadErr(), `CONFIG: stream[0].target.role_arn: role ARN "arn:aws:iam::12345:role/cdcd": account "12345" is not 12 digits, want arn:<partition>:iam::<12 digits>:role/<path/>name`)
}

// TestBadKinesisStreamARN: a Kinesis stream ARN that is not one is
// refused before anything starts.
func TestBadKinesisStreamARN(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noKinesis: true, target: `kinesis_stream_arn = "arn:aws:kinesis:us-east-1:000000000000:orders"`})
	wantErr(t, f.loadErr(), `CONFIG: stream[0].target.kinesis_stream_arn: "arn:aws:kinesis:us-east-1:000000000000:orders": want a Kinesis stream ARN, arn:<partition>:kinesis:<region>:<12 digits>:stream/<name>`)
}

// TestBadKeyARN: a cluster key ARN that is not one is refused before
// anything starts.
func TestBadKeyARN(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noKinesis: true, cluster: `cluster_key_arn = "arn:aws:kms:us-east-1:000000000000:alias/cdcd"`})
	wantErr(t, f.loadErr(), `CONFIG: cluster[0].cluster_key_arn: "arn:aws:kms:us-east-1:000000000000:alias/cdcd" is not a KMS key ARN like arn:aws:kms:us-east-1:123456789012:key/…`)
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
	wantReason(t, v, "ROLE_ACCESS_DENIED", `role ARN not allowed: "arn:aws:iam::000000000000:role/admin" matches no pattern in aws.role_arn_allow; add it or a matching pattern (see docs/runbook.md#role_access_denied)`)
}
