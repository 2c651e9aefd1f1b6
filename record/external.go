package record

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// External compaction: the write-set compaction of compact.go for a
// transaction too large for memory, with the same output. Encode keeps one
// entry per row in a map; here every change becomes an event keyed by
// (row, change sequence), events are sorted into runs of at most the
// budget and merged, so that all events of a row arrive together and in
// order, and the row's net effect is decided by the same rules one row at
// a time. Three phases:
//
//  1. route: read the changes once. A keyed change becomes an event of its
//     row (a key change: a departure from the old key and an arrival at the
//     new one); a keyless change is already its own record; truncates are
//     kept in memory (few, and needed by every row of their table).
//  2. rows: merge the events by row and run each row through the rules of
//     compact.go. The surviving record of a row is keyed by the position
//     Encode would give it: the change that created the row's entry.
//  3. emit: merge the records by that position and encode them, so the
//     records, their order, their row index (chunk_id) and their
//     partition keys are those of Encode: a replay is byte-identical
//     whichever side of the budget the transaction falls on.
//
// One dependency crosses rows: a key change whose new row has unchanged
// TOASTed values that the old tuple does not carry takes them from the old
// row's image at that point. Its arrival cannot be known until the old row
// is processed, so it waits as a placeholder: a row that reaches an
// unresolved placeholder is written, from there on, to another pass
// (its state so far saved as a snapshot event), and the old row's
// departure writes the resolved arrival to that pass. Each pass resolves
// at least the earliest placeholder, so the passes end. With REPLICA
// IDENTITY FULL, which cdcd sets where values can be TOASTed, the old tuple
// carries every value and no placeholder is ever made.

// DefaultSpillBudget is the memory EncodeSpilled holds by default.
const DefaultSpillBudget = 64 << 20

// SpillOptions bound EncodeSpilled.
type SpillOptions struct {
	// Store holds the sorted runs; required.
	Store RunStore
	// Budget is about the most bytes of sorted entries held in memory at
	// once; default DefaultSpillBudget. A transaction whose events fit is
	// sorted without touching the store.
	Budget int
	// MaxFanIn is how many runs are merged at once; more are merged in
	// rounds first. Each open run buffers a frame. Default 64.
	MaxFanIn int
	// BatchBytes is about how many bytes of records each call of emit
	// gets; default 1 MiB. A batch has at most 500 records.
	BatchBytes int
}

// Phase 2 sort keys end in seq ‖ sub; sub orders what a row may hold at one
// sequence: its snapshot, then an event or resolved arrival, then a
// placeholder.
const (
	subSnapshot byte = iota
	subEvent
	subPending
)

// Event types of phase 2 payloads; see external_row.go.
const (
	evInsert     byte = 'i' // rel, row
	evRead       byte = 'r' // rel, row: an insert read by a snapshot
	evUpdate     byte = 'u' // rel, row (filled without the row's image)
	evUpdatePart byte = 'p' // rel, new, old: filled from the row's image
	evDepart     byte = 'x' // rel, key image: the row's key changed away
	evDepartFill byte = 'f' // rel, key image, new key, new: departure whose arrival needs the image
	evArrive     byte = 'a' // rel, row: the row arrived by a key change
	evPending    byte = 'w' // an arrival that a departure will resolve
	evDelete     byte = 'd' // rel, key image
	evSnapshot   byte = 's' // a row's state, carried to the next pass
	rowKeyed     byte = 'k' // phase 3: a keyed row's record
	rowKeyless   byte = 'l' // phase 3: a keyless change's record
)

// maxBatchRecords caps a batch for emit at what one PutRecords takes.
const maxBatchRecords = 500

type truncEvent struct {
	seq uint64
	rel *Relation
}

// external is one EncodeSpilled call.
type external struct {
	ctx          context.Context
	e            *Encoder
	opts         SpillOptions
	emitTruncate bool
	rels         relTable
	truncs       map[uint32][]truncEvent // by relation ID, in order
	order        []truncEvent            // every truncate, in order
	pending      int                     // placeholders made
	events, rows *runBuilder
	key, ent     []byte // scratch
}

