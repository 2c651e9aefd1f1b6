package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPasswordRotation reads the source password from a file: rotating it
// with ALTER ROLE without updating the file makes the next connection fail,
// which impairs the stream with SOURCE_UNAVAILABLE and a message that names
// the cause but not the password; updating the file brings it back ACTIVE
// on the next reconnect with no change lost.
func TestPasswordRotation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{tables: []string{"public.items"}})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	role := strings.ReplaceAll(h.slot, "cdcd_", "r_")
	h.exec(`CREATE ROLE ` + role + ` LOGIN REPLICATION PASSWORD '` + firstPassword + `'`)
	h.exec(`GRANT CREATE ON DATABASE ` + h.dbName() + ` TO ` + role)
	h.exec(`ALTER TABLE items OWNER TO ` + role)
	t.Cleanup(func() {
		_, _ = h.db.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, role)
		_, _ = h.db.Exec(context.Background(), `DROP OWNED BY `+role+`; DROP ROLE `+role)
	})
	pwFile := filepath.Join(t.TempDir(), "pg-password")
	writePW := func(pw string) {
		if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePW(firstPassword)
	cfg, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(cfg), "postgres://"+h.db.Config().User+"@", "postgres://"+role+"@", 1)
	text = strings.Replace(text, `password_env = "CDCD_E2E_PG_PASSWORD"`, `password_file = "`+pwFile+`"`, 1)
	if err := os.WriteFile(h.config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	d := h.start()
	h.waitStatus("ACTIVE", "", 30*time.Second)
	id := 0
	insert := func(n int) {
		for range n {
			id++
			h.exec(`INSERT INTO items VALUES ($1, 'x')`, id)
		}
	}
	insert(5)
	h.waitIDs(id, 30*time.Second)

	// Rotate in the database only, and end the session so cdcd reconnects.
	h.exec(`ALTER ROLE ` + role + ` PASSWORD '` + secondPassword + `'`)
	h.exec(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1`, h.slot)
	insert(5)
	h.waitStatus("IMPAIRED", "SOURCE_UNAVAILABLE", 60*time.Second)
	logs := d.Logs()
	if !strings.Contains(logs, "password authentication failed") {
		t.Errorf("the log does not name the cause (authentication):\n%s", logs)
	}
	if strings.Contains(logs, secondPassword) || strings.Contains(logs, firstPassword) {
		t.Errorf("a password appears in the log")
	}

	writePW(secondPassword)
	h.waitStatus("ACTIVE", "", 90*time.Second)
	insert(5)
	h.waitIDs(id, 60*time.Second)
	d.stop(t)
}
