package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cdcd-dev/cdcd/capture"
	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/sink"
	"github.com/cdcd-dev/cdcd/state"
)

// lifecycle is the part of a stream's state the pipeline reports into;
// *state.Stream implements it. Its errors only say that a transition was
// not allowed or not persisted, which state.Stream already logs.
type lifecycle interface {
	Created() error
	Fault(code codes.Code, err error) error
	Checkpoint(cp state.Checkpoint) error
}

var _ lifecycle = (*state.Stream)(nil)

// submitter is the part of the sink the pipeline uses.
type submitter interface {
	Submit(ctx context.Context, lsn uint64, recs []record.Record) error
	// Begin opens a transaction submitted in parts (a spilled one).
	Begin() (txnWriter, error)
	Delivered() uint64
	Drain(ctx context.Context) error
}

// txnWriter is sink.TxnWriter: Delivered does not reach the transaction
// before Commit, nor ever after Abort.
type txnWriter interface {
	Submit(ctx context.Context, recs []record.Record) error
	Commit(lsn uint64) error
	Abort()
}

// sinkSubmitter adapts *sink.Sink, whose Begin returns its own writer type.
type sinkSubmitter struct{ *sink.Sink }

func (s sinkSubmitter) Begin() (txnWriter, error) {
	w, err := s.Sink.Begin()
	if err != nil {
		return nil, err
	}
	return w, nil
}

var (
	_ submitter = sinkSubmitter{}
	_ txnWriter = (*sink.TxnWriter)(nil)
)

// pipeline joins capture, record and sink for one stream. It is capture's
// Handler: it encodes each committed transaction, submits its records to the
// sink, and persists the delivered position before capture confirms it.
type handler struct {
	id   string
	enc  *record.Encoder
	sink submitter
	life lifecycle
	met  *pipelineMetrics
	log  *slog.Logger
	now  func() time.Time
	// hold, when set, blocks before a transaction is submitted: while the
	// cluster key is unusable, nothing new is delivered.
	hold func(context.Context) error
	// spill bounds the memory of a spilled transaction's compaction; its
	// Store holds the sorted runs, encrypted like capture's spill.
	spill record.SpillOptions

	mu sync.Mutex
	// prevTs is source.ts_ns of the last submitted transaction.
	prevTs int64
	// submitted is the end LSN of the last submitted transaction; replays
	// after a reconnect up to it are already in the sink.
	submitted uint64
	// pending maps end LSNs of submitted, unpersisted transactions to their
	// ts_ns, so a checkpoint records the ts_ns that belongs to its LSN. A
	// run of transactions without records is one entry (submittedTxn).
	pending []lsnTs
	// streaming is the spilled transaction being submitted in parts, for
	// Lag; zero when none.
	streaming lsnTs
	// stuck is the transaction that could not be encoded, for Lag: it
	// holds the stream where it is until it encodes when the slot hands
	// it again, so its age counts towards the failure threshold; zero
	// when none.
	stuck lsnTs
	cp    state.Checkpoint

	persisted atomic.Uint64
}

type lsnTs struct {
	lsn uint64
	ts  int64
	// empty says the transactions of the entry have no records.
	empty bool
}

func newHandler(id string, cp state.Checkpoint, enc *record.Encoder, snk submitter, life lifecycle, met *pipelineMetrics, log *slog.Logger) *handler {
	p := &handler{id: id, enc: enc, sink: snk, life: life, met: met, log: log, now: time.Now,
		prevTs: cp.TsNs, submitted: cp.LSN, cp: cp}
	p.persisted.Store(cp.LSN)
	return p
}

var _ capture.SnapshotHandler = (*handler)(nil)

// HandleSnapshot encodes a batch of rows read by the initial snapshot
// (op "r") and submits it at position 0: nothing is confirmed to the slot
// until SnapshotDone has seen every row delivered.
func (p *handler) HandleSnapshot(ctx context.Context, batch *record.Txn) error {
	p.mu.Lock()
	prev := p.prevTs
	p.mu.Unlock()
	enc, err := p.enc.Encode(batch, prev, p.now())
	if err != nil {
		err = fmt.Errorf("encode snapshot rows at %s: %w", state.FormatLSN(batch.CommitLSN), err)
		_ = p.life.Fault(codes.InternalError, err)
		return err
	}
	if err := p.sink.Submit(ctx, 0, enc.Records); err != nil {
		return err
	}
	p.mu.Lock()
	p.prevTs = enc.TsNs
	p.mu.Unlock()
	return nil
}

