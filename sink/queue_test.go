package sink

import (
	"slices"
	"testing"

	"github.com/cdcd-dev/cdcd/record"
)

// newEntries makes one transaction's entries with the given keys; the data
// is the index, for identification.
func newEntries(keys ...string) []*entry {
	t := &txn{pending: len(keys), entries: make([]entry, len(keys))}
	out := make([]*entry, len(keys))
	for i, k := range keys {
		t.entries[i] = entry{rec: record.Record{PartitionKey: k, Data: []byte{byte(i)}}, size: len(k) + 1, txn: t}
		out[i] = &t.entries[i]
	}
	return out
}

func ids(es []*entry) []int {
	out := make([]int, len(es))
	for i, e := range es {
		out[i] = int(e.rec.Data[0])
	}
	return out
}

func TestKeyedOnePerKeyOldestFirst(t *testing.T) {
	k := newKeyed()
	es := newEntries("a", "a", "b", "c", "a", "b")
	for _, e := range es {
		k.push(e)
	}
	if n, bytes, _ := k.ready(); n != 3 || bytes != 6 {
		t.Fatalf("ready = %d entries, %d bytes; want 3 keys' heads, 6 bytes", n, bytes)
	}
	got := k.take(nil, 10, 100)
	if !slices.Equal(ids(got), []int{0, 2, 3}) {
		t.Fatalf("take = %v, want the heads of a, b, c: [0 2 3]", ids(got))
	}
	if n, _, _ := k.ready(); n != 0 {
		t.Fatalf("%d ready while every key is out", n)
	}
	// b's head accepted first: b's next (5) is ready, but a's next (1) is
	// older and becomes ready when a is released; it must go first.
	k.release(es[2])
	k.release(es[0])
	k.release(es[3]) // c has nothing more: forgotten
	if _, ok := k.keys["c"]; ok {
		t.Errorf("idle key c still tracked")
	}
	got = k.take(nil, 10, 100)
	if !slices.Equal(ids(got), []int{1, 5}) {
		t.Fatalf("take = %v, want [1 5] (oldest first)", ids(got))
	}
	k.release(es[1])
	if got := ids(k.take(nil, 10, 100)); !slices.Equal(got, []int{4}) {
		t.Fatalf("take = %v, want [4]", got)
	}
}

func TestTakeLimits(t *testing.T) {
	for _, q := range []struct {
		name string
		q    queue
	}{{"fifo", &fifo{}}, {"keyed", newKeyed()}} {
		t.Run(q.name, func(t *testing.T) {
			for _, e := range newEntries("aaaaaaaaa", "b", "c", "d", "e") { // sizes 10, 2, 2, 2, 2
				q.q.push(e)
			}
			if got := ids(q.q.take(nil, 10, 9)); !slices.Equal(got, []int{0}) {
				t.Errorf("take = %v: the first entry goes even when over maxBytes", got)
			}
			if got := ids(q.q.take(nil, 2, 100)); !slices.Equal(got, []int{1, 2}) {
				t.Errorf("take = %v, want 2 records", got)
			}
			if got := ids(q.q.take(nil, 10, 3)); !slices.Equal(got, []int{3}) {
				t.Errorf("take = %v, want what fits in 3 bytes", got)
			}
		})
	}
}

func TestTrackerOutOfOrder(t *testing.T) {
	var tr tracker
	txns := []*txn{{lsn: 10, pending: 1}, {lsn: 20, pending: 2}, {lsn: 30, pending: 0}, {lsn: 40, pending: 1}}
	for _, x := range txns {
		tr.push(x)
	}
	steps := []struct {
		done int // transaction that gets one acceptance
		want uint64
	}{{3, 0}, {1, 0}, {0, 10}, {1, 40}}
	for i, st := range steps {
		txns[st.done].pending--
		tr.advance()
		if tr.delivered != st.want {
			t.Fatalf("step %d: delivered %d, want %d", i, tr.delivered, st.want)
		}
	}
	if tr.retired != 4 {
		t.Errorf("retired %d, want 4", tr.retired)
	}
}

func TestRingWraps(t *testing.T) {
	var r ring[int]
	next, want := 0, 0
	for round := range 100 {
		for range round % 7 {
			r.push(next)
			next++
		}
		for range round % 5 {
			if r.len() == 0 {
				break
			}
			if got := r.pop(); got != want {
				t.Fatalf("pop = %d, want %d", got, want)
			}
			want++
		}
	}
	for r.len() > 0 {
		if got := r.pop(); got != want {
			t.Fatalf("pop = %d, want %d", got, want)
		}
		want++
	}
	if want != next {
		t.Errorf("popped %d, pushed %d", want, next)
	}
}
