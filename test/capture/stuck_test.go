package capture_test

import (
	"errors"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/capture"
	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/retry"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// A source that keeps failing says why: each test here ends in a report
// (docs/lifecycle.md#codes) whose message names the cause and the fix.

// waitReport waits for a report of code and returns its error.
func (h *harness) waitReport(code codes.Code) error {
	h.t.Helper()
	var got error
	h.waitFor(30*time.Second, "a "+string(code)+" report", func() bool {
		h.reportMu.Lock()
		defer h.reportMu.Unlock()
		for i, c := range h.reports {
			if c == code {
				got = h.reportErrs[i]
				return true
			}
		}
		return false
	})
	return got
}

// waitRecovered waits until the last report is a recovery ("").
func (h *harness) waitRecovered() {
	h.t.Helper()
	h.waitFor(30*time.Second, "the recovery report", func() bool {
		r := h.reported()
		return len(r) > 0 && r[len(r)-1] == ""
	})
}

func mustContain(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s %q does not contain %q", what, err, w)
		}
	}
}

// takeSlot ends capture's walsender and reads the slot on a replication
// connection of the test's own, until it wins the race with capture's
// reconnect. Closing the connection gives the slot back.
func (h *harness) takeSlot() *pgconn.PgConn {
	h.t.Helper()
	var conn *pgconn.PgConn
	h.waitFor(30*time.Second, "the slot to be the test's", func() bool {
		h.exec(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, h.slot)
		c, err := pgconn.Connect(h.ctx, h.dsn+"&replication=database&application_name=another_client")
		if err != nil {
			h.t.Fatal(err)
		}
		err = pglogrepl.StartReplication(h.ctx, c, h.slot, 0, pglogrepl.StartReplicationOptions{
			PluginArgs: []string{"proto_version '1'", "publication_names 'cdcd_pub'"}})
		if err != nil {
			c.Close(h.ctx)
			return false
		}
		conn = c
		return true
	})
	h.t.Cleanup(func() { conn.Close(h.ctx) })
	return conn
}

// TestSlotInUseIsReported: another client takes the slot while the stream
// reconnects. Once that has lasted ImpairAfter, capture reports
// SOURCE_UNAVAILABLE naming the slot's holder and how to find and stop it;
// when the slot is free again the stream resumes and capture clears it.
func TestSlotInUseIsReported(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.t")
	h.cfg.ImpairAfter = time.Second
	h.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	h.start()
	h.walsender()
	h.exec(`INSERT INTO t VALUES (1)`)
	h.waitChanges(1)

	other := h.takeSlot()
	err := h.waitReport(codes.SourceUnavailable)
	mustContain(t, "report", err, h.slot, "is active for PID", "pg_stat_replication", "pg_terminate_backend")
	other.Close(h.ctx)
	h.exec(`INSERT INTO t VALUES (2)`)
	h.waitChanges(2)
	h.waitRecovered()
}

// TestUnsendableChangeIsReported: a text value that is not UTF-8 in a
// SQL_ASCII database waits in the slot, and the walsender fails on it as
// soon as each session streams. Capture backs off (the waits grow instead
// of restarting at the shortest after each session that streamed) and,
// after ImpairAfter, reports SOURCE_UNAVAILABLE naming the error.
func TestUnsendableChangeIsReported(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testenv.CreateDBWith(t, testenv.Require(t), `ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`), "public.t")
	h.cfg.ImpairAfter = time.Second
	h.cfg.Reconnect = retry.Schedule{Initial: time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2}
	var logs testenv.SyncBuffer
	h.cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), &logs), &slog.HandlerOptions{Level: slog.LevelInfo}))
	h.exec(`CREATE TABLE t (id int PRIMARY KEY, v text)`)
	h.start()
	h.walsender()
	h.exec(`INSERT INTO t VALUES (1, 'ascii')`)
	h.waitChanges(1)
	h.exec(`INSERT INTO t VALUES (2, convert_from('\x636166e9', 'SQL_ASCII'))`)

	err := h.waitReport(codes.SourceUnavailable)
	mustContain(t, "report", err, "in a row", "SQLSTATE 22021", "not UTF-8")
	// The tenth wait: 1 ms doubling to the 200 ms cap, with ±50% jitter,
	// is at least 100 ms; a backoff reset after each session would keep
	// it under 2 ms.
	line := regexp.MustCompile(`retry_in=(\S+) failures=10\b`)
	var m []string
	h.waitFor(30*time.Second, "the tenth failure", func() bool {
		m = line.FindStringSubmatch(logs.String())
		return m != nil
	})
	if wait, err := time.ParseDuration(m[1]); err != nil || wait < 100*time.Millisecond {
		t.Errorf("tenth reconnect waits %s (%v), want at least 100ms: the backoff did not grow", m[1], err)
	}
	if got := ids(h); len(got) != 1 {
		t.Errorf("rows %v handled, want only the one before the value", got)
	}
}

