package record

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrNotReassembled marks a chunked or fragment message handed to Apply;
// Reassembler turns them into full messages first.
var ErrNotReassembled = errors.New("message is not a full record")

// StoreKey names one row of a replica: RowKey's canonical key text.
type StoreKey struct {
	Schema string
	Table  string
	Row    string
}

// Store is a keyed replica that remembers, per row, the source.ts_ns of the
// last change applied to it, deletes included (tombstones), and per table
// the source.ts_ns of the last truncate. Applier keeps it convergent; the
// Store only has to do what each method says. Applier serializes its calls,
// so a Store written by one Applier needs no transactions of its own.
type Store interface {
	// Version returns the ts_ns stored for the row, tombstone or live.
	Version(ctx context.Context, k StoreKey) (tsNs int64, ok bool, err error)
	// TruncatedAt returns the ts_ns of the newest truncate of the table.
	TruncatedAt(ctx context.Context, schema, table string) (tsNs int64, ok bool, err error)
	// Put writes the row and its version.
	Put(ctx context.Context, k StoreKey, tsNs int64, row RowImage) error
	// Delete removes the row, leaving a tombstone at tsNs.
	Delete(ctx context.Context, k StoreKey, tsNs int64) error
	// Truncate removes the table's rows and tombstones older than tsNs and
	// remembers tsNs as the table's truncate version.
	Truncate(ctx context.Context, schema, table string, tsNs int64) error
}

// Applier applies full messages to a Store with last-writer-wins by
// source.ts_ns: a change older than what the store holds for its row (or
// its table's last truncate) is ignored. Because ts_ns is stable on replay
// and increases in commit order, any delivery order, with any duplicates,
// converges to the source's state; that is what makes UNORDERED streams
// usable. An Applier is safe for concurrent use; give each Store one.
//
// Equal ts_ns are one transaction: a redelivered record is ignored, and a
// row change in the same transaction as a truncate wins over it, since
// write-set compaction (docs/records.md#compaction) leaves only rows that exist after the
// transaction, that is after its truncate.
type Applier struct {
	mu    sync.Mutex
	Store Store
	// KeyColumns names each table's primary key (see RowKey). Without it,
	// upserts are keyed by their whole after image and cannot replace a
	// row's earlier versions or be removed by its deletes.
	KeyColumns KeyColumnsFunc
}

// Apply applies m and reports whether it changed the store (false: m was
// older than, or the same as, what the store already holds).
func (a *Applier) Apply(ctx context.Context, m *Message) (bool, error) {
	if m.Type != MessageFull {
		return false, fmt.Errorf("apply %s.%s: %s message: %w", m.Source.Schema, m.Source.Table, m.Type, ErrNotReassembled)
	}
	a.mu.Lock()
	applied, err := a.apply(ctx, m)
	a.mu.Unlock()
	if err != nil {
		return false, fmt.Errorf("apply %s.%s op %q at source.ts_ns %d: %w", m.Source.Schema, m.Source.Table, m.Op, m.Source.TsNs, err)
	}
	return applied, nil
}

func (a *Applier) apply(ctx context.Context, m *Message) (bool, error) {
	s, ts := m.Source, m.Source.TsNs
	floor, truncated, err := a.Store.TruncatedAt(ctx, s.Schema, s.Table)
	if err != nil {
		return false, err
	}
	if m.Effect() == EffectTruncate {
		if truncated && floor >= ts {
			return false, nil
		}
		return true, a.Store.Truncate(ctx, s.Schema, s.Table, ts)
	}
	if truncated && ts < floor {
		return false, nil
	}
	row, err := RowKey(m, a.KeyColumns)
	if err != nil {
		return false, err
	}
	k := StoreKey{Schema: s.Schema, Table: s.Table, Row: row}
	v, ok, err := a.Store.Version(ctx, k)
	if err != nil {
		return false, err
	}
	if ok && v >= ts {
		return false, nil
	}
	if m.Effect() == EffectRemove {
		return true, a.Store.Delete(ctx, k, ts)
	}
	return true, a.Store.Put(ctx, k, ts, m.After)
}
