package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/test/stsstub"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// TestCheckOnline: cdcd check --online names each missing grant of the
// source role with the SQL that fixes it, and passes once they are fixed.
func TestCheckOnline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{tables: []string{"public.items"}})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	role := strings.ReplaceAll(h.slot, "cdcd_", "r_")
	h.exec(`CREATE ROLE ` + role + ` LOGIN PASSWORD '` + checkPassword + `'`)
	t.Cleanup(func() { h.exec(`DROP OWNED BY ` + role + `; DROP ROLE ` + role) })
	cfg, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	weak := strings.Replace(string(cfg), "postgres://"+h.db.Config().User+"@", "postgres://"+role+"@", 1)
	if weak == string(cfg) {
		t.Fatal("could not point the config at the weak role")
	}
	if err := os.WriteFile(h.config, []byte(weak), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() (string, error) {
		cmd := exec.Command(binary, "check", "--online", "--config", h.config)
		cmd.Env = append(os.Environ(), "CDCD_E2E_PG_PASSWORD="+checkPassword)
		out, err := cmd.CombinedOutput()
		_, _ = testenv.LogFile(t, "check").Write(out)
		return string(out), err
	}
	out, err := run()
	if err == nil {
		t.Fatalf("check --online passed for a role without REPLICATION or SELECT:\n%s", out)
	}
	for _, want := range []string{"lacks REPLICATION", `ALTER ROLE "` + role + `" WITH REPLICATION`, `GRANT SELECT ON TABLE "public"."items"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	h.exec(`ALTER ROLE ` + role + ` REPLICATION`)
	h.exec(`GRANT SELECT ON items TO ` + role)
	h.exec(`GRANT CREATE ON DATABASE ` + h.dbName() + ` TO ` + role)
	h.exec(`ALTER TABLE items OWNER TO ` + role)
	if out, err := run(); err != nil {
		t.Fatalf("check --online after the fixes: %v\n%s", err, out)
	}
}

// checkOnline runs cdcd check --online on the harness's config.
func (h *harness) checkOnline() (string, error) {
	h.t.Helper()
	cmd := exec.Command(binary, "check", "--online", "--config", h.config)
	cmd.Env = append(os.Environ(), "CDCD_E2E_PG_PASSWORD="+h.password)
	out, err := cmd.CombinedOutput()
	_, _ = testenv.LogFile(h.t, "check").Write(out)
	return string(out), err
}

// wantLines fails the test unless out has a line starting with each prefix.
func wantLines(t *testing.T, out string, prefixes ...string) {
	t.Helper()
	for _, p := range prefixes {
		if !strings.HasPrefix(out, p) && !strings.Contains(out, "\n"+p) {
			t.Errorf("output has no line starting %q:\n%s", p, out)
		}
	}
}

// TestCheckOnlineMissingTable: a table that does not exist fails check as it
// stops run, even for a superuser, whom the grant check lets do anything;
// the check creates nothing, and passes once the table exists.
func TestCheckOnlineMissingTable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{tables: []string{"public.items", "public.nope"}})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	const missing = "stream e2e: source table public.nope: FAIL: table public.nope does not exist in the source database"
	out, err := h.checkOnline()
	if err == nil {
		t.Fatalf("check --online passed with a table that does not exist:\n%s", out)
	}
	wantLines(t, out, missing, "stream e2e: kinesis stream "+h.kinesis+": ok: ACTIVE, open shards 1")
	var created int
	err = h.db.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1)
		+ (SELECT count(*) FROM pg_publication WHERE pubname = 'cdcd_e2e')`, h.slot).Scan(&created)
	if err != nil || created != 0 {
		t.Errorf("check --online created a slot or a publication (%d): %v", created, err)
	}

	// run stops at the same prerequisite, with the same words.
	d := h.startNoWait()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(d.Logs(), "table public.nope does not exist in the source database") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(d.Logs(), "table public.nope does not exist in the source database") {
		t.Errorf("run did not report the missing table:\n%s", d.Logs())
	}
	d.stop(t)

	h.exec(`CREATE TABLE nope (id int PRIMARY KEY)`)
	if out, err := h.checkOnline(); err != nil {
		t.Fatalf("check --online once the table exists: %v\n%s", err, out)
	}
}