// SnapshotDone waits until every snapshot row is accepted by Kinesis, and
// makes the last batch's source.ts_ns the one the consistent point's
// checkpoint carries: after a restart, the changes streamed from there
// still order after every snapshot row, which a retried snapshot's rows,
// read later than the changes it replays, need (docs/records.md#snapshot-retries).
func (p *handler) SnapshotDone(ctx context.Context) error {
	if err := p.sink.Drain(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	p.cp.TsNs = p.prevTs
	p.mu.Unlock()
	return nil
}

// Handle encodes and submits one transaction. An encoding error holds the
// stream where it is (nothing after it is confirmed) and impairs it.
func (p *handler) Handle(ctx context.Context, txn *record.Txn) error {
	p.mu.Lock()
	if txn.EndLSN <= p.submitted {
		p.mu.Unlock()
		p.log.Debug("transaction already submitted before the reconnect", "xid", txn.Xid, "end_lsn", state.FormatLSN(txn.EndLSN))
		return closeSpill(txn)
	}
	prev := p.prevTs
	p.mu.Unlock()
	if p.hold != nil {
		if err := p.hold(ctx); err != nil {
			_ = closeSpill(txn) // the replay after the reconnect spills anew
			return err
		}
	}
	if txn.Spilled != nil {
		return p.handleSpilled(ctx, txn, prev)
	}

	enc, err := p.enc.Encode(txn, prev, p.now())
	if err != nil {
		return p.encodeFault(txn, err)
	}
	p.skipped(txn, enc.SkippedTruncates)
	if err := p.sink.Submit(ctx, txn.EndLSN, enc.Records); err != nil {
		return err
	}
	p.submittedTxn(txn.EndLSN, enc.TsNs, len(enc.Records) == 0)
	if p.log.Enabled(ctx, slog.LevelDebug) { // the LSN's formatting is not free on the hot path
		p.log.Debug("transaction submitted", "xid", txn.Xid, "end_lsn", state.FormatLSN(txn.EndLSN),
			"changes", len(txn.Changes), "records", len(enc.Records))
	}
	return nil
}

// handleSpilled streams a transaction that capture spilled to disk:
// compacted in bounded memory (record.EncodeSpilled) and submitted in
// parts as its records are made, so it never needs its size in memory
// here either. Any failure aborts it in the sink, which then never
// confirms it; after the reconnect that follows, capture hands it over
// again and it is streamed anew, its records byte-identical to the ones
// that went out the first time.
func (p *handler) handleSpilled(ctx context.Context, txn *record.Txn, prev int64) error {
	w, err := p.sink.Begin()
	if err != nil {
		_ = closeSpill(txn)
		return err
	}
	p.mu.Lock()
	p.streaming = lsnTs{lsn: txn.EndLSN, ts: record.SourceTsNs(txn.CommitTime, prev)}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.streaming = lsnTs{}
		p.mu.Unlock()
	}()
	var submitErr error
	enc, err := p.enc.EncodeSpilled(ctx, txn, prev, p.now(), p.spill, func(recs []record.Record) error {
		submitErr = w.Submit(ctx, recs)
		return submitErr
	})
	if err == nil {
		err = w.Commit(txn.EndLSN)
	}
	if err != nil {
		w.Abort()
		// A spill store without room has reported SPILL_FULL; the
		// transaction is read again once the session reconnects.
		if submitErr != nil || ctx.Err() != nil || errors.Is(err, record.ErrSpillFull) {
			return err
		}
		return p.encodeFault(txn, err)
	}
	p.skipped(txn, enc.SkippedTruncates)
	p.submittedTxn(txn.EndLSN, enc.TsNs, false)
	p.log.Info("spilled transaction submitted", "lsn", state.FormatLSN(txn.CommitLSN), "xid", txn.Xid)
	return nil
}

// closeSpill deletes the spill of a transaction that is not encoded.
func closeSpill(txn *record.Txn) error {
	if txn.Spilled == nil {
		return nil
	}
	return txn.Spilled.Close()
}

