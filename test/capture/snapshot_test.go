package capture_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcd-dev/cdcd/capture"
	"github.com/cdcd-dev/cdcd/record"
)

// apply folds snapshot rows and then streamed changes into table -> id ->
// row text, as an upserting consumer would.
func apply(snapshot, txns []*record.Txn) map[string]map[string]string {
	out := map[string]map[string]string{}
	row := func(rel *record.Relation, t record.Tuple) string {
		var vals []string
		for _, c := range rel.Columns {
			vals = append(vals, text(rel, t, c.Name))
		}
		return strings.Join(vals, "|")
	}
	for _, txn := range append(append([]*record.Txn(nil), snapshot...), txns...) {
		for _, c := range txn.Changes {
			tbl := out[c.Rel.Table]
			if tbl == nil {
				tbl = map[string]string{}
				out[c.Rel.Table] = tbl
			}
			switch c.Kind {
			case record.Read, record.Insert, record.Update:
				if c.Old != nil {
					delete(tbl, text(c.Rel, c.Old, "id"))
				}
				tbl[text(c.Rel, c.New, "id")] = row(c.Rel, c.New)
			case record.Delete:
				delete(tbl, text(c.Rel, c.Old, "id"))
			}
		}
	}
	return out
}

// tableState reads a table as id -> row text in the same format as apply.
func (h *harness) tableState(table string) map[string]string {
	h.t.Helper()
	// The simple protocol returns the text format, as pgoutput and the
	// snapshot deliver values.
	res, err := h.db.PgConn().Exec(h.ctx, `SELECT * FROM `+table).ReadAll()
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]string{}
	for _, raw := range res[0].Rows {
		var vals []string
		for _, v := range raw {
			if v == nil {
				vals = append(vals, "<null>")
			} else {
				vals = append(vals, string(v))
			}
		}
		out[vals[0]] = strings.Join(vals, "|")
	}
	return out
}

// expectFolded fails unless the folded rows of each table equal the
// table's rows, naming the first that differ.
func (h *harness) expectFolded(got map[string]map[string]string, tables ...string) {
	h.t.Helper()
	for _, table := range tables {
		want := h.tableState(table)
		if maps.Equal(got[table], want) {
			continue
		}
		diff := 0
		for id, w := range want {
			if got[table][id] != w && diff < 5 {
				h.t.Errorf("%s row %s: got %q, want %q", table, id, got[table][id], w)
				diff++
			}
		}
		for id, g := range got[table] {
			if _, ok := want[id]; !ok && diff < 10 {
				h.t.Errorf("%s row %s: got %q, which the table does not have", table, id, g)
				diff++
			}
		}
		h.t.Fatalf("%s: %d rows folded, %d in the table", table, len(got[table]), len(want))
	}
}

