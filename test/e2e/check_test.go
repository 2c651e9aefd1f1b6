package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestCheckOnline: cdcd check --online names each missing grant of the
// source role with the SQL that fixes it, and passes once they are fixed.
func TestCheckOnline(t *testing.T) {
	h := newHarness(t, harnessOptions{tables: []string{"public.items"}})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	role := strings.ReplaceAll(h.slot, "cdcd_", "r_")
	h.exec(`CREATE ROLE ` + role + ` LOGIN PASSWORD 'pw'`)
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
		cmd.Env = append(os.Environ(), "CDCD_E2E_PG_PASSWORD=pw")
		out, err := cmd.CombinedOutput()
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