// EncodeSpilled is Encode for a transaction of any size: it compacts and
// encodes txn holding about opts.Budget bytes, and passes the records to
// emit in batches, in exactly the order and with exactly the bytes Encode
// would return them (but for the processing time). It reads txn.Spilled,
// or txn.Changes when Spilled is nil, and always closes Spilled.
//
// emit may keep the records' Data but not the slice. An error from emit
// stops the encoding and is returned as is; any other error means the
// transaction cannot be encoded (as from Encode). On error some records
// may already have been emitted and the transaction must not be
// confirmed. Records is nil in the returned Encoded. It returns ctx's
// error soon after ctx ends: sorting a large transaction takes a while.
func (e *Encoder) EncodeSpilled(ctx context.Context, txn *Txn, prevTsNs int64, now time.Time, opts SpillOptions, emit func([]Record) error) (Encoded, error) {
	if txn == nil {
		return Encoded{}, fmt.Errorf("encode transaction: %w: nil Txn", ErrMalformedChange)
	}
	src := txn.Spilled
	if src == nil {
		src = SliceChanges(txn.Changes)
	}
	// The changes are read once, in phase 1: their spill goes right after
	// it (or on any early return), not at the end, to halve the disk used.
	closed := false
	closeSrc := func() error {
		if closed {
			return nil
		}
		closed = true
		return src.Close()
	}
	defer closeSrc()
	if opts.Store == nil {
		return Encoded{}, errors.New("encode spilled transaction: nil SpillOptions.Store")
	}
	if opts.Budget <= 0 {
		opts.Budget = DefaultSpillBudget
	}
	if opts.MaxFanIn <= 0 {
		opts.MaxFanIn = 64
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 1 << 20
	}
	if txn.CommitTime.IsZero() {
		return Encoded{}, fmt.Errorf("encode transaction: %w: no commit time", ErrMalformedChange)
	}
	out := Encoded{TsNs: SourceTsNs(txn.CommitTime, prevTsNs)}
	e.begin(txn, out.TsNs, now)
	defer e.release()
	x := &external{ctx: ctx, e: e, opts: opts, emitTruncate: e.cfg.EmitTruncate, truncs: make(map[uint32][]truncEvent),
		events: newRunBuilder(opts.Store, opts.Budget/2), rows: newRunBuilder(opts.Store, opts.Budget/2)}
	defer func() {
		// The builders in use when an error stops the work.
		x.events.abort()
		x.rows.abort()
	}()
	var emitErr error
	recs := &batch{e: e, maxBytes: opts.BatchBytes, emit: func(recs []Record) error {
		emitErr = emit(recs)
		return emitErr
	}}
	e.recBase = 0
	defer func() { e.recBase = 0 }()
	var err error
	if ins, ok := src.(insertsOnly); ok && ins.insertsOnly() {
		err = x.direct(src, recs)
	} else {
		err = x.sorted(src, closeSrc, recs)
	}
	if emitErr != nil {
		return Encoded{}, emitErr
	}
	if err != nil {
		return Encoded{}, x.fail(err)
	}
	if !x.emitTruncate {
		for _, t := range x.order {
			out.SkippedTruncates = append(out.SkippedTruncates, t.rel)
		}
	}
	return out, nil
}

// sorted is the three phases, for any transaction.
func (x *external) sorted(src ChangeReader, closeSrc func() error, out *batch) error {
	if err := x.route(src); err != nil {
		return err
	}
	if err := closeSrc(); err != nil {
		return fmt.Errorf("close spilled changes: %w", err)
	}
	if err := x.compactRows(); err != nil {
		return err
	}
	return x.emit(out)
}

// fail returns ctx's error as is, and wraps the rest.
func (x *external) fail(err error) error {
	if cerr := x.ctx.Err(); cerr != nil && errors.Is(err, cerr) {
		return err
	}
	return fmt.Errorf("encode transaction %s: %w", x.e.txID[:], err)
}

// stop is the mergers' cancellation check.
func (x *external) stop() error { return x.ctx.Err() }

// route is phase 1.
func (x *external) route(src ChangeReader) error {
	return x.each(src, func(ch *Change, seq uint64) error {
		if err := x.change(ch, seq); err != nil {
			return fmt.Errorf("compact change %d: %w", seq, err)
		}
		return nil
	})
}

// each calls f with every change of src and its sequence number, in order,
// stopping soon after x's context ends.
func (x *external) each(src ChangeReader, f func(ch *Change, seq uint64) error) error {
	for seq := uint64(0); ; seq++ {
		if seq%stopEvery == 0 {
			if err := x.ctx.Err(); err != nil {
				return err
			}
		}
		ch, err := src.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := f(&ch, seq); err != nil {
			return err
		}
	}
}

