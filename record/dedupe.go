package record

import (
	"container/heap"
	"errors"
	"fmt"
	"sync"
)

// ErrNoRowKey marks a record that names no row: a delete whose before is
// null, which cdcd emits (docs/records.md#keys) for tables without a primary key. No keyed
// replica can apply it.
var ErrNoRowKey = errors.New("record names no row")

// KeyColumnsFunc returns a table's primary key columns, or nil when the
// consumer does not know them. Records carry the key only on deletes
// (before), so upserts need this to find the row they replace.
type KeyColumnsFunc func(schema, table string) []string

// RowKey returns the canonical identity (RowImage.Key) of the row a full
// message changes: the key columns projected from before (remove) or after
// (upsert). Without key columns a remove uses its whole before image, which
// docs/records.md#keys says is the key, and an upsert its whole after image, which
// identifies the row version rather than the row: an upsert then cannot
// replace an older version, and only a table's real key fixes that. A
// truncate has the empty key.
func RowKey(m *Message, keys KeyColumnsFunc) (string, error) {
	if m.Type != MessageFull {
		return "", fmt.Errorf("row key of a %s message: reassemble it first", m.Type)
	}
	var img RowImage
	switch m.Effect() {
	case EffectTruncate:
		return "", nil
	case EffectRemove:
		img = m.Before
		if img == nil {
			return "", fmt.Errorf("%s.%s op %q at source.ts_ns %d: %w", m.Source.Schema, m.Source.Table, m.Op, m.Source.TsNs, ErrNoRowKey)
		}
	case EffectUpsert:
		img = m.After
	}
	var cols []string
	if keys != nil {
		cols = keys(m.Source.Schema, m.Source.Table)
	}
	if len(cols) == 0 {
		return img.Key(), nil
	}
	proj, err := img.Project(cols)
	if err != nil {
		return "", fmt.Errorf("row key of %s.%s: %w", m.Source.Schema, m.Source.Table, err)
	}
	return proj.Key(), nil
}

// DedupeKey is docs/records.md#identity's identity of a record: a redelivered record has
// the same key, and two different records of one stream never do, except
// identical changes to a table without a key inside one transaction, which
// no consumer can tell from a redelivery.
type DedupeKey struct {
	TsNs   int64
	Schema string
	Table  string
	Row    string
}

// DeduperConfig bounds a Deduper.
type DeduperConfig struct {
	// KeyColumns names each table's key; see RowKey.
	KeyColumns KeyColumnsFunc
	// MaxEntries bounds the keys remembered (default 65536); past it the
	// oldest by source.ts_ns are forgotten.
	MaxEntries int
	// Window, if positive, also forgets keys more than Window nanoseconds
	// of source time older than the newest seen.
	Window int64
}

// Deduper drops redelivered records (docs/records.md#identity: delivery is at least
// once). It remembers a bounded window of keys, oldest source.ts_ns
// forgotten first, so a duplicate older than the window passes as new;
// Applier's last-writer-wins makes applying it harmless, and Deduper only
// saves the work. Safe for concurrent use.
type Deduper struct {
	mu     sync.Mutex
	cfg    DeduperConfig
	seen   map[DedupeKey]struct{}
	byTime keyHeap
	newest int64
}

// NewDeduper returns an empty Deduper.
func NewDeduper(cfg DeduperConfig) *Deduper {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 1 << 16
	}
	return &Deduper{cfg: cfg, seen: make(map[DedupeKey]struct{})}
}

// Key returns m's dedupe key. Deletes without a key (ErrNoRowKey) get the
// row "null": all such deletes of one transaction and table are identical
// records anyway.
func (d *Deduper) Key(m *Message) (DedupeKey, error) {
	row, err := RowKey(m, d.cfg.KeyColumns)
	if errors.Is(err, ErrNoRowKey) {
		row, err = "null", nil
	}
	if err != nil {
		return DedupeKey{}, fmt.Errorf("dedupe: %w", err)
	}
	return DedupeKey{TsNs: m.Source.TsNs, Schema: m.Source.Schema, Table: m.Source.Table, Row: row}, nil
}

// Seen records m and reports whether it was already seen. m must be a
// full message (reassemble chunked records first).
func (d *Deduper) Seen(m *Message) (bool, error) {
	k, err := d.Key(m)
	if err != nil {
		return false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen[k]; ok {
		return true, nil
	}
	if d.cfg.Window > 0 && k.TsNs < d.newest-d.cfg.Window {
		// Older than the window: remembering it would only evict
		// something newer and likelier to be redelivered.
		return false, nil
	}
	d.seen[k] = struct{}{}
	heap.Push(&d.byTime, k)
	d.newest = max(d.newest, k.TsNs)
	for len(d.byTime) > d.cfg.MaxEntries ||
		(d.cfg.Window > 0 && len(d.byTime) > 0 && d.byTime[0].TsNs < d.newest-d.cfg.Window) {
		old := heap.Pop(&d.byTime).(DedupeKey)
		delete(d.seen, old)
	}
	return false, nil
}

// Len is the number of keys remembered.
func (d *Deduper) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

// keyHeap is a min-heap of keys by TsNs.
type keyHeap []DedupeKey

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i].TsNs < h[j].TsNs }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(DedupeKey)) }
func (h *keyHeap) Pop() any {
	old := *h
	k := old[len(old)-1]
	*h = old[:len(old)-1]
	return k
}