// encodeFault impairs the stream for a transaction that cannot be encoded
// and counts it in Lag.
func (p *handler) encodeFault(txn *record.Txn, err error) error {
	// record's errors name schema, table, column and type, never a value.
	err = fmt.Errorf("encode transaction %d at %s: %w", txn.Xid, state.FormatLSN(txn.CommitLSN), err)
	p.mu.Lock()
	p.stuck = lsnTs{lsn: txn.EndLSN, ts: txn.CommitTime.UnixNano()}
	p.mu.Unlock()
	_ = p.life.Fault(codes.InternalError, err)
	return err
}

func (p *handler) skipped(txn *record.Txn, rels []*record.Relation) {
	for _, rel := range rels {
		p.met.truncates.Inc()
		p.log.Warn("TRUNCATE not emitted: the stream does not opt in to truncate records (emit_truncate = true); consumers still hold the table's rows",
			"table", rel.Schema+"."+rel.Table, "lsn", state.FormatLSN(txn.CommitLSN))
	}
}

// submittedTxn records a transaction the sink holds in full. One without
// records that follows another without records extends that one's entry
// instead of adding its own, so that logical messages and empty
// transactions cost no memory per transaction while Kinesis holds an
// earlier record (docs/delivery.md#bounded-memory). A checkpoint that
// falls inside such a run keeps the ts_ns of the entry before it: no
// record is emitted in between, so that is still the ts_ns of the last
// record before the checkpoint, and the lag of an undelivered run is that
// of the record it waits for.
func (p *handler) submittedTxn(end uint64, ts int64, empty bool) {
	p.mu.Lock()
	p.prevTs, p.submitted = ts, end
	if n := len(p.pending); empty && n > 0 && p.pending[n-1].empty {
		p.pending[n-1].lsn, p.pending[n-1].ts = end, ts
	} else {
		p.pending = append(p.pending, lsnTs{end, ts, empty})
	}
	p.met.pending.Set(float64(len(p.pending)))
	if end >= p.stuck.lsn {
		p.stuck = lsnTs{}
	}
	p.mu.Unlock()
}

// MarkSnapshotStarted records in the state file that the initial snapshot
// created the stream's slot, before any of its rows is handed over.
func (p *handler) MarkSnapshotStarted(context.Context) error {
	p.mu.Lock()
	p.cp.SnapshotStarted = true
	cp := p.cp
	p.mu.Unlock()
	return p.life.Checkpoint(cp)
}

// SnapshotStarted is whether a run of the stream marked its snapshot
// started.
func (p *handler) SnapshotStarted() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cp.SnapshotStarted
}

// Delivered is the sink's contiguous acknowledged position.
func (p *handler) Delivered() uint64 { return p.sink.Delivered() }

// Persisted is the last checkpoint written.
func (p *handler) Persisted() uint64 { return p.persisted.Load() }

// Persist writes the checkpoint for lsn, which capture guarantees is
// delivered: the ts_ns saved with it is that of the last transaction ending
// at or before it.
func (p *handler) Persist(_ context.Context, lsn uint64) error {
	p.mu.Lock()
	cp := p.cp
	i := 0
	for ; i < len(p.pending) && p.pending[i].lsn <= lsn; i++ {
		cp.TsNs = p.pending[i].ts
	}
	p.pending = p.pending[i:]
	p.met.pending.Set(float64(len(p.pending)))
	cp.LSN = max(cp.LSN, lsn)
	p.cp = cp
	p.mu.Unlock()
	if err := p.life.Checkpoint(cp); err != nil {
		return err
	}
	p.persisted.Store(cp.LSN)
	return nil
}

// Lag is the age of the oldest transaction not yet delivered, measured
// from its commit time: submitted, being submitted, or held because it
// cannot be encoded; zero when all are delivered.
func (p *handler) Lag(now time.Time) time.Duration {
	delivered := p.sink.Delivered()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.pending {
		if e.lsn > delivered {
			return now.Sub(time.Unix(0, e.ts))
		}
	}
	for _, e := range []lsnTs{p.streaming, p.stuck} {
		if e.lsn != 0 {
			return now.Sub(time.Unix(0, e.ts))
		}
	}
	return 0
}