// TestRevokedReplicationIsReported: the role loses REPLICATION while the
// stream runs and its walsender is ended; the reconnect is refused, which
// capture reports at once as SOURCE_PREREQUISITE_UNMET naming the
// statement that fixes it, and clears once the grant is back.
func TestRevokedReplicationIsReported(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.t")
	role := testenv.UniqueName(t, 63)
	h.exec(`CREATE ROLE ` + role + ` LOGIN REPLICATION PASSWORD 'pw'`)
	t.Cleanup(func() {
		_, _ = h.db.Exec(h.ctx, `DROP OWNED BY `+role+`; DROP ROLE `+role)
	})
	h.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	h.exec(`ALTER TABLE t OWNER TO ` + role)
	h.exec(`GRANT CREATE ON DATABASE ` + pgx.Identifier{h.db.Config().Database}.Sanitize() + ` TO ` + role)
	u, err := url.Parse(h.dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "pw")
	h.cfg.DSN = u.String()
	h.start()
	pid := h.walsender()
	h.exec(`INSERT INTO t VALUES (1)`)
	h.waitChanges(1) // the session streams

	h.exec(`ALTER ROLE ` + role + ` NOREPLICATION`)
	h.exec(`SELECT pg_terminate_backend($1)`, pid)
	err = h.waitReport(codes.SourcePrerequisiteUnmet)
	mustContain(t, "report", err, "lacks REPLICATION", `ALTER ROLE "`+role+`" WITH REPLICATION`)
	if slices.Contains(h.reported(), codes.SourceUnavailable) {
		t.Errorf("reports %v: a refused privilege is no unavailable source", h.reported())
	}
	h.exec(`ALTER ROLE ` + role + ` REPLICATION`)
	h.exec(`INSERT INTO t VALUES (2)`)
	h.waitChanges(2)
	h.waitRecovered()
}

// TestSlotAdvancedPastCheckpoint: something other than cdcd advances the
// slot past the stream's checkpoint. Prepare (a restart) and a session (a
// reconnect) both refuse to start from the slot's position, which would
// skip the changes in between silently: ErrSlotLost, naming both
// positions, and nothing streamed.
func TestSlotAdvancedPastCheckpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.t")
	h.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	src := h.source()
	info, err := src.Prepare(h.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkpoint := info.ConfirmedFlush
	if err := h.rec.Persist(h.ctx, checkpoint); err != nil {
		t.Fatal(err)
	}
	// Flushed at commit, so that the slot can be advanced past it.
	h.exec(`BEGIN; SET LOCAL synchronous_commit = on; INSERT INTO t SELECT generate_series(1, 3); COMMIT`)
	h.exec(`SELECT pg_replication_slot_advance($1, pg_current_wal_flush_lsn())`, h.slot)
	_, advanced := h.slotRow()
	if advanced <= checkpoint {
		t.Fatalf("the slot was not advanced: %X <= %X", advanced, checkpoint)
	}
	want := []string{pglogrepl.LSN(advanced).String(), pglogrepl.LSN(checkpoint).String(), "delete the stream"}

	_, err = src.Prepare(h.ctx, checkpoint)
	if !errors.Is(err, capture.ErrSlotLost) || capture.Classify(err) != codes.SourceSlotLost {
		t.Fatalf("Prepare after the slot was advanced: %v, want ErrSlotLost", err)
	}
	mustContain(t, "Prepare", err, want...)
	h.run()
	err = h.runErr(10 * time.Second)
	if !errors.Is(err, capture.ErrSlotLost) {
		t.Fatalf("Run after the slot was advanced: %v, want ErrSlotLost", err)
	}
	mustContain(t, "Run", err, want...)
	if n := len(h.rec.changes()); n != 0 {
		t.Errorf("%d changes streamed from past the gap", n)
	}
	if r := h.reported(); len(r) != 0 {
		t.Errorf("capture reported %v; the slot's loss is the caller's to report", r)
	}
}
