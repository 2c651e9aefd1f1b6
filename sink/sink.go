// Package sink delivers committed transactions' records to a Kinesis data
// stream with PutRecords: batching by count and bytes, a bounded number of
// requests in flight, retry of exactly the entries that failed, per-row
// ordering (docs/records.md#ordering), error classification into status-reason codes
// (docs/lifecycle.md#codes), and an acknowledgement value, Delivered, that is safe to
// confirm to PostgreSQL (docs/delivery.md).
//
// Data flow: Submit puts a transaction's records on a queue (fifo for
// UNORDERED, keyed for ROW), or a TxnWriter puts them there in parts for
// a transaction too large to encode at once (txnwriter.go); MaxInFlight
// workers, owned by Run, take
// batches, send them, and keep resending a batch's failed entries with
// backoff until Kinesis has accepted every one. Accepted records count down
// their transaction in a tracker, which retires transactions in commit
// order and so yields Delivered even when requests complete out of order.
package sink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/cdcd-dev/cdcd/record"
)

// ErrStopped is returned by Submit and Drain once Run has returned.
var ErrStopped = errors.New("sink: stopped")

// Sink delivers records to one Kinesis stream. Its methods are safe for
// concurrent use; Submit calls must be in commit order.
type Sink struct {
	cfg        Config
	api        PutRecordsAPI
	m          *StreamMetrics
	streamName *string
	streamARN  *string
	running    atomic.Bool
	delivered  atomic.Uint64

	mu            sync.Mutex
	q             queue
	tr            tracker
	queuedBytes   int
	queuedRecords int
	lastLSN       uint64
	submitted     uint64 // transactions submitted
	open          *txn   // the transaction a TxnWriter is writing, if any
	draining      int    // Drain calls waiting: send part-filled batches at once
	stopped       bool
	// Wait channels, made by the first waiter and closed (then cleared) by
	// the next event, so nothing is allocated while nobody waits.
	wake     chan struct{} // workers: entries became ready
	space    chan struct{} // Submit: queued bytes fell below the bound
	progress chan struct{} // Drain: transactions retired

	health health
}

// New validates cfg over its defaults and returns a Sink that sends through
// api. Nothing is sent until Run is called.
func New(cfg Config, api PutRecordsAPI) (*Sink, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if api == nil {
		return nil, errors.New("sink: nil PutRecordsAPI")
	}
	s := &Sink{cfg: cfg, api: api, m: cfg.Metrics}
	if cfg.StreamName != "" {
		s.streamName = aws.String(cfg.StreamName)
	} else {
		s.streamARN = aws.String(cfg.StreamARN)
	}
	if cfg.Ordering == record.Row {
		s.q = newKeyed()
	} else {
		s.q = &fifo{}
	}
	s.health.init(cfg)
	return s, nil
}

// Run sends until ctx is done. It owns every goroutine of the sink and
// returns nil after ctx is done and all of them have stopped; records not
// yet accepted then stay undelivered (Delivered does not cover them) and
// are sent again after a restart from the confirmed position. Run may be
// called once.
func (s *Sink) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("sink: Run called twice")
	}
	var wg sync.WaitGroup
	for range s.cfg.MaxInFlight {
		wg.Go(func() { s.work(ctx) })
	}
	wg.Wait()
	s.mu.Lock()
	s.stopped = true
	s.broadcast(&s.space)
	s.broadcast(&s.progress)
	s.mu.Unlock()
	return nil
}

// Submit queues all records of one committed transaction whose confirm
// position is lsn; lsn must not decrease across calls. It blocks while the
// queued bytes are at or over Config.QueueBytes, and admits the whole
// transaction once they are below, however large it is (see QueueBytes).
// If ctx ends first it returns ctx.Err() with nothing enqueued. The sink
// keeps recs' Data slices until they are accepted: do not modify them. A
// transaction without records is allowed; it advances Delivered once
// everything before it is delivered, and costs no memory of its own when
// it follows another whose records are all accepted (tracker.coalesce).
// While a TxnWriter is open, Submit fails with ErrTxnOpen.
func (s *Sink) Submit(ctx context.Context, lsn uint64, recs []record.Record) error {
	t := &txn{lsn: lsn, pending: len(recs), at: time.Now()}
	bytes := 0
	if len(recs) > 0 {
		t.entries = make([]entry, len(recs))
		for i, r := range recs {
			t.entries[i] = entry{rec: r, size: r.Size(), txn: t}
			bytes += t.entries[i].size
		}
	}
	s.mu.Lock()
	err := s.waitSpace(ctx)
	switch {
	case err != nil:
	case s.open != nil:
		err = ErrTxnOpen
	case lsn < s.lastLSN:
		err = fmt.Errorf("sink: submit lsn %d after %d: positions must not decrease", lsn, s.lastLSN)
	}
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.lastLSN = lsn
	if len(recs) == 0 && s.tr.coalesce(lsn) {
		s.mu.Unlock()
		return nil
	}
	s.submitted++
	s.tr.push(t)
	s.enqueue(t.entries, bytes)
	if len(recs) == 0 && s.tr.advance() {
		s.retired()
	}
	s.m.queued(s.queuedRecords, s.queuedBytes)
	s.m.tracked(s.tr.txns.len())
	s.mu.Unlock()
	return nil
}