func (x *external) change(ch *Change, seq uint64) error {
	rel := ch.Rel
	if ch.Kind == Truncate {
		if rel == nil {
			return fmt.Errorf("%w: truncate without a relation", ErrMalformedChange)
		}
		t := truncEvent{seq: seq, rel: rel}
		x.truncs[rel.ID] = append(x.truncs[rel.ID], t)
		x.order = append(x.order, t)
		return nil
	}
	if rel == nil {
		return fmt.Errorf("%w: change without a relation", ErrMalformedChange)
	}
	if err := checkWidth(rel, ch); err != nil {
		return err
	}
	if !isKeyed(rel) {
		return x.keyless(ch, seq)
	}
	c := &x.e.compact
	switch ch.Kind {
	case Insert, Read:
		row, err := fillUnchanged(rel, ch.New, nil, nil)
		if err != nil {
			return err
		}
		key, err := c.keyOf(rel, row)
		if err != nil {
			return err
		}
		typ := evInsert
		if ch.Kind == Read {
			typ = evRead
		}
		return x.event(key, seq, subEvent, x.payload(typ, rel, row))
	case Update:
		oldKeySrc := ch.Old
		if oldKeySrc == nil {
			oldKeySrc = ch.New // the key did not change
		}
		k, err := c.keyOf(rel, oldKeySrc)
		if err != nil {
			return err
		}
		oldKey := slices.Clone(k)
		newKey, err := x.newKey(rel, ch)
		if err != nil {
			return err
		}
		// Filled without the row's image: complete unless an unchanged
		// TOASTed value is not in the old tuple.
		row, fillErr := fillUnchanged(rel, ch.New, ch.Old, nil)
		if string(newKey) == string(oldKey) {
			if fillErr == nil {
				return x.event(oldKey, seq, subEvent, x.payload(evUpdate, rel, row))
			}
			return x.event(oldKey, seq, subEvent, x.payload(evUpdatePart, rel, ch.New, ch.Old))
		}
		if fillErr == nil {
			if err := x.event(oldKey, seq, subEvent, x.payload(evDepart, rel, oldKeySrc)); err != nil {
				return err
			}
			return x.event(newKey, seq, subEvent, x.payload(evArrive, rel, row))
		}
		p := x.payload(evDepartFill, rel, oldKeySrc)
		p = binary.AppendUvarint(p, uint64(len(newKey)))
		p = append(p, newKey...)
		x.ent = appendTuple(p, ch.New)
		if err := x.event(oldKey, seq, subEvent, x.ent); err != nil {
			return err
		}
		x.pending++
		return x.event(newKey, seq, subPending, append(x.ent[:0], evPending))
	case Delete:
		if ch.Old == nil {
			return fmt.Errorf("%w: delete on %s.%s without the old key", ErrMalformedChange, rel.Schema, rel.Table)
		}
		key, err := c.keyOf(rel, ch.Old)
		if err != nil {
			return err
		}
		return x.event(key, seq, subEvent, x.payload(evDelete, rel, ch.Old))
	}
	return fmt.Errorf("%w: unknown change kind %q", ErrMalformedChange, byte(ch.Kind))
}

// newKey is the key of an update's new row: its key columns, an unchanged
// one taken from the old tuple as fillUnchanged would. (The image is never
// needed for a key column: keyOf of the old key has already refused an old
// tuple whose key column is unchanged too.) The result is a copy.
func (x *external) newKey(rel *Relation, ch *Change) ([]byte, error) {
	t, copied := ch.New, false
	for i := range rel.Columns {
		if !rel.Columns[i].Key || t[i].Kind != DatumUnchanged || ch.Old == nil || ch.Old[i].Kind == DatumUnchanged {
			continue
		}
		if !copied {
			t, copied = slices.Clone(ch.New), true
		}
		t[i] = ch.Old[i]
	}
	k, err := x.e.compact.keyOf(rel, t)
	if err != nil {
		return nil, err
	}
	return slices.Clone(k), nil
}

// keyless makes the record of a change to a table without a key
// (keylessRow); phase 3 drops it if its table is truncated later in the
// transaction.
func (x *external) keyless(ch *Change, seq uint64) error {
	row, err := keylessRow(ch)
	if err != nil {
		return err
	}
	return x.addRow(seq, 0, rowKeyless, &row)
}

// payload builds an event payload in x.ent: type, relation, tuples.
func (x *external) payload(typ byte, rel *Relation, tuples ...Tuple) []byte {
	p := append(x.ent[:0], typ)
	p = binary.AppendUvarint(p, x.rels.id(rel))
	for _, t := range tuples {
		p = appendTuple(p, t)
	}
	x.ent = p
	return p
}

// event adds a phase 2 entry for the row with encoded key mapKey.
func (x *external) event(mapKey []byte, seq uint64, sub byte, payload []byte) error {
	return x.events.add(x.eventKey(mapKey, seq, sub), payload)
}

// eventKey is u32(len(mapKey)) ‖ mapKey ‖ seq ‖ sub: a row's events are
// adjacent and in order. It aliases scratch.
func (x *external) eventKey(mapKey []byte, seq uint64, sub byte) []byte {
	k := binary.BigEndian.AppendUint32(x.key[:0], uint32(len(mapKey)))
	k = append(k, mapKey...)
	k = binary.BigEndian.AppendUint64(k, seq)
	x.key = append(k, sub)
	return x.key
}

// addRow adds a phase 3 entry: a record at Encode's position (seq, sub)
// of the change that created its entry (sub 1 for a row that a key change
// created, which Encode puts after the old key's).
func (x *external) addRow(seq uint64, sub byte, typ byte, row *compactRow) error {
	k := binary.BigEndian.AppendUint64(x.key[:0], seq)
	x.key = append(k, sub)
	p := append(x.ent[:0], typ, row.op)
	p = binary.AppendUvarint(p, x.rels.id(row.rel))
	p = binary.AppendUvarint(p, uint64(len(row.key)))
	p = append(p, row.key...)
	p = appendTuple(p, row.before)
	x.ent = appendTuple(p, row.after)
	return x.rows.add(x.key, x.ent)
}