// TestSnapshotThenStream: 100k existing rows are read at the slot's
// consistent point while changes are committed concurrently; those changes
// and later ones come from the slot, and folding everything gives each
// row's final state.
func TestSnapshotThenStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.big", "public.small")
	h.exec(`CREATE TABLE big (id int PRIMARY KEY, v int, flag boolean, note text)`)
	h.exec(`INSERT INTO big SELECT g, g, g % 2 = 0, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END FROM generate_series(1, 100000) g`)
	h.exec(`CREATE TABLE small (id int PRIMARY KEY, name text)`)
	h.exec(`INSERT INTO small VALUES (1, 'one'), (2, 'two'), (3, 'three')`)
	h.exec(`ANALYZE big`)
	h.cfg.Snapshot = true

	started, proceed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h.rec.snapshotHook = func(ctx context.Context, _ *record.Txn) error {
		once.Do(func() { close(started) })
		select {
		case <-proceed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	info := h.start()
	if !info.SnapshotPending {
		t.Fatalf("Prepare: %+v, want a pending snapshot", info)
	}
	<-started
	// Committed after the consistent point, while the snapshot is read:
	// the snapshot must not see these, the stream must.
	h.exec(`UPDATE big SET v = -1 WHERE id = 1`)
	h.exec(`DELETE FROM big WHERE id = 2`)
	h.exec(`INSERT INTO big VALUES (100001, 1, true, 'during')`)
	h.exec(`UPDATE small SET name = 'uno' WHERE id = 1`)
	close(proceed)

	h.waitFor(60*time.Second, "the snapshot to finish", func() bool {
		h.rec.mu.Lock()
		defer h.rec.mu.Unlock()
		return h.rec.snapDone
	})
	h.exec(`UPDATE big SET v = -2 WHERE id <= 10`)
	h.exec(`DELETE FROM big WHERE id = 3`)
	h.exec(`INSERT INTO big VALUES (100002, 2, false, 'after')`)
	h.exec(`INSERT INTO small VALUES (0, 'marker')`)
	h.waitFor(30*time.Second, "the marker", func() bool {
		ch := h.rec.changes()
		return len(ch) > 0 && text(ch[len(ch)-1].Rel, ch[len(ch)-1].New, "name") == "marker"
	})

	h.rec.mu.Lock()
	snapshot := h.rec.snapshot
	h.rec.mu.Unlock()
	consistent := snapshot[0].CommitLSN
	rows := 0
	for _, b := range snapshot {
		if b.CommitLSN != consistent || b.EndLSN != 0 || b.Xid != 0 || !b.CommitTime.Equal(snapshot[0].CommitTime) {
			t.Fatalf("snapshot batch header %+v differs from the first's", b)
		}
		for _, c := range b.Changes {
			if c.Kind != record.Read || c.Old != nil {
				t.Fatalf("snapshot change %c with old %v", c.Kind, c.Old)
			}
			if c.Rel.Table == "big" && text(c.Rel, c.New, "id") == "1" && text(c.Rel, c.New, "v") != "1" {
				t.Errorf("snapshot saw a change committed after its consistent point: v = %s", text(c.Rel, c.New, "v"))
			}
			if c.Rel.Table == "big" && text(c.Rel, c.New, "id") == "4" && text(c.Rel, c.New, "flag") != "t" {
				t.Errorf("boolean arrived as %q, want pgoutput's text output t", text(c.Rel, c.New, "flag"))
			}
		}
		rows += len(b.Changes)
	}
	if rows != 100003 {
		t.Errorf("snapshot rows %d, want 100003", rows)
	}
	txns := h.rec.handled()
	if txns[0].CommitLSN <= consistent || txns[0].CommitTime.Before(snapshot[0].CommitTime) {
		t.Errorf("first streamed transaction (%X at %v) is not after the snapshot (%X at %v)",
			txns[0].CommitLSN, txns[0].CommitTime, consistent, snapshot[0].CommitTime)
	}
	if len(txns[0].Changes) != 1 || text(txns[0].Changes[0].Rel, txns[0].Changes[0].New, "v") != "-1" {
		t.Errorf("first streamed change %+v, want the update made during the snapshot", txns[0].Changes)
	}
	if h.rec.Persisted() < consistent {
		t.Errorf("persisted %X before the consistent point %X", h.rec.Persisted(), consistent)
	}

	h.expectFolded(apply(snapshot, txns), "big", "small")
	hl := h.src.Health().Snapshot
	if !hl.Done || hl.Rows != 100003 {
		t.Errorf("snapshot progress %+v", hl)
	}
	if n := h.metric("cdcd_capture_snapshot_rows_total"); n != 100003 {
		t.Errorf("snapshot rows metric %v", n)
	}
	if n := h.metric("cdcd_capture_snapshot_progress_ratio"); n != 1 {
		t.Errorf("snapshot progress metric %v", n)
	}
}

// TestSnapshotRestarts: a snapshot cut short, by a process that stops or by
// a failing handler inside one Run, runs again on the slot the first
// attempt created, and streaming then replays every change from that
// slot's consistent point (docs/records.md#snapshot-retries). Rows an
// earlier attempt handed over and that were deleted or changed before the
// retry are deleted or changed again, so folding every batch of every
// attempt and then the stream gives the table: no ghost rows. Nothing was
// persisted before the snapshot finished.
func TestSnapshotRestarts(t *testing.T) {
	t.Parallel()
	h := snapshotHarness(t, 5000, 1000)
	side := connectDB(t, h.ctx, h.dsn) // for the hooks, which run on capture's goroutine

	// First process: stops during the third batch.
	third := h.stopInBatch(3)
	h.start()
	first := <-third
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if h.rec.Persisted() != 0 {
		t.Fatalf("persisted %X during an unfinished snapshot", h.rec.Persisted())
	}
	h.rec.mu.Lock()
	handed := h.rec.snapshot // ids 1 to 2000
	h.rec.mu.Unlock()
	// Between the processes: rows already handed over go or change.
	h.exec(`DELETE FROM t WHERE id <= 10`)
	h.exec(`UPDATE t SET v = -v WHERE id BETWEEN 11 AND 20`)
	h.exec(`INSERT INTO t VALUES (5001, 5001)`)

	// Second process: the handler fails in its second batch, after a row
	// its first batch handed over was deleted; Run retries by itself.
	h.rec = &recorder{}
	h.reg, h.cfg.Metrics = prometheus.NewRegistry(), nil
	batches := 0
	h.rec.snapshotHook = func(ctx context.Context, b *record.Txn) error {
		if batches++; batches == 2 {
			if _, err := side.Exec(ctx, `DELETE FROM t WHERE id = 500; UPDATE t SET v = 0 WHERE id = 600`); err != nil {
				return err
			}
			return errors.New("injected failure")
		}
		return nil
	}
	if info := h.start(); !info.SnapshotPending {
		t.Fatalf("Prepare after an unfinished snapshot: %+v", info)
	}
	h.waitFor(60*time.Second, "the snapshot to finish", func() bool {
		h.rec.mu.Lock()
		defer h.rec.mu.Unlock()
		return h.rec.snapDone
	})
	h.rec.mu.Lock()
	handed = append(handed, h.rec.snapshot...)
	h.rec.mu.Unlock()
	last := handed[len(handed)-1].CommitLSN
	rows := 0
	for _, b := range handed {
		if b.CommitLSN == last {
			rows += len(b.Changes)
		}
	}
	// The retry's batches have their own txId: chunk ids and partition
	// keys never pair them with an earlier attempt's.
	if last <= first || rows != 4990 {
		t.Fatalf("final snapshot at %X (first at %X) has %d rows, want 4990 under a txId of its own", last, first, rows)
	}
	if n := h.metric("cdcd_capture_reconnects_total"); n != 1 {
		t.Errorf("reconnects %v, want 1 for the injected failure", n)
	}

	h.exec(`INSERT INTO t VALUES (0, 0)`)
	h.waitFor(30*time.Second, "the marker", func() bool {
		ch := h.rec.changes()
		return len(ch) > 0 && ch[len(ch)-1].New != nil && text(ch[len(ch)-1].Rel, ch[len(ch)-1].New, "id") == "0"
	})
	txns := h.rec.handled()
	h.expectFolded(apply(handed, txns), "t")
	// Streaming started at the first slot's consistent point: the first
	// change it replays is the delete made between the processes.
	if c := txns[0].Changes; txns[0].CommitLSN <= first || len(c) != 10 || c[0].Kind != record.Delete {
		t.Errorf("first streamed transaction at %X with %d changes, want the 10 deletes made before the retry", txns[0].CommitLSN, len(c))
	}
}

// TestSnapshotSlotDroppedMidwayIsLost: the slot of an unfinished snapshot is
// dropped while its rows are being handed over. Only that slot could replay
// the deletes of rows already handed over, so the retry does not create a
// new one: Run ends with ErrSlotLost (docs/records.md#snapshot-retries).
func TestSnapshotSlotDroppedMidwayIsLost(t *testing.T) {
	t.Parallel()
	h := snapshotHarness(t, 300, 100)
	side := connectDB(t, h.ctx, h.dsn)
	batches := 0
	h.rec.snapshotHook = func(ctx context.Context, _ *record.Txn) error {
		if batches++; batches == 2 {
			if _, err := side.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, h.slot); err != nil {
				return err
			}
			return errors.New("injected failure")
		}
		return nil
	}
	h.start()
	h.wantSlotLost()
}

