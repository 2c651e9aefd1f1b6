package capture_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
// impaired for a walsender that could be replaced at once.
func TestTerminateWalsender(t *testing.T) {
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
	if r := h.reported(); len(r) != 0 {
		t.Fatalf("reports %v for a walsender replaced at once, want none", r)
	}
}

// TestRestartMidStream restarts a private PostgreSQL under a running
// stream: capture reports SOURCE_UNAVAILABLE while it is down, recovers
// when it is back and loses nothing.
func TestRestartMidStream(t *testing.T) {
	c := startCluster(t, testenv.Require(t))
	h := newHarness(t, c.createDB("restart"), "public.t")
	h.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	h.start()
	h.walsender()
	for i := 1; i <= 5; i++ {
		h.exec(`INSERT INTO t VALUES ($1)`, i)
	}
	h.waitChanges(5)

	h.db.Close(h.ctx)
	c.stop()
	h.waitFor(30*time.Second, "SOURCE_UNAVAILABLE", func() bool { return slices.Contains(h.reported(), codes.SourceUnavailable) })
	c.start()
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

// TestBlockedHandlerKeepsSession blocks the Handler three times longer than
// the server's wal_sender_timeout (1 s on a private server): the session
// survives on the same walsender, nothing past what was delivered is
// confirmed meanwhile, and everything arrives once the Handler moves on.
func TestBlockedHandlerKeepsSession(t *testing.T) {
	const timeout = time.Second
	c := startCluster(t, testenv.Require(t), fmt.Sprintf("wal_sender_timeout = '%dms'", timeout.Milliseconds()))
	h := newHarness(t, c.createDB("blocked"), "public.t")
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
	c := startCluster(t, testenv.Require(t), "max_slot_wal_keep_size = '1MB'")
	h := newHarness(t, c.createDB("lost"), "public.t")
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
