package sink

import "time"

// keyed is the ROW queue. Its invariant is the ordering argument of the
// sink: at most one entry per partition key is out of the queue (in a
// request, or waiting to be retried) at any time, and a key's next entry is
// handed out only after the previous one was accepted (release).
//
// Why one per key and not "several in one request, in order": PutRecords
// does not guarantee order inside a request (its API reference: "A single
// record failure does not stop the processing of subsequent records. As a
// result, PutRecords doesn't guarantee the ordering of records"): if entry 3
// fails and entry 7 of the same key succeeds, 7 is on the shard before 3's
// retry. And two requests in flight at once may be applied in either order.
//
// With one entry per key out at a time, record i+1 of a row is first sent
// after the response accepting record i was received, so Kinesis has
// already given i its sequence number and i+1 gets a higher one on the same
// shard (same key, same shard). Per-key order therefore holds whatever
// fails, however it is retried, and however requests complete. Retries only
// ever resend the entry that is out, so a duplicate (a call that failed for
// us but was applied by Kinesis) repeats i before i+1 is sent. The one gap
// no producer can close: a call abandoned on CallTimeout that Kinesis
// applies later still could land i after i+1; consumers that need to can
// discard it by source.ts_ns.
//
// The price is one record per key per round trip, so a hot row moves at its
// request latency. Write-set compaction leaves one record per row per
// transaction, so this binds only rows changed by more than ~50
// transactions a second.
//
// Among keys that may send, the one whose next record was submitted first
// goes first, so a key that waited for an acceptance is not sent behind
// newer rows; that keeps the oldest undelivered record, and so Delivered
// and lag, moving. Keys become sendable two ways: a record arrives for an
// idle key (its seq is the newest yet, so a FIFO keeps these in order at
// O(1)), or an acceptance releases a key with more records queued (its next
// seq is older than much of the FIFO; these few go in a min-heap). take
// merges the two by seq. (A single heap for everything made every take and
// push O(log n) over tens of thousands of keys, under the sink's lock.)
type keyed struct {
	keys    map[string]*keyState
	fresh   ring[item] // idle keys that received a record, in seq order
	backlog []item     // released keys with more queued: a min-heap on seq
	bytes   int        // sum of the sendable head entries' sizes
	seq     uint64     // submission sequence of the last pushed entry
	free    []*keyState
}

// item is a sendable key. It copies its head entry's seq and size so that
// ordering compares within the arrays instead of chasing pointers.
type item struct {
	seq  uint64
	size int
	ks   *keyState
}

type keyState struct {
	name  string
	q     ring[*entry] // entries not yet handed out, oldest first
	out   bool         // an entry of this key is in flight or awaiting retry
	ready bool         // in fresh or backlog
}

func newKeyed() *keyed { return &keyed{keys: make(map[string]*keyState)} }

func (k *keyed) push(e *entry) {
	ks := k.keys[e.rec.PartitionKey]
	if ks == nil {
		if n := len(k.free); n > 0 {
			ks, k.free = k.free[n-1], k.free[:n-1]
		} else {
			ks = &keyState{}
		}
		ks.name = e.rec.PartitionKey
		k.keys[ks.name] = ks
	}
	k.seq++
	e.seq = k.seq
	e.key = ks
	ks.q.push(e)
	if !ks.out && !ks.ready {
		// The key was idle, so e is its head and the newest seq of all.
		ks.ready = true
		k.fresh.push(item{seq: e.seq, size: e.size, ks: ks})
		k.bytes += e.size
	}
}

func (k *keyed) ready() (int, int, time.Time) {
	n := k.fresh.len() + len(k.backlog)
	if n == 0 {
		return 0, 0, time.Time{}
	}
	return n, k.bytes, k.peek().ks.q.front().txn.at
}

// peek returns the sendable key with the oldest head. Caller checks that
// one exists.
func (k *keyed) peek() item {
	if len(k.backlog) > 0 && (k.fresh.len() == 0 || k.backlog[0].seq < k.fresh.front().seq) {
		return k.backlog[0]
	}
	return k.fresh.front()
}

func (k *keyed) take(dst []*entry, maxRecords, maxBytes int) []*entry {
	sum := 0
	for n := 0; k.fresh.len()+len(k.backlog) > 0 && n < maxRecords; n++ {
		it := k.peek()
		if n > 0 && sum+it.size > maxBytes {
			break
		}
		if len(k.backlog) > 0 && it.ks == k.backlog[0].ks {
			k.popBacklog()
		} else {
			k.fresh.pop()
		}
		ks := it.ks
		ks.ready = false
		ks.out = true
		k.bytes -= it.size
		e := ks.q.pop()
		sum += e.size
		dst = append(dst, e)
	}
	return dst
}

func (k *keyed) release(e *entry) bool {
	ks := e.key
	e.key = nil
	ks.out = false
	if ks.q.len() > 0 {
		head := ks.q.front()
		ks.ready = true
		k.bytes += head.size
		k.pushBacklog(item{seq: head.seq, size: head.size, ks: ks})
		return true
	}
	// Forget idle keys so memory follows the queue, not the key space;
	// keep some states for reuse to spare the allocator.
	delete(k.keys, ks.name)
	ks.name = ""
	if len(ks.q.buf) > 64 {
		ks.q = ring[*entry]{} // a hot key's backlog is not worth keeping
	}
	if len(k.free) < 8192 { // ~1 MiB at most
		k.free = append(k.free, ks)
	}
	return false
}

// The heap is hand-written rather than container/heap to keep the hot path
// free of interface calls and allocations.

func (k *keyed) pushBacklog(it item) {
	h := append(k.backlog, it)
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if h[parent].seq <= h[i].seq {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
	k.backlog = h
}

func (k *keyed) popBacklog() {
	h := k.backlog
	last := len(h) - 1
	h[0] = h[last]
	h[last] = item{}
	h = h[:last]
	for i := 0; ; {
		small, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && h[l].seq < h[small].seq {
			small = l
		}
		if r < len(h) && h[r].seq < h[small].seq {
			small = r
		}
		if small == i {
			break
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
	k.backlog = h
}
