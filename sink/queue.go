package sink

import (
	"time"

	"github.com/cdcd-dev/cdcd/record"
)

// entry is one record on its way to Kinesis. Entries live in their
// transaction's slice; queues and batches hold pointers into it, so a record
// is never copied and the bytes sent on a retry are the bytes sent first.
type entry struct {
	rec  record.Record
	size int
	txn  *txn
	key  *keyState // ROW only: the key's state while the entry is queued or in flight
	seq  uint64    // ROW only: submission order, to send the oldest sendable entry first
}

// queue hands out entries that may be sent now. All methods run under
// Sink.mu.
type queue interface {
	push(e *entry)
	// ready reports how many entries take could return right now, their
	// bytes, and when the oldest of them was submitted.
	ready() (n, bytes int, oldest time.Time)
	// take appends up to maxRecords ready entries totalling at most
	// maxBytes to dst. The first entry is taken whatever its size, so a
	// record over the limits still reaches the worker, which refuses it
	// with a classified error instead of leaving it queued silently.
	take(dst []*entry, maxRecords, maxBytes int) []*entry
	// release is called once e has been accepted by Kinesis.
	release(e *entry) (readied bool)
}

// fifo is the UNORDERED queue: no constraint beyond submission order.
type fifo struct {
	q     ring[*entry]
	bytes int
}

func (f *fifo) push(e *entry) {
	f.q.push(e)
	f.bytes += e.size
}

func (f *fifo) ready() (int, int, time.Time) {
	if f.q.len() == 0 {
		return 0, 0, time.Time{}
	}
	return f.q.len(), f.bytes, f.q.front().txn.at
}

func (f *fifo) take(dst []*entry, maxRecords, maxBytes int) []*entry {
	sum := 0
	for n := 0; f.q.len() > 0 && n < maxRecords; n++ {
		e := f.q.front()
		if n > 0 && sum+e.size > maxBytes {
			break
		}
		f.q.pop()
		f.bytes -= e.size
		sum += e.size
		dst = append(dst, e)
	}
	return dst
}

func (f *fifo) release(*entry) bool { return false }

// ring is a growable FIFO over a power-of-two slice; pushes and pops are
// O(1) and allocate only when it grows.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) push(v T) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = v
	r.n++
}

func (r *ring[T]) front() T { return r.buf[r.head] }

func (r *ring[T]) pop() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero // let the GC have what was popped
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return v
}

// back returns the newest element; popBack removes it.
func (r *ring[T]) back() T { return r.buf[(r.head+r.n-1)&(len(r.buf)-1)] }

func (r *ring[T]) popBack() T {
	var zero T
	i := (r.head + r.n - 1) & (len(r.buf) - 1)
	v := r.buf[i]
	r.buf[i] = zero
	r.n--
	return v
}

func (r *ring[T]) grow() {
	size := max(2*len(r.buf), 4)
	buf := make([]T, size)
	for i := 0; i < r.n; i++ {
		buf[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
	}
	r.buf, r.head = buf, 0
}
