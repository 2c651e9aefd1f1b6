package badinput

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// held is the log line of a stream that cannot start yet: it stays
// CREATING and retries, so fixing the cause needs no restart.
const held = "stream cannot start yet; retrying"

// createTable creates public.t, the table most cases stream.
func (f *fixture) createTable() {
	f.t.Helper()
	f.exec(`CREATE TABLE t (id int PRIMARY KEY, v text)`)
}

// insert commits rows with the ids given, each its own transaction.
func (f *fixture) insert(ids ...int) {
	f.t.Helper()
	for _, id := range ids {
		f.exec(`INSERT INTO t VALUES ($1, 'v')`, id)
	}
}

// TestSourceUnreachable: with nothing listening at the DSN's address, the
// stream stays CREATING with the cause in the log and in its statusReason,
// and starts by itself once PostgreSQL is there.
func TestSourceUnreachable(t *testing.T) {
	t.Parallel()
	c := testenv.StartCluster(t, testenv.Require(t))
	f := newFixture(t, options{private: c.CreateDB("unreachable")})
	f.createTable()
	c.Stop()
	d := f.start()
	msg := fmt.Sprintf("connect to source (tcp_refused): connection to the source at 127.0.0.1:%d refused: nothing listens there: check the host and port, that PostgreSQL is running and listen_addresses includes this interface", c.Port)
	d.waitLog(held, msg)
	wantReason(t, f.waitReason("CREATING", "SOURCE_UNAVAILABLE"), "SOURCE_UNAVAILABLE", msg+" (see docs/runbook.md#source_unavailable)")
	c.Start()
	f.db = connect(t, c.DSN("unreachable"))
	f.waitStatus("ACTIVE")
	f.insert(1)
	wantIDs(t, f.waitRecords(1), "c", "1")
}

// TestWrongPassword: a password PostgreSQL refuses keeps the stream
// CREATING, naming the role and where the password comes from.
func TestWrongPassword(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{password: "not-the-password"})
	f.createTable()
	d := f.start()
	l := d.waitLog(held, fmt.Sprintf(`connect to source (authentication): the source at 127.0.0.1:%d refused the login of role "cdcd" (SQLSTATE 28P01: password authentication failed for user "cdcd"): check that the password source (password_env, password_file or secret_id) holds the current password; with iam_auth, that the database user has GRANT rds_iam and the identity may rds-db:connect to its dbuser ARN`, f.env.PGPort))
	if strings.Contains(d.log.String(), "not-the-password") {
		t.Errorf("the password is in the log: %v", l)
	}
}

// TestNoReplicationAttribute: a role without REPLICATION is named, with the
// statement that grants it.
func TestNoReplicationAttribute(t *testing.T) {
	t.Parallel()
	env := testenv.Require(t)
	probe := newFixture(t, options{noKinesis: true})
	role := "r_" + probe.db.Config().Database
	probe.exec(`CREATE ROLE ` + role + ` LOGIN PASSWORD 'pw'`)
	t.Cleanup(func() { probe.exec(`DROP OWNED BY ` + role + `; DROP ROLE ` + role) })
	dsn := strings.Replace(probe.dsn, "postgres://cdcd@", "postgres://"+role+"@", 1)
	f := newFixture(t, options{private: env.DSN(probe.db.Config().Database), dsn: dsn, password: "pw"})
	f.createTable()
	d := f.start()
	d.waitLog(held, fmt.Sprintf(`the source role %q lacks REPLICATION: run ALTER ROLE %q REPLICATION (GRANT rds_replication TO %q on RDS)`, role, role, role))
}

// TestWalLevelNotLogical: a server without wal_level = logical is named,
// with the setting to change.
func TestWalLevelNotLogical(t *testing.T) {
	t.Parallel()
	c := testenv.StartCluster(t, testenv.Require(t), "wal_level = replica")
	f := newFixture(t, options{private: c.CreateDB("replica")})
	f.createTable()
	d := f.start()
	d.waitLog(held, `source wal_level is "replica", cdcd needs logical: set wal_level = logical in postgresql.conf (rds.logical_replication = 1 on RDS) and restart PostgreSQL`)
}

