package pipeline

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/state"
)

type fakeSink struct {
	mu        sync.Mutex
	submitted []uint64
	delivered uint64
	// writers are the transactions begun in parts; partErr fails parts.
	writers []*fakeWriter
	partErr error
}

func (f *fakeSink) Submit(_ context.Context, lsn uint64, _ []record.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submitted = append(f.submitted, lsn)
	return nil
}

func (f *fakeSink) Drain(context.Context) error { return nil }

func (f *fakeSink) Delivered() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delivered
}

type fakeLife struct {
	cps    []state.Checkpoint // the checkpoints written
	faults []codes.Code
	errs   []error // the faults' errors
	// cpErr, when set, fails Checkpoint: the checkpoint is not written.
	cpErr error
}

func (f *fakeLife) Created() error { return nil }
func (f *fakeLife) Fault(c codes.Code, err error) error {
	f.faults = append(f.faults, c)
	f.errs = append(f.errs, err)
	return nil
}
func (f *fakeLife) Checkpoint(cp state.Checkpoint) error {
	if f.cpErr != nil {
		return f.cpErr
	}
	f.cps = append(f.cps, cp)
	return nil
}

func testHandler(t *testing.T, cp state.Checkpoint) (*handler, *fakeSink, *fakeLife) {
	t.Helper()
	snk := &fakeSink{}
	p, life := testHandlerOn(t, cp, snk)
	return p, snk, life
}

// testHandlerOn is a handler on snk whose lifecycle is a fakeLife.
func testHandlerOn(t *testing.T, cp state.Checkpoint, snk submitter) (*handler, *fakeLife) {
	t.Helper()
	enc, err := record.NewEncoder(record.Config{SystemID: 7, Cluster: "abcdefghijklmnopqrstuvwxyz", Database: "db", Ordering: record.Unordered})
	if err != nil {
		t.Fatal(err)
	}
	met, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	life := &fakeLife{}
	return newHandler("id", cp, enc, snk, life, met.stream("s").pipe, slog.New(slog.DiscardHandler)), life
}

func txnAt(end uint64, commit time.Time) *record.Txn { return txnInserting(end, commit, 1) }

// txnInserting is a transaction ending at end that inserts the row id.
func txnInserting(end uint64, commit time.Time, id int) *record.Txn {
	rel := &record.Relation{ID: 1, Schema: "public", Table: "t", HasKey: true,
		Columns: []record.Column{{Name: "id", TypeOID: 23, Key: true}}}
	return &record.Txn{Xid: 1, CommitLSN: end - 8, EndLSN: end, CommitTime: commit, Changes: []record.Change{
		{Kind: record.Insert, Rel: rel, New: record.Tuple{{Kind: record.DatumText, Data: []byte(strconv.Itoa(id))}}}}}
}