// waitSpace waits until the queued bytes are below Config.QueueBytes, or
// Run stops (ErrStopped), or ctx ends (its error). Caller holds mu, which
// is held again when it returns.
func (s *Sink) waitSpace(ctx context.Context) error {
	for {
		switch {
		case s.stopped:
			return ErrStopped
		case ctx.Err() != nil:
			return ctx.Err()
		case s.queuedBytes < s.cfg.QueueBytes:
			return nil
		}
		ch := s.waitOn(&s.space)
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-ch:
		}
		s.mu.Lock()
	}
}

// Delivered is the highest lsn passed to Submit such that Kinesis has
// accepted every record of that transaction and of every earlier one; 0
// before any. It is safe to confirm to PostgreSQL as the flush position.
func (s *Sink) Delivered() uint64 { return s.delivered.Load() }

// Drain waits until everything submitted before the call is delivered, or
// ctx ends (ctx.Err()), or Run stops (ErrStopped). While it waits, batches
// are sent without lingering.
func (s *Sink) Drain(ctx context.Context) error {
	s.mu.Lock()
	target := s.submitted
	s.draining++
	s.broadcast(&s.wake)
	defer func() {
		s.mu.Lock()
		s.draining--
		s.mu.Unlock()
	}()
	for s.tr.retired < target {
		if s.stopped {
			s.mu.Unlock()
			return ErrStopped
		}
		ch := s.waitOn(&s.progress)
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	return nil
}

// waitOn returns the channel a waiter blocks on, making it if needed.
// Caller holds mu.
func (s *Sink) waitOn(ch *chan struct{}) chan struct{} {
	if *ch == nil {
		*ch = make(chan struct{})
	}
	return *ch
}

// broadcast wakes every waiter of ch. Caller holds mu.
func (s *Sink) broadcast(ch *chan struct{}) {
	if *ch != nil {
		close(*ch)
		*ch = nil
	}
}

// enqueue queues entries and wakes the idle workers when that changes what
// they wait for. A worker waiting with ready entries has a timer for the
// oldest one's linger, which a newer entry does not move: it needs waking
// only when the entries become the first ready ones or fill a batch.
// Waking all of them on every transaction cost four goroutine switches per
// single-row transaction (BENCHMARKS.md#optimisations). Caller holds mu.
func (s *Sink) enqueue(es []entry, bytes int) {
	before, _, _ := s.q.ready()
	for i := range es {
		s.q.push(&es[i])
	}
	s.queuedBytes += bytes
	s.queuedRecords += len(es)
	n, ready, _ := s.q.ready()
	maxRecords, maxBytes := s.cfg.takeLimits()
	if (before == 0 && n > 0) || n >= maxRecords || ready >= maxBytes {
		s.broadcast(&s.wake)
	}
}

// retired publishes a new Delivered. Caller holds mu.
func (s *Sink) retired() {
	s.delivered.Store(s.tr.delivered)
	s.m.tracked(s.tr.txns.len())
	s.broadcast(&s.progress)
}

// work is one of MaxInFlight workers: take a batch, deliver it completely,
// repeat. A worker keeps its batch through every retry, so MaxInFlight also
// bounds the batches in backoff: under throttling the sink slows down
// instead of sending new records into a throttled stream.
func (s *Sink) work(ctx context.Context) {
	b := newBatch(s.cfg.MaxRecordsPerCall)
	for {
		var err error
		b.entries, err = s.next(ctx, b.entries[:0])
		if err != nil {
			return
		}
		if !s.deliver(ctx, b) {
			return
		}
	}
}

// next waits for a batch: MaxRecordsPerCall ready entries, or
// MaxRequestBytes of them (with aggregation, see takeLimits), or entries older than Linger, or a Drain.
func (s *Sink) next(ctx context.Context, dst []*entry) ([]*entry, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var timeout <-chan time.Time
		s.mu.Lock()
		n, bytes, oldest := s.q.ready()
		if n > 0 {
			wait := s.cfg.Linger - time.Since(oldest)
			maxRecords, maxBytes := s.cfg.takeLimits()
			if n >= maxRecords || bytes >= maxBytes || wait <= 0 || s.draining > 0 {
				dst = s.q.take(dst, maxRecords, maxBytes)
				if n, _, _ := s.q.ready(); n > 0 {
					s.broadcast(&s.wake) // more for an idle worker
				}
				s.mu.Unlock()
				return dst, nil
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			timeout = timer.C
		}
		ch := s.waitOn(&s.wake)
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return dst, ctx.Err()
		case <-ch:
		case <-timeout:
		}
	}
}

// accept records entries that Kinesis accepted: frees their keys and queue
// bytes, counts down their transactions and advances Delivered.
func (s *Sink) accept(es []*entry) {
	bytes := 0
	s.mu.Lock()
	readied := false
	for _, e := range es {
		readied = s.q.release(e) || readied
		e.txn.pending--
		bytes += e.size
	}
	s.queuedBytes -= bytes
	s.queuedRecords -= len(es)
	s.m.published(len(es), bytes) // before Delivered moves, so metrics never lag it
	if s.tr.advance() {
		s.retired()
	}
	if s.queuedBytes < s.cfg.QueueBytes {
		s.broadcast(&s.space)
	}
	if readied {
		s.broadcast(&s.wake)
	}
	s.m.queued(s.queuedRecords, s.queuedBytes)
	s.mu.Unlock()
}