// TestReplicationSlotsExhausted: a server whose slots are all taken is
// named with the setting; dropping a slot lets the stream start.
func TestReplicationSlotsExhausted(t *testing.T) {
	t.Parallel()
	c := testenv.StartCluster(t, testenv.Require(t), "max_replication_slots = 1")
	f := newFixture(t, options{private: c.CreateDB("full")})
	f.createTable()
	f.exec(`SELECT pg_create_logical_replication_slot('other', 'test_decoding')`)
	d := f.start()
	d.waitLog(held, `max_replication_slots is 1 and 1 slots exist, so cdcd cannot create another: raise max_replication_slots in postgresql.conf and restart PostgreSQL, or drop a slot nothing uses (SELECT slot_name, active FROM pg_replication_slots; SELECT pg_drop_replication_slot('<name>'))`)
	f.exec(`SELECT pg_drop_replication_slot('other')`)
	f.waitStatus("ACTIVE")
	f.insert(1)
	wantIDs(t, f.waitRecords(1), "c", "1")
}

// TestSlotOfAnotherPlugin: a slot of the stream's name made by another
// plugin is refused, not reused or dropped.
func TestSlotOfAnotherPlugin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{})
	f.createTable()
	f.exec(`SELECT pg_create_logical_replication_slot($1, 'test_decoding')`, f.slot)
	d := f.start()
	d.waitLog(held, fmt.Sprintf(`replication slot %q uses plugin "test_decoding", not pgoutput: choose another slot name or drop it with SELECT pg_drop_replication_slot('%s')`, f.slot, f.slot))
}

// holdSlot streams from the case's slot as another client would, until
// release or the end of the test; it returns the walsender's pid.
func (f *fixture) holdSlot() (pid int, release func()) {
	f.t.Helper()
	ctx := context.Background()
	conn, err := pgconn.Connect(ctx, f.env.DSN(f.db.Config().Database)+"&replication=database&application_name=other_client")
	if err != nil {
		f.t.Fatal(err)
	}
	release = func() { conn.Close(ctx) }
	f.t.Cleanup(release)
	err = pglogrepl.StartReplication(ctx, conn, f.slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'cdcd_pub'"}})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.QueryRow(ctx, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, f.slot).Scan(&pid); err != nil {
		f.t.Fatal(err)
	}
	return pid, release
}

// TestSlotInUseAtStart: a slot another client streams from is named with
// that client, and the stream waits for it, then delivers what was
// committed meanwhile.
func TestSlotInUseAtStart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{})
	f.createTable()
	f.exec(`CREATE PUBLICATION cdcd_pub FOR TABLE t WITH (publish_via_partition_root = true)`)
	f.exec(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, f.slot)
	f.insert(1)
	pid, release := f.holdSlot()
	d := f.start()
	d.waitLog(held, fmt.Sprintf(`replication slot %q is in use by another client (pid %d, application_name "other_client"): stop that client, or end its session with SELECT pg_terminate_backend(%d), or choose another slot name; cdcd retries until the slot is free`, f.slot, pid, pid))
	f.waitStatus("CREATING")
	release()
	f.waitStatus("ACTIVE")
	wantIDs(t, f.waitRecords(1), "c", "1")
}

// TestSlotDroppedWhileRunning: a slot dropped under a running stream fails
// it with SOURCE_SLOT_LOST; what was committed before is in Kinesis.
func TestSlotDroppedWhileRunning(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{})
	f.streaming(1, 2)
	f.dropSlot()
	v := f.waitStatus("FAILED")
	wantReason(t, v, "SOURCE_SLOT_LOST", fmt.Sprintf(`replication slot lost: slot %q was dropped while the stream used it; delete the stream and create it again (see docs/runbook.md#source_slot_lost)`, f.slot))
	wantIDs(t, f.records(), "c", "1", "2")
}

// dropSlot ends the walsender of the case's slot and drops it, retrying
// while cdcd reconnects.
func (f *fixture) dropSlot() {
	f.t.Helper()
	for range 100 {
		_, err := f.db.Exec(context.Background(), `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
			WHERE slot_name = $1 AND active_pid IS NOT NULL`, f.slot)
		if err != nil {
			f.t.Fatal(err)
		}
		if _, err = f.db.Exec(context.Background(), `SELECT pg_drop_replication_slot($1)`, f.slot); err == nil {
			return
		}
		// The terminated walsender lets go of the slot a moment later,
		// and cdcd reconnects after a backoff: try in between.
		time.Sleep(50 * time.Millisecond)
	}
	f.t.Fatalf("could not drop slot %s", f.slot)
}
