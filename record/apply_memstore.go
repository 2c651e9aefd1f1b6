package record

import (
	"cmp"
	"container/heap"
	"context"
	"slices"
	"sync"
)

// MemStore is an in-memory Store, for tests and small consumers.
//
// Tombstones are bounded: past maxTombstones the oldest by ts_ns is
// forgotten, and an upsert older than a forgotten delete, arriving after
// it, would bring the row back. Size the bound above the number of deletes
// a stream can reorder across (UNORDERED delivery reorders within what is
// in flight, so thousands, not millions). Truncate versions are kept per
// table, unbounded (tables are few).
type MemStore struct {
	mu            sync.Mutex
	maxTombstones int
	rows          map[StoreKey]memEntry
	truncated     map[[2]string]int64
	tombstones    int
	// graves holds every tombstone ever written, oldest first; entries
	// whose row was since rewritten are skipped when popped.
	graves tombHeap
}

type memEntry struct {
	ts      int64
	row     RowImage // nil for a tombstone
	deleted bool
}

// MemRow is one live row of a MemStore.
type MemRow struct {
	Key  StoreKey
	TsNs int64
	Row  RowImage
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty store keeping at most maxTombstones
// tombstones (0 means 1<<20).
func NewMemStore(maxTombstones int) *MemStore {
	if maxTombstones <= 0 {
		maxTombstones = 1 << 20
	}
	return &MemStore{
		maxTombstones: maxTombstones,
		rows:          make(map[StoreKey]memEntry),
		truncated:     make(map[[2]string]int64),
	}
}

func (s *MemStore) Version(_ context.Context, k StoreKey) (int64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.rows[k]
	return e.ts, ok, nil
}

func (s *MemStore) TruncatedAt(_ context.Context, schema, table string) (int64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, ok := s.truncated[[2]string{schema, table}]
	return ts, ok, nil
}

func (s *MemStore) Put(_ context.Context, k StoreKey, ts int64, row RowImage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rows[k].deleted {
		s.tombstones--
	}
	s.rows[k] = memEntry{ts: ts, row: row}
	return nil
}

func (s *MemStore) Delete(_ context.Context, k StoreKey, ts int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.rows[k].deleted {
		s.tombstones++
	}
	s.rows[k] = memEntry{ts: ts, deleted: true}
	heap.Push(&s.graves, grave{ts: ts, key: k})
	for s.tombstones > s.maxTombstones {
		g := heap.Pop(&s.graves).(grave)
		if e := s.rows[g.key]; e.deleted && e.ts == g.ts {
			delete(s.rows, g.key)
			s.tombstones--
		}
	}
	// Rewritten rows leave stale graves behind; rebuild before they
	// outnumber the live tombstones.
	if len(s.graves) > 2*s.tombstones+1024 {
		s.rebuildGraves()
	}
	return nil
}

func (s *MemStore) Truncate(_ context.Context, schema, table string, ts int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncated[[2]string{schema, table}] = ts
	for k, e := range s.rows {
		if k.Schema == schema && k.Table == table && e.ts < ts {
			if e.deleted {
				s.tombstones--
			}
			delete(s.rows, k)
		}
	}
	s.rebuildGraves()
	return nil
}

func (s *MemStore) rebuildGraves() {
	s.graves = s.graves[:0]
	for k, e := range s.rows {
		if e.deleted {
			s.graves = append(s.graves, grave{ts: e.ts, key: k})
		}
	}
	heap.Init(&s.graves)
}

// Row returns a live row.
func (s *MemStore) Row(k StoreKey) (RowImage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.rows[k]
	if !ok || e.deleted {
		return nil, false
	}
	return e.row, true
}

// Rows lists the live rows sorted by schema, table and key, so two stores
// compare with reflect.DeepEqual.
func (s *MemStore) Rows() []MemRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []MemRow
	for k, e := range s.rows {
		if !e.deleted {
			out = append(out, MemRow{Key: k, TsNs: e.ts, Row: e.row})
		}
	}
	slices.SortFunc(out, func(a, b MemRow) int {
		return cmp.Or(cmp.Compare(a.Key.Schema, b.Key.Schema), cmp.Compare(a.Key.Table, b.Key.Table), cmp.Compare(a.Key.Row, b.Key.Row))
	})
	return out
}

// Tombstones is the number of deleted rows remembered.
func (s *MemStore) Tombstones() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tombstones
}

type grave struct {
	ts  int64
	key StoreKey
}

type tombHeap []grave

func (h tombHeap) Len() int           { return len(h) }
func (h tombHeap) Less(i, j int) bool { return h[i].ts < h[j].ts }
func (h tombHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *tombHeap) Push(x any)        { *h = append(*h, x.(grave)) }
func (h *tombHeap) Pop() any {
	old := *h
	g := old[len(old)-1]
	*h = old[:len(old)-1]
	return g
}
