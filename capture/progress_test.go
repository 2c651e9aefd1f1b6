package capture

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestSnapshotProgress: Health shows the tables read and the rows handed on
// while the snapshot runs, and the totals once it is done; the metrics
// follow, the ratio held below 1 until the end.
func TestSnapshotProgress(t *testing.T) {
	src, err := New(Config{DSN: "postgres://x", Slot: "s", Publication: "p", Snapshot: true, MemoryBudget: -1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	src.met = m.Stream("orders")
	if got := src.Health().Snapshot; got != (SnapshotProgress{}) {
		t.Fatalf("before the snapshot: %+v", got)
	}

	prog := src.trackSnapshot([]snapTable{{estimate: 100}, {estimate: 50}, {estimate: 0}})
	want := SnapshotProgress{Running: true, Tables: 3, EstimatedRows: 150}
	if got := src.Health().Snapshot; got != want {
		t.Fatalf("started: %+v, want %+v", got, want)
	}
	prog.table("public.a")
	prog.rows(60)
	prog.rows(60) // more than reltuples estimated
	prog.tableDone()
	prog.table("public.b")
	prog.rows(10)
	want = SnapshotProgress{Running: true, Table: "public.b", TablesDone: 1, Tables: 3, Rows: 130, EstimatedRows: 150}
	if got := src.Health().Snapshot; got != want {
		t.Fatalf("running: %+v, want %+v", got, want)
	}
	if v := metricValue(src.met.snapshotRows); v != 130 {
		t.Errorf("rows metric %v, want 130", v)
	}
	prog.rows(30)
	if v := metricValue(src.met.snapshotProgress); v != 0.99 {
		t.Errorf("progress ratio %v past the estimate, want 0.99 until done", v)
	}

	prog.tableDone()
	prog.table("public.c")
	prog.tableDone()
	prog.done()
	want = SnapshotProgress{Done: true, TablesDone: 3, Tables: 3, Rows: 160, EstimatedRows: 160}
	if got := src.Health().Snapshot; got != want {
		t.Fatalf("done: %+v, want %+v", got, want)
	}
	if v := metricValue(src.met.snapshotProgress); v != 1 {
		t.Errorf("progress ratio %v when done, want 1", v)
	}
}
