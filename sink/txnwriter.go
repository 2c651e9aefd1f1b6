package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cdcd-dev/cdcd/record"
)

// A transaction too large to hold in memory is submitted in parts: Begin,
// then Submit each part as it is encoded, then Commit with the position to
// confirm. The transaction enters the tracker at Begin, holding one extra
// pending count, Commit's own; so however many of its records Kinesis has
// accepted, it is not retired, and Delivered does not reach it, until
// Commit, and later transactions cannot pass it either.
//
// Abort (the pipeline gave up: the replication session dropped, the spill
// could not be read, or the encoding failed) takes the transaction out of
// the tracker: it was the newest, since nothing is submitted while it is
// open, so Delivered stays at the transaction before it. Its parts already
// queued are still sent: the same transaction comes again after the
// reconnect, from the confirmed position, with byte-identical records, so
// they are duplicates, which at-least-once delivery allows (docs/records.md#identity), and
// in ROW ordering they precede the replay's records of their rows, so
// per-row order holds. Dropping them instead would save Kinesis writes but
// not correctness.

// ErrTxnOpen is returned by Submit and Begin while a TxnWriter is open.
var ErrTxnOpen = errors.New("sink: a transaction is being submitted in parts")

// errTxnDone is returned by a TxnWriter used after Commit or Abort.
var errTxnDone = errors.New("sink: transaction already committed or aborted")

// TxnWriter submits one transaction in parts. Its methods are not safe for
// concurrent use; other Sink methods may run meanwhile.
type TxnWriter struct {
	s    *Sink
	t    *txn
	done bool
}

// Begin opens a transaction to be submitted in parts. At most one is open
// at a time, and Submit waits for it to be committed or aborted.
func (s *Sink) Begin() (*TxnWriter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopped:
		return nil, ErrStopped
	case s.open != nil:
		return nil, ErrTxnOpen
	}
	// pending 1 is Commit's: no Delivered before it.
	t := &txn{pending: 1, at: time.Now()}
	s.open = t
	s.tr.push(t)
	s.m.tracked(s.tr.txns.len())
	return &TxnWriter{s: s, t: t}, nil
}

// Submit queues one part of the transaction's records, in order after the
// parts before it. Like Sink.Submit it blocks while the queued bytes are at
// or over Config.QueueBytes, and admits the whole part once they are
// below; it returns ctx.Err() or ErrStopped with nothing queued. The sink
// keeps the records' Data until accepted, but not recs.
func (w *TxnWriter) Submit(ctx context.Context, recs []record.Record) error {
	if w.done {
		return errTxnDone
	}
	if len(recs) == 0 {
		return nil
	}
	// Each part has its own entries: queues point into them, and a part
	// is freed once all its records are accepted.
	entries := make([]entry, len(recs))
	bytes := 0
	for i, r := range recs {
		entries[i] = entry{rec: r, size: r.Size(), txn: w.t}
		bytes += entries[i].size
	}
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.waitSpace(ctx); err != nil {
		return err
	}
	w.t.pending += len(recs)
	s.enqueue(entries, bytes)
	s.m.queued(s.queuedRecords, s.queuedBytes)
	return nil
}

// Commit closes the transaction at confirm position lsn, which must not be
// below earlier positions. From now on Delivered may reach lsn, once every
// part is accepted. After an error the transaction is still open: Abort it.
func (w *TxnWriter) Commit(lsn uint64) error {
	if w.done {
		return errTxnDone
	}
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopped:
		return ErrStopped
	case lsn < s.lastLSN:
		return fmt.Errorf("sink: commit lsn %d after %d: positions must not decrease", lsn, s.lastLSN)
	}
	w.done = true
	s.open = nil
	w.t.lsn = lsn
	s.lastLSN = lsn
	s.submitted++
	w.t.pending--
	if s.tr.advance() {
		s.retired()
	}
	return nil
}

// Abort gives the transaction up; see the top of this file for what
// happens to its parts. It does nothing after Commit or Abort.
func (w *TxnWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open = nil
	if s.tr.txns.len() > 0 && s.tr.txns.back() == w.t {
		s.tr.txns.popBack()
		s.m.tracked(s.tr.txns.len())
	}
	// Its queued records still count it down; it is in no tracker, so
	// that moves nothing.
}
