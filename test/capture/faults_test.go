package capture_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/capture"
	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// ids lists the id column of every change handled, in order.
func ids(h *harness) []int {
	var out []int
	for _, c := range h.rec.changes() {
		n, _ := strconv.Atoi(text(c.Rel, c.New, "id"))
		out = append(out, n)
	}
	return out
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// TestTerminateWalsender: after pg_terminate_backend of the walsender,
// capture reconnects on a new walsender and resumes from the handler's
// position: every row arrives once, in order, and the stream is not
// impaired for a walsender that could be replaced at once. The only report
// is the first session's success, which clears a SOURCE_ code saved before
// a restart.
func TestTerminateWalsender(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.t")
	h.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	h.start()
	pid := h.walsender()
	for i := 1; i <= 5; i++ {
		h.exec(`INSERT INTO t VALUES ($1)`, i)
	}
	h.waitChanges(5)

	h.exec(`SELECT pg_terminate_backend($1)`, pid)
	for i := 6; i <= 10; i++ {
		h.exec(`INSERT INTO t VALUES ($1)`, i)
	}
	h.waitChanges(10)
	if got := ids(h); !slices.Equal(got, seq(1, 10)) {
		t.Fatalf("rows %v, want 1..10 once each", got)
	}
	if next := h.walsender(); next == pid {
		t.Fatalf("walsender pid %d unchanged after it was terminated", pid)
	}
	if n := h.metric("cdcd_capture_reconnects_total"); n < 1 {
		t.Fatalf("reconnects metric %v, want at least 1", n)
	}
	if r := h.reported(); !slices.Equal(r, []codes.Code{""}) {
		t.Fatalf("reports %q for a walsender replaced at once, want the first session's success only", r)
	}
}

// TestHealthConnectionTerminated: pg_terminate_backend of the slot health
// check's connection ends it with the code a fast shutdown uses (57P01);
// the server still accepts a new one, so replication goes on undisturbed
// on the same walsender.
func TestHealthConnectionTerminated(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.t")
	h.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	h.start()
	pid := h.walsender()
	var health int
	h.waitFor(10*time.Second, "the health check's session", func() bool {
		err := h.db.QueryRow(h.ctx, `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%safe_wal_size%'`).Scan(&health)
		return err == nil
	})
	h.exec(`SELECT pg_terminate_backend($1)`, health)
	terminated := time.Now()
	h.waitFor(10*time.Second, "a health check after the termination", func() bool {
		hl := h.src.Health()
		return hl.CheckedAt.After(terminated) && hl.Err == ""
	})
	h.exec(`INSERT INTO t VALUES (1)`)
	h.waitChanges(1)
	if now := h.walsender(); now != pid {
		t.Fatalf("walsender changed from %d to %d after the health connection was terminated", pid, now)
	}
	if n := h.metric("cdcd_capture_reconnects_total"); n != 0 {
		t.Fatalf("%v reconnects, want none", n)
	}
}

// TestRestartMidStream restarts a private PostgreSQL under a running
// stream: capture reports SOURCE_UNAVAILABLE while it is down, recovers
// when it is back and loses nothing.
func TestRestartMidStream(t *testing.T) {
	c := testenv.StartCluster(t, testenv.Require(t))
	h := newHarness(t, c.CreateDB("restart"), "public.t")
	h.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	h.start()
	h.walsender()
	for i := 1; i <= 5; i++ {
		h.exec(`INSERT INTO t VALUES ($1)`, i)
	}
	h.waitChanges(5)

	h.db.Close(h.ctx)
	c.Stop()
	h.waitFor(30*time.Second, "SOURCE_UNAVAILABLE", func() bool { return slices.Contains(h.reported(), codes.SourceUnavailable) })
	c.Start()
	h.db = connectDB(t, h.ctx, h.dsn)
	for i := 6; i <= 10; i++ {
		h.exec(`INSERT INTO t VALUES ($1)`, i)
	}
	h.waitChanges(10)
	if got := ids(h); !slices.Equal(got, seq(1, 10)) {
		t.Fatalf("rows %v, want 1..10 once each", got)
	}
	h.waitFor(10*time.Second, "recovery report", func() bool {
		r := h.reported()
		return len(r) > 0 && r[len(r)-1] == ""
	})
}

// TestFastShutdownWithUndelivered stops a private PostgreSQL with pg_ctl
// stop -m fast while the Handler makes no progress, as with a sink whose
// Kinesis refuses every PutRecords. The walsender would hold the shutdown
// until cdcd confirmed everything it sent, which cdcd never does for what is
// not delivered: capture must release the replication connection instead,
// so the stop completes within 10 s. Once the server is back and the
// Handler moves on, every change written before the stop arrives.
func TestFastShutdownWithUndelivered(t *testing.T) {
	c := testenv.StartCluster(t, testenv.Require(t))
	h := newHarness(t, c.CreateDB("shutdown"), "public.t")
	var logs testenv.SyncBuffer
	h.cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), &logs), &slog.HandlerOptions{Level: slog.LevelInfo}))
	release, blocked := make(chan struct{}), make(chan struct{})
	var releaseOnce, blockedOnce sync.Once
	// Handle ignores ctx until released: the connection must go without
	// waiting for a Handler that is slow to notice.
	h.rec.block = func(context.Context, *record.Txn) error {
		blockedOnce.Do(func() { close(blocked) })
		<-release
		return nil
	}
	h.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	h.start()
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before h.stop
	h.walsender()
	const rows = 10
	for i := 1; i <= rows; i++ {
		h.exec(`INSERT INTO t VALUES ($1)`, i)
	}
	select {
	case <-blocked:
	case <-time.After(30 * time.Second):
		t.Fatal("the Handler was not called within 30s")
	}

	h.db.Close(h.ctx)
	begin := time.Now()
	if err := c.PG("pg_ctl", "-D", c.Data, "-m", "fast", "-w", "-t", "10", "stop"); err != nil {
		t.Fatalf("fast shutdown with undelivered changes did not complete within 10 s: %v", err)
	}
	t.Logf("fast shutdown took %v", time.Since(begin).Round(time.Millisecond))
	c.Start()
	releaseOnce.Do(func() { close(release) })
	h.db = connectDB(t, h.ctx, h.dsn)
	h.waitChanges(rows)
	if got := ids(h); !slices.Equal(got, seq(1, rows)) {
		t.Fatalf("rows %v, want 1..%d once each", got, rows)
	}
	if n := strings.Count(logs.String(), "source is shutting down; released the replication connection"); n != 1 {
		t.Errorf("the release was logged %d times, want once", n)
	}
}