// TestCheckOnlineMissingKinesisStream: a Kinesis stream that does not exist
// fails check with the fix, while the source passes.
func TestCheckOnlineMissingKinesisStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{tables: []string{"public.items"}})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	cfg, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	gone := h.kinesis + "-gone"
	if err := os.WriteFile(h.config, []byte(strings.Replace(string(cfg), `kinesis_stream = "`+h.kinesis+`"`, `kinesis_stream = "`+gone+`"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := h.checkOnline()
	if err == nil {
		t.Fatalf("check --online passed with a Kinesis stream that does not exist:\n%s", out)
	}
	wantLines(t, out, "stream e2e: source: ok", "stream e2e: grants: ok",
		"stream e2e: kinesis stream "+gone+": FAIL: describe stream summary:",
		"    fix: create it (aws kinesis create-stream --stream-name "+gone+" --region "+h.env.Region+"), or correct target.kinesis_stream")
	if !strings.Contains(out, "ResourceNotFoundException") {
		t.Errorf("the failure does not say what Kinesis answered:\n%s", out)
	}
}

// TestCheckOnlineRoleAndClusterKey: with aws.account left out, check asks
// STS for it; it assumes the stream's role as run does (external id, tags)
// and probes the cluster key; a role whose trust is gone fails with the fix.
func TestCheckOnlineRoleAndClusterKey(t *testing.T) {
	t.Parallel()
	env := testenv.Require(t)
	key := testenv.CreateKey(t, testenv.KMSClient(t, env, env.KMSEndpoint))
	sts := stsstub.New(t)
	sts.AddRoleWith(e2eRole, stsstub.Role{ExternalID: e2eExternalID, TrustAllowed: true, TagSession: true})
	h := newHarness(t, harnessOptions{
		tables: []string{"public.items"}, askAccount: true,
		aws:     fmt.Sprintf("sts_endpoint = %q\nkms_endpoint = %q\nrole_arn_allow = [%q]", sts.URL(), env.KMSEndpoint, e2eRole),
		target:  fmt.Sprintf("role_arn = %q\nexternal_id = %q", e2eRole, e2eExternalID),
		cluster: fmt.Sprintf("cluster_key_arn = %q", key),
	})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	out, err := h.checkOnline()
	if err != nil {
		t.Fatalf("check --online: %v\n%s", err, out)
	}
	wantLines(t, out, "stream e2e: role "+e2eRole+": ok: assumed", "stream e2e: kinesis stream "+h.kinesis+": ok: ACTIVE",
		"stream e2e: cluster key "+key+": ok: generated and decrypted a data key")
	var asked, assumed bool
	for _, r := range sts.Requests() {
		asked = asked || r.Action == "GetCallerIdentity"
		if r.Action == "AssumeRole" {
			// The cdcd stream ARN is in the account of stsstub.DefaultCaller.
			assumed = r.ExternalID == e2eExternalID && len(r.Tags) == 2 && strings.Contains(r.Tags[0].Value, ":111122223333:")
		}
	}
	if !asked || !assumed {
		t.Errorf("check did not ask STS for the account (%v) or assume the role with the external id and tags in that account (%v): %+v", asked, assumed, sts.Requests())
	}

	sts.Deny(e2eRole)
	out, err = h.checkOnline()
	if err == nil {
		t.Fatalf("check --online passed with a role that cannot be assumed:\n%s", out)
	}
	wantLines(t, out, "stream e2e: role "+e2eRole+": FAIL: ", "    fix: cdcd policy --stream e2e prints the role's trust policy")
}
