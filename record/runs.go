package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Sorted runs for the external compaction. An entry is a sort key and a
// payload, stored as uvarint(len(key)) ‖ key ‖ payload; entries compare by
// their keys' bytes, and every key EncodeSpilled makes is unique, so the
// merged order is a function of the entries alone, whatever the run sizes.

// span locates one entry in a runBuilder's arena.
type span struct{ off, keyOff, keyEnd, end int }

// spanOverhead is what a span costs beside its bytes, for the budget.
const spanOverhead = 32

// runBuilder collects entries in memory up to its budget, then sorts them
// and writes them to the store as one run. An input that never reaches the
// budget is never written: finish hands it over from memory.
type runBuilder struct {
	store  RunStore
	budget int
	arena  []byte
	spans  []span
	runs   []RunReader
	used   int // arena bytes plus span overhead
}

func newRunBuilder(store RunStore, budget int) *runBuilder {
	return &runBuilder{store: store, budget: max(budget, 1)}
}

// empty reports whether nothing was added since the builder was made.
func (b *runBuilder) empty() bool { return len(b.spans) == 0 && len(b.runs) == 0 }

// add copies one entry in. It writes a run first if the entry would take
// the builder past its budget; an entry larger than the budget makes a run
// of its own.
func (b *runBuilder) add(key, payload []byte) error {
	n := binary.MaxVarintLen32 + len(key) + len(payload)
	if len(b.spans) > 0 && b.used+n+spanOverhead > b.budget {
		if err := b.flush(); err != nil {
			return err
		}
	}
	if need := len(b.arena) + n; need > cap(b.arena) {
		// Grow by doubling but not past the budget, so the arena never
		// holds twice what it may.
		c := min(max(2*cap(b.arena), 64<<10), b.budget)
		a := make([]byte, len(b.arena), max(c, need))
		copy(a, b.arena)
		b.arena = a
	}
	s := span{off: len(b.arena)}
	b.arena = binary.AppendUvarint(b.arena, uint64(len(key)))
	s.keyOff = len(b.arena)
	b.arena = append(b.arena, key...)
	s.keyEnd = len(b.arena)
	b.arena = append(b.arena, payload...)
	s.end = len(b.arena)
	b.spans = append(b.spans, s)
	b.used += s.end - s.off + spanOverhead
	return nil
}

func (b *runBuilder) sort() {
	a := b.arena
	slices.SortFunc(b.spans, func(x, y span) int {
		return bytes.Compare(a[x.keyOff:x.keyEnd], a[y.keyOff:y.keyEnd])
	})
}

// flush writes the entries held as one sorted run.
func (b *runBuilder) flush() error {
	if len(b.spans) == 0 {
		return nil
	}
	b.sort()
	w, err := b.store.Create()
	if err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	for _, s := range b.spans {
		if err := w.Write(b.arena[s.off:s.end]); err != nil {
			_ = w.Remove()
			return fmt.Errorf("write run: %w", err)
		}
	}
	r, err := w.Finish()
	if err != nil {
		return fmt.Errorf("finish run: %w", err)
	}
	b.runs = append(b.runs, r)
	b.spans = b.spans[:0]
	b.arena = b.arena[:0]
	b.used = 0
	if cap(b.arena) > b.budget {
		b.arena = nil // an oversized entry is not worth keeping room for
	}
	return nil
}

// finish returns the entries as sorted sources: the in-memory batch alone
// when no run was written, else the runs. The builder is spent.
func (b *runBuilder) finish() ([]source, error) {
	if len(b.runs) == 0 {
		b.sort()
		src := &memSource{arena: b.arena, spans: b.spans}
		b.arena, b.spans = nil, nil
		return []source{src}, nil
	}
	if err := b.flush(); err != nil {
		return nil, err
	}
	srcs := make([]source, len(b.runs))
	for i, r := range b.runs {
		srcs[i] = runSource{r}
	}
	b.runs, b.arena, b.spans = nil, nil, nil
	return srcs, nil
}

// abort deletes the runs written and drops the rest.
func (b *runBuilder) abort() {
	for _, r := range b.runs {
		_ = r.Close() // deleting; an error here has nowhere better to go
	}
	b.runs, b.arena, b.spans = nil, nil, nil
}

// source yields sorted entries.
type source interface {
	next() ([]byte, error) // io.EOF after the last
	close() error
}

type runSource struct{ r RunReader }

func (s runSource) next() ([]byte, error) { return s.r.Next() }
func (s runSource) close() error          { return s.r.Close() }

// memSource yields a builder's sorted batch; entries alias the arena,
// which nothing writes to again.
type memSource struct {
	arena []byte
	spans []span
	i     int
}

func (s *memSource) next() ([]byte, error) {
	if s.i >= len(s.spans) {
		return nil, io.EOF
	}
	sp := s.spans[s.i]
	s.i++
	return s.arena[sp.off:sp.end:sp.end], nil
}

