package pipeline

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/atrest"
	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/state"
)

// fakeWriter records one transaction submitted in parts.
type fakeWriter struct {
	f         *fakeSink
	parts     [][]record.Record
	committed uint64
	aborted   bool
}

func (f *fakeSink) Begin() (txnWriter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &fakeWriter{f: f}
	f.writers = append(f.writers, w)
	return w, nil
}

func (w *fakeWriter) Submit(_ context.Context, recs []record.Record) error {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	if w.f.partErr != nil {
		return w.f.partErr
	}
	w.parts = append(w.parts, append([]record.Record(nil), recs...))
	return nil
}

func (w *fakeWriter) Commit(lsn uint64) error {
	w.committed = lsn
	return nil
}

func (w *fakeWriter) Abort() { w.aborted = true }

// spilledTxn is a transaction of n inserts, spilled to dir as capture
// would hand it over.
func spilledTxn(t *testing.T, dir string, end uint64, commit time.Time, n int) *record.Txn {
	t.Helper()
	store, err := atrest.NewSpillStore(dir, nil, atrest.SpillOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := record.NewChangeSpill(store)
	if err != nil {
		t.Fatal(err)
	}
	rel := &record.Relation{ID: 1, Schema: "public", Table: "t", HasKey: true,
		Columns: []record.Column{{Name: "id", TypeOID: 23, Key: true}}}
	for i := range n {
		ch := record.Change{Kind: record.Insert, Rel: rel, New: record.Tuple{{Kind: record.DatumText, Data: []byte(strconv.Itoa(i))}}}
		if err := cs.Add(&ch, 0); err != nil {
			t.Fatal(err)
		}
	}
	r, err := cs.Finish(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &record.Txn{Xid: 9, CommitLSN: end - 8, EndLSN: end, CommitTime: commit, Spilled: r}
}

func files(t *testing.T, dir string) int {
	t.Helper()
	e, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(e)
}

func spillHandler(t *testing.T, cp state.Checkpoint) (*handler, *fakeSink, *fakeLife, string) {
	t.Helper()
	p, snk, life := testHandler(t, cp)
	dir := t.TempDir()
	store, err := atrest.NewSpillStore(dir, nil, atrest.SpillOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.spill = record.SpillOptions{Store: store, Budget: 4096, BatchBytes: 2000}
	return p, snk, life, dir
}

// TestHandlerStreamsSpilledTransaction: a spilled transaction goes to the
// sink in parts and is committed at its end LSN; its spill is deleted, and
// the checkpoint and ts_ns bookkeeping is that of any transaction.
func TestHandlerStreamsSpilledTransaction(t *testing.T) {
	p, snk, life, dir := spillHandler(t, state.Checkpoint{LSN: 100})
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	if err := p.Handle(ctx, spilledTxn(t, dir, 200, base, 300)); err != nil {
		t.Fatal(err)
	}
	if len(snk.writers) != 1 {
		t.Fatalf("%d transactions begun in parts, want 1", len(snk.writers))
	}
	w := snk.writers[0]
	n := 0
	for _, part := range w.parts {
		n += len(part)
	}
	if len(w.parts) < 2 || n != 300 || w.committed != 200 || w.aborted {
		t.Fatalf("parts %d, records %d, committed %d, aborted %v; want several parts of 300 records committed at 200",
			len(w.parts), n, w.committed, w.aborted)
	}
	if files(t, dir) != 0 {
		t.Fatal("spill files left after the transaction was submitted")
	}
	// The next transaction continues ts_ns; the checkpoint carries it.
	if err := p.Handle(ctx, txnAt(300, base)); err != nil {
		t.Fatal(err)
	}
	snk.delivered = 200
	if err := p.Persist(ctx, 200); err != nil {
		t.Fatal(err)
	}
	if got := life.cps[len(life.cps)-1]; got.LSN != 200 || got.TsNs != base.UnixNano() {
		t.Fatalf("checkpoint %+v, want LSN 200 with the spilled transaction's ts_ns", got)
	}
	// A replay of the spilled transaction is skipped, and its spill deleted.
	if err := p.Handle(ctx, spilledTxn(t, dir, 200, base, 10)); err != nil {
		t.Fatal(err)
	}
	if len(snk.writers) != 1 || files(t, dir) != 0 {
		t.Fatalf("replay: %d writers, %d files", len(snk.writers), files(t, dir))
	}
}

// TestHandlerSpilledAbort: when a part cannot be submitted (the session
// is ending), the transaction is aborted in the sink, not faulted, its
// spill deleted, and handed again it is streamed anew.
func TestHandlerSpilledAbort(t *testing.T) {
	p, snk, life, dir := spillHandler(t, state.Checkpoint{LSN: 100})
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	snk.partErr = context.Canceled
	err := p.Handle(context.Background(), spilledTxn(t, dir, 200, base, 300))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Handle: %v, want the sink's error", err)
	}
	if !snk.writers[0].aborted || len(life.faults) != 0 || files(t, dir) != 0 {
		t.Fatalf("aborted %v, faults %v, files %d", snk.writers[0].aborted, life.faults, files(t, dir))
	}
	if lag := p.Lag(base.Add(time.Minute)); lag != 0 {
		t.Fatalf("lag %v after the abort, want 0: nothing is in the sink", lag)
	}
	snk.partErr = nil
	if err := p.Handle(context.Background(), spilledTxn(t, dir, 200, base, 300)); err != nil {
		t.Fatal(err)
	}
	if w := snk.writers[1]; w.committed != 200 {
		t.Fatalf("replay committed at %d, want 200", w.committed)
	}
}

// TestHandlerSpilledEncodeError: a spilled transaction that cannot be
// encoded impairs the stream like any other, and is aborted in the sink.
func TestHandlerSpilledEncodeError(t *testing.T) {
	p, snk, life, dir := spillHandler(t, state.Checkpoint{LSN: 100})
	txn := spilledTxn(t, dir, 200, time.Time{}, 3) // no commit time
	if err := p.Handle(context.Background(), txn); err == nil {
		t.Fatal("Handle succeeded")
	}
	if !snk.writers[0].aborted || len(life.faults) != 1 || life.faults[0] != codes.InternalError || files(t, dir) != 0 {
		t.Fatalf("aborted %v, faults %v, files %d", snk.writers[0].aborted, life.faults, files(t, dir))
	}
}