// TestHandlerCheckpointCarriesTheTsOfItsLSN: the ts_ns persisted with an
// LSN is that of the last transaction ending at or before it, so a restart
// from the checkpoint continues the strictly increasing ts_ns sequence.
func TestHandlerCheckpointCarriesTheTsOfItsLSN(t *testing.T) {
	p, snk, life := testHandler(t, state.Checkpoint{LSN: 100, TsNs: 5})
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	for i, end := range []uint64{200, 300, 400} {
		if err := p.Handle(ctx, txnAt(end, base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	// A replay after a reconnect is already in the sink: not submitted again.
	if err := p.Handle(ctx, txnAt(300, base)); err != nil {
		t.Fatal(err)
	}
	if len(snk.submitted) != 3 {
		t.Fatalf("submitted %v, want 3 transactions once each", snk.submitted)
	}
	snk.delivered = 300
	if err := p.Persist(ctx, 350); err != nil {
		t.Fatal(err)
	}
	got := life.cps[len(life.cps)-1]
	want := state.Checkpoint{LSN: 350, TsNs: base.Add(time.Second).UnixNano()}
	if got != want {
		t.Fatalf("checkpoint %+v, want %+v", got, want)
	}
	if p.Persisted() != 350 {
		t.Fatalf("Persisted = %d", p.Persisted())
	}
	// The checkpoint never moves back.
	if err := p.Persist(ctx, 120); err != nil {
		t.Fatal(err)
	}
	if got := life.cps[len(life.cps)-1]; got.LSN != 350 {
		t.Fatalf("checkpoint moved back to %+v", got)
	}
}

func TestHandlerTsNsContinuesFromCheckpoint(t *testing.T) {
	commit := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	// The checkpoint's ts_ns is ahead of the next commit time (a clock
	// step back): the next transaction gets checkpoint + 1.
	p, _, life := testHandler(t, state.Checkpoint{LSN: 100, TsNs: commit.UnixNano() + 1000})
	if err := p.Handle(context.Background(), txnAt(200, commit)); err != nil {
		t.Fatal(err)
	}
	p.sink.(*fakeSink).delivered = 200
	if err := p.Persist(context.Background(), 200); err != nil {
		t.Fatal(err)
	}
	if ts := life.cps[0].TsNs; ts != commit.UnixNano()+1001 {
		t.Fatalf("ts_ns = %d, want %d", ts, commit.UnixNano()+1001)
	}
}

func TestHandlerLagIsAgeOfOldestUndelivered(t *testing.T) {
	p, snk, _ := testHandler(t, state.Checkpoint{})
	c1 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, end := range []uint64{200, 300} {
		if err := p.Handle(context.Background(), txnAt(end, c1.Add(time.Duration(i)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	now := c1.Add(10 * time.Minute)
	if lag := p.Lag(now); lag != 10*time.Minute {
		t.Fatalf("lag %s, want 10m", lag)
	}
	snk.delivered = 200
	if lag := p.Lag(now); lag != 9*time.Minute {
		t.Fatalf("lag %s, want 9m", lag)
	}
	snk.delivered = 300
	if lag := p.Lag(now); lag != 0 {
		t.Fatalf("lag %s, want 0 when everything is delivered", lag)
	}
}

// TestHandlerUnencodableCountsInLag: a transaction that cannot be encoded
// impairs the stream with a message that names its table, column, type and
// LSN but not the value, and counts in lag from its commit time (so the
// failure threshold applies) until it encodes when handed again.
func TestHandlerUnencodableCountsInLag(t *testing.T) {
	p, snk, life := testHandler(t, state.Checkpoint{})
	c1 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	if err := p.Handle(ctx, txnAt(200, c1)); err != nil {
		t.Fatal(err)
	}
	snk.delivered = 200
	const value = "294276-12-31 23:59:59"
	bad := txnAt(300, c1.Add(time.Minute))
	bad.Changes[0].Rel = &record.Relation{ID: 2, Schema: "public", Table: "events", HasKey: true,
		Columns: []record.Column{{Name: "id", TypeOID: 23, Key: true}, {Name: "at", TypeOID: 1114}}}
	bad.Changes[0].New = append(bad.Changes[0].New, record.Datum{Kind: record.DatumText, Data: []byte(value)})
	err := p.Handle(ctx, bad)
	if err == nil {
		t.Fatal("a timestamp past the record format's range was encoded")
	}
	if len(life.faults) != 1 || life.faults[0] != codes.InternalError {
		t.Fatalf("faults %v, want one INTERNAL_ERROR", life.faults)
	}
	msg := life.errs[0].Error()
	for _, want := range []string{`"public"."events" column "at"`, "type timestamp, OID 1114", state.FormatLSN(bad.CommitLSN), "value out of range"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not name %s", msg, want)
		}
	}
	if strings.Contains(msg, "294276") || strings.Contains(err.Error(), "294276") {
		t.Errorf("message quotes the value: %q", msg)
	}
	now := c1.Add(10 * time.Minute)
	if lag := p.Lag(now); lag != 9*time.Minute {
		t.Fatalf("lag %s, want 9m: the held transaction's age", lag)
	}
	// Handed again and encoded (say, after a fix), it is lag like any other.
	if err := p.Handle(ctx, txnAt(300, c1.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	snk.delivered = 300
	if lag := p.Lag(now); lag != 0 {
		t.Fatalf("lag %s after the transaction was delivered, want 0", lag)
	}
}

// TestHandlerEmptyTransactionsBounded: transactions without records
// behind an undelivered one add one pending entry per run of them, and
// checkpoints within and after a run carry the ts_ns of the last
// transaction at or before them.
func TestHandlerEmptyTransactionsBounded(t *testing.T) {
	p, snk, life := testHandler(t, state.Checkpoint{LSN: 100, TsNs: 5})
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	handle := func(txn *record.Txn) {
		t.Helper()
		if err := p.Handle(ctx, txn); err != nil {
			t.Fatal(err)
		}
	}
	handle(txnAt(200, base))
	end := uint64(200)
	for i := range 10000 {
		end += 10
		handle(&record.Txn{Xid: 2, CommitLSN: end - 8, EndLSN: end, CommitTime: base.Add(time.Duration(i+1) * time.Millisecond)})
	}
	handle(txnAt(end+10, base.Add(time.Minute)))
	if n := len(p.pending); n != 3 {
		t.Fatalf("%d pending entries for 10002 transactions, two of them with records, want 3", n)
	}
	if len(snk.submitted) != 10002 {
		t.Fatalf("submitted %d transactions, want every one", len(snk.submitted))
	}
	if lag := p.Lag(base.Add(2 * time.Minute)); lag != 2*time.Minute {
		t.Fatalf("lag %s, want that of the first undelivered record, 2m", lag)
	}
	// Delivered inside the run: the checkpoint keeps the first
	// transaction's ts_ns, the last emitted before it.
	snk.delivered = 250
	if err := p.Persist(ctx, 250); err != nil {
		t.Fatal(err)
	}
	if got, want := life.cps[len(life.cps)-1], (state.Checkpoint{LSN: 250, TsNs: base.UnixNano()}); got != want {
		t.Fatalf("checkpoint %+v, want %+v", got, want)
	}
	snk.delivered = end
	if err := p.Persist(ctx, end); err != nil {
		t.Fatal(err)
	}
	want := state.Checkpoint{LSN: end, TsNs: base.Add(10000 * time.Millisecond).UnixNano()}
	if got := life.cps[len(life.cps)-1]; got != want {
		t.Fatalf("checkpoint %+v, want %+v", got, want)
	}
	if n := len(p.pending); n != 1 {
		t.Fatalf("%d pending entries after the run was persisted, want 1", n)
	}
}

// TestHandlerMarksSnapshotStarted: the mark that the initial snapshot made
// its slot is written as a checkpoint at position 0, and a handler built
// from that checkpoint, as after a restart, reports it.
func TestHandlerMarksSnapshotStarted(t *testing.T) {
	p, _, life := testHandler(t, state.Checkpoint{})
	if p.SnapshotStarted() {
		t.Fatal("a new stream reports a snapshot started")
	}
	if err := p.MarkSnapshotStarted(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(life.cps) != 1 || life.cps[0] != (state.Checkpoint{SnapshotStarted: true}) {
		t.Fatalf("checkpoints written: %+v", life.cps)
	}
	if again, _, _ := testHandler(t, life.cps[0]); !again.SnapshotStarted() {
		t.Fatal("a handler from the written checkpoint does not report the snapshot started")
	}
}