func (s *memSource) close() error {
	s.arena, s.spans = nil, nil
	return nil
}

// splitEntry returns an entry's key and payload.
func splitEntry(e []byte) (key, payload []byte, err error) {
	n, w := binary.Uvarint(e)
	if w <= 0 || n > uint64(len(e)-w) {
		return nil, nil, fmt.Errorf("%w: bad entry key", ErrCorruptSpill)
	}
	return e[w : w+int(n)], e[w+int(n):], nil
}

// merger merges sorted sources into one sorted stream with a binary heap
// of each source's current entry.
type merger struct {
	srcs []source
	h    []head
	// stop, checked every stopEvery entries, ends a long merge early
	// (the caller's context).
	stop func() error
	n    int
}

const stopEvery = 1024

type head struct {
	raw, key, payload []byte
	src               int
}

func (m *merger) less(i, j int) bool {
	if c := bytes.Compare(m.h[i].key, m.h[j].key); c != 0 {
		return c < 0
	}
	return m.h[i].src < m.h[j].src
}

// newMerger reads the first entry of every source. On error it closes
// them all.
func newMerger(srcs []source, stop func() error) (*merger, error) {
	m := &merger{srcs: srcs, h: make([]head, 0, len(srcs)), stop: stop}
	for i := range srcs {
		if err := m.pull(i); err != nil {
			m.close()
			return nil, err
		}
	}
	return m, nil
}

// pull reads source i's next entry onto the heap. A source at its end is
// closed at once, so its run's file goes while the others are still read.
func (m *merger) pull(i int) error {
	raw, err := m.srcs[i].next()
	if err == io.EOF {
		err = m.srcs[i].close()
		m.srcs[i] = nil
		return err
	}
	if err != nil {
		return fmt.Errorf("read run: %w", err)
	}
	key, payload, err := splitEntry(raw)
	if err != nil {
		return err
	}
	m.h = append(m.h, head{raw: raw, key: key, payload: payload, src: i})
	for j := len(m.h) - 1; j > 0; {
		p := (j - 1) / 2
		if !m.less(j, p) {
			break
		}
		m.h[j], m.h[p] = m.h[p], m.h[j]
		j = p
	}
	return nil
}

// next returns the smallest entry, or ok false at the end. Its slices stay
// valid after later calls.
func (m *merger) next() (h head, ok bool, err error) {
	if len(m.h) == 0 {
		return head{}, false, nil
	}
	if m.n++; m.n%stopEvery == 0 && m.stop != nil {
		if err := m.stop(); err != nil {
			return head{}, false, err
		}
	}
	h = m.h[0]
	last := len(m.h) - 1
	m.h[0] = m.h[last]
	m.h[last] = head{}
	m.h = m.h[:last]
	for i := 0; ; {
		small, l, r := i, 2*i+1, 2*i+2
		if l < len(m.h) && m.less(l, small) {
			small = l
		}
		if r < len(m.h) && m.less(r, small) {
			small = r
		}
		if small == i {
			break
		}
		m.h[i], m.h[small] = m.h[small], m.h[i]
		i = small
	}
	return h, true, m.pull(h.src)
}

// close closes (and so deletes) every source.
func (m *merger) close() error {
	var errs []error
	for _, s := range m.srcs {
		if s == nil {
			continue // closed at its end
		}
		if err := s.close(); err != nil {
			errs = append(errs, err)
		}
	}
	m.srcs, m.h = nil, nil
	return errors.Join(errs...)
}

// mergeSources merges srcs down to at most fanIn sources, fanIn runs at a
// time into a new run, so that the final merge holds a bounded number of
// readers (each buffers a frame) however many runs a transaction made.
func mergeSources(store RunStore, srcs []source, fanIn int, stop func() error) ([]source, error) {
	fanIn = max(fanIn, 2)
	for len(srcs) > fanIn {
		out, err := mergeRun(store, srcs[:fanIn], stop)
		if err != nil {
			for _, s := range srcs[fanIn:] {
				_ = s.close()
			}
			return nil, err
		}
		srcs = append(srcs[fanIn:], runSource{out})
	}
	return srcs, nil
}

// mergeRun merges srcs into one new run and closes them.
func mergeRun(store RunStore, srcs []source, stop func() error) (RunReader, error) {
	m, err := newMerger(srcs, stop)
	if err != nil {
		return nil, err
	}
	defer m.close()
	w, err := store.Create()
	if err != nil {
		return nil, fmt.Errorf("create run: %w", err)
	}
	for {
		h, ok, err := m.next()
		if err == nil && ok {
			err = w.Write(h.raw)
		}
		if err != nil {
			_ = w.Remove()
			return nil, err
		}
		if !ok {
			break
		}
	}
	if err := m.close(); err != nil {
		_ = w.Remove()
		return nil, err
	}
	r, err := w.Finish()
	if err != nil {
		return nil, fmt.Errorf("finish run: %w", err)
	}
	return r, nil
}