// TestBlockedHandlerKeepsSession blocks the Handler three times longer than
// the server's wal_sender_timeout (1 s on a private server): the session
// survives on the same walsender, nothing past what was delivered is
// confirmed meanwhile, and everything arrives once the Handler moves on.
func TestBlockedHandlerKeepsSession(t *testing.T) {
	const timeout = time.Second
	c := testenv.StartCluster(t, testenv.Require(t), fmt.Sprintf("wal_sender_timeout = '%dms'", timeout.Milliseconds()))
	h := newHarness(t, c.CreateDB("blocked"), "public.t")
	h.cfg.StatusInterval = 300 * time.Millisecond
	release := make(chan struct{})
	blocked := make(chan *record.Txn, 1)
	h.rec.block = func(ctx context.Context, txn *record.Txn) error {
		if len(txn.Changes) == 0 || text(txn.Changes[0].Rel, txn.Changes[0].New, "id") != "2" {
			return nil
		}
		blocked <- txn
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h.exec(`CREATE TABLE t (id int PRIMARY KEY, pad text)`)
	h.start()
	pid := h.walsender()

	h.exec(`INSERT INTO t VALUES (1, '')`)
	h.waitChanges(1)
	h.exec(`INSERT INTO t VALUES (2, '')`)
	held := <-blocked
	// More data queues behind the blocked transaction, some of it more
	// than the socket buffers hold.
	for i := 3; i <= 20; i++ {
		h.exec(`INSERT INTO t SELECT $1, repeat('x', 100000)`, i)
	}
	delivered := h.rec.Delivered()
	deadline := time.Now().Add(3 * timeout)
	for time.Now().Before(deadline) {
		now, confirmed := h.slotRow()
		if now != pid {
			t.Fatalf("walsender changed from %d to %d while the handler was blocked", pid, now)
		}
		if confirmed > delivered || confirmed >= held.EndLSN {
			t.Fatalf("confirmed %X beyond delivered %X (blocked transaction ends at %X)", confirmed, delivered, held.EndLSN)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(release)
	h.waitChanges(20)
	if got := ids(h); !slices.Equal(got, seq(1, 20)) {
		t.Fatalf("rows %v, want 1..20 once each", got)
	}
	if now, _ := h.slotRow(); now != pid {
		t.Fatalf("walsender changed from %d to %d", pid, now)
	}
	if n := h.metric("cdcd_capture_reconnects_total"); n != 0 {
		t.Fatalf("%v reconnects, want none", n)
	}
	end := h.rec.Delivered()
	h.waitFor(10*time.Second, "the slot to confirm the last transaction", func() bool {
		_, confirmed := h.slotRow()
		return confirmed >= end
	})
}

// TestSlotLost: PostgreSQL invalidates a slot that falls behind
// max_slot_wal_keep_size (wal_status lost); Run ends with ErrSlotLost and
// Health says why. The Handler blocks, so the slot cannot advance.
func TestSlotLost(t *testing.T) {
	c := testenv.StartCluster(t, testenv.Require(t), "max_slot_wal_keep_size = '1MB'")
	h := newHarness(t, c.CreateDB("lost"), "public.t")
	h.rec.block = func(ctx context.Context, _ *record.Txn) error {
		<-ctx.Done()
		return ctx.Err()
	}
	h.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	h.start()
	h.walsender()
	h.exec(`INSERT INTO t VALUES (1)`)
	h.waitFor(10*time.Second, "a healthy slot", func() bool {
		hl := h.src.Health()
		return hl.Exists && hl.WALStatus == "reserved" && hl.RetainedWALBytes > 0 && hl.SafeWALBytes >= 0
	})
	for i := 2; i < 6; i++ {
		h.exec(`INSERT INTO t VALUES ($1)`, i)
		h.exec(`SELECT pg_switch_wal()`)
	}
	h.exec(`CHECKPOINT`)

	err := h.runErr(30 * time.Second)
	if !errors.Is(err, capture.ErrSlotLost) {
		t.Fatalf("Run ended with %v, want ErrSlotLost", err)
	}
	if hl := h.src.Health(); hl.WALStatus != "lost" {
		t.Errorf("health after the loss: %+v", hl)
	}
	if n := h.metric("cdcd_slot_wal_status"); n != 1 {
		t.Errorf("wal_status series sum %v, want exactly one status set", n)
	}
}

// TestSlotDroppedUnderneath: a slot dropped while the stream runs ends Run
// with ErrSlotLost; capture never creates a new one silently.
func TestSlotDroppedUnderneath(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.t")
	h.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	h.start()
	h.walsender()
	h.exec(`INSERT INTO t VALUES (1)`)
	h.waitChanges(1)
	// capture reconnects quickly: end its walsender until the drop wins.
	h.waitFor(10*time.Second, "the slot to be dropped", func() bool {
		h.exec(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, h.slot)
		_, err := h.db.Exec(h.ctx, `SELECT pg_drop_replication_slot($1)`, h.slot)
		return err == nil
	})
	err := h.runErr(30 * time.Second)
	if !errors.Is(err, capture.ErrSlotLost) {
		t.Fatalf("Run ended with %v, want ErrSlotLost", err)
	}
	var n int
	h.db.QueryRow(h.ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, h.slot).Scan(&n)
	if n != 0 {
		t.Fatal("capture created a new slot after the old one was dropped")
	}
}
