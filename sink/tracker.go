package sink

import "time"

// txn is one submitted transaction: its confirm position and how many of
// its records Kinesis has not accepted yet.
type txn struct {
	lsn     uint64
	pending int
	at      time.Time
	entries []entry
}

// tracker turns acceptances that arrive in any order into one number, the
// highest LSN below which everything is delivered — Redpanda Connect's
// capped checkpointer without the cap (Submit's byte bound is the cap).
// Transactions enter in commit order; the front is retired while its count
// of pending records is zero, so a transaction that completes early waits
// for every one before it.
type tracker struct {
	txns      ring[*txn]
	delivered uint64 // LSN of the last retired transaction
	retired   uint64 // transactions retired so far
}

func (t *tracker) push(x *txn) { t.txns.push(x) }

// coalesce moves the newest transaction's position up to lsn, for a
// transaction without records, when every record of that newest one is
// accepted already, and reports whether it did. The two then retire
// together, once everything before them is delivered, which is exactly
// when each alone would have: so a run of transactions without records
// (logical messages, or empty ones from PostgreSQL 13 and 14) behind an
// undelivered one costs one entry however long it is, and Delivered
// never passes a record Kinesis has not accepted.
func (t *tracker) coalesce(lsn uint64) bool {
	if t.txns.len() == 0 || t.txns.back().pending != 0 {
		return false
	}
	t.txns.back().lsn = lsn
	return true
}

// advance retires completed transactions from the front and reports
// whether Delivered moved.
func (t *tracker) advance() bool {
	moved := false
	for t.txns.len() > 0 && t.txns.front().pending == 0 {
		x := t.txns.pop()
		x.entries = nil
		t.delivered = x.lsn
		t.retired++
		moved = true
	}
	return moved
}