// TestSnapshotSlotDroppedWhileStoppedIsLost: the process stops during the
// initial snapshot, and the slot is dropped before the next one starts.
// The state records that the snapshot had created its slot, so the next
// process does not take the missing slot for a first start (a new slot
// could not replay the delete below of a row already handed over): Run
// ends with ErrSlotLost and no slot is created
// (docs/records.md#snapshot-retries).
func TestSnapshotSlotDroppedWhileStoppedIsLost(t *testing.T) {
	t.Parallel()
	h := snapshotHarness(t, 300, 100)
	second := h.stopInBatch(2)
	h.start()
	<-second
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if !h.rec.SnapshotStarted() || h.rec.Persisted() != 0 {
		t.Fatalf("after an unfinished snapshot: started %v, persisted %X", h.rec.SnapshotStarted(), h.rec.Persisted())
	}
	// The walsender may hold the slot a moment after the connection goes.
	h.waitFor(10*time.Second, "the slot to be dropped", func() bool {
		_, err := h.db.Exec(h.ctx, `SELECT pg_drop_replication_slot($1)`, h.slot)
		return err == nil
	})
	h.exec(`DELETE FROM t WHERE id = 1`)

	// The next process, with the same state.
	h.rec.snapshotHook = nil
	h.reg, h.cfg.Metrics = prometheus.NewRegistry(), nil
	h.start()
	h.wantSlotLost()
}

// wantSlotLost waits for Run to end with ErrSlotLost, and checks that no
// new slot took the dropped one's place.
func (h *harness) wantSlotLost() {
	h.t.Helper()
	if err := h.runErr(30 * time.Second); !errors.Is(err, capture.ErrSlotLost) {
		h.t.Fatalf("Run ended with %v, want ErrSlotLost", err)
	}
	var n int
	h.db.QueryRow(h.ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, h.slot).Scan(&n)
	if n != 0 {
		h.t.Fatal("capture created a new slot after the unfinished snapshot's was dropped")
	}
}

// snapshotHarness is a harness on a table t of rows rows, which an initial
// snapshot reads in batches of batch rows.
func snapshotHarness(t *testing.T, rows, batch int) *harness {
	h := newHarness(t, "", "public.t")
	h.exec(`CREATE TABLE t (id int PRIMARY KEY, v int)`)
	h.exec(`INSERT INTO t SELECT g, g FROM generate_series(1, $1::int) g`, rows)
	h.cfg.Snapshot, h.cfg.SnapshotBatchRows = true, batch
	return h
}

// stopInBatch makes the snapshot's nth batch wait until Run ends, as a
// process stopped in the middle of it; the channel gets that batch's
// CommitLSN when it is reached.
func (h *harness) stopInBatch(n int) <-chan uint64 {
	reached := make(chan uint64, 1)
	batches := 0
	h.rec.snapshotHook = func(ctx context.Context, b *record.Txn) error {
		if batches++; batches == n {
			reached <- b.CommitLSN
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	return reached
}
