package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
)

// Write-set compaction (docs/records.md#compaction). For a table with a key, every row the
// transaction touches yields at most one record, decided by whether the row
// existed before the transaction and whether it exists after it:
//
//	before   after    record
//	absent   present  c, the final row
//	present  present  u, the final row
//	present  absent   d, the key columns
//	absent   absent   none
//
// "Before" is read off the row's first change: an insert means the row did
// not exist, an update or delete means it did. A change of key is a delete
// of the old key and an insert of the new one, so a delete followed by a
// re-insert of the same key is a u, and an update onto a key deleted
// earlier in the transaction is a u of that key.
//
// Rows are identified by the JSON encoding of their key columns (the bytes
// that end up in the record), so the text and binary formats compact alike.
//
// Order: records come out in the order of each row's first change in the
// transaction; a key change orders the old key before the new. Changes to
// tables without a key, and truncates, keep their own positions. Any order
// is a choice, since one record per row erases the order of changes within
// the transaction; first appearance is the one that keeps a d of an old key
// ahead of the c of its new key.
//
// Truncate: rows of the truncated table seen earlier in the transaction are
// gone after it. With EmitTruncate their records are dropped and the t
// record takes their place, so later inserts start afresh after it. Without
// it, the rows count as deleted (a row that existed before the transaction
// becomes a d), which keeps every emitted record true of the table after the
// transaction, the truncate itself aside.

// compactRow is one record compaction decided to emit.
type compactRow struct {
	rel *Relation
	op  byte // 'c', 'u', 'd' or 't'
	// before, for a d on a keyed table, holds the key columns; for a u or
	// d on a table without a key, the whole old row.
	before Tuple
	after  Tuple
	// key is the encoded key of a keyed row; empty for tables without a
	// key and for truncates.
	key []byte
}

// compactEntry is one row (keyed tables) or one change (the rest) in the
// order of first appearance.
type compactEntry struct {
	rel     *Relation
	op      byte // tables without a key and truncates: the op to emit
	keyed   bool
	dropped bool
	// presentBefore and present are the row's state before the transaction
	// and after the changes so far.
	presentBefore, present bool
	// image is the row as it is now (keyed, present) or the change's new
	// row (tables without a key).
	image Tuple
	// before is the whole old row of an update or delete on a table
	// without a key.
	before Tuple
	// keyImage holds the key of a keyed row that is now absent.
	keyImage Tuple
	// mapKey is the relation ID and the encoded key; mapKey[4:] is the key.
	// It lives in compactor.keys.
	mapKey []byte
	hash   uint64 // of mapKey
	// read marks a row an initial snapshot read: emitted with op "r", an
	// upsert to any DSQL consumer.
	read bool
}

// compactor holds compaction's scratch; it belongs to one Encoder.
type compactor struct {
	vals    *valueCodec
	entries []compactEntry
	// index finds a keyed row's entry by the hash of its mapKey, and
	// collided by the mapKey itself when another row has that hash: a map
	// with string keys would allocate a string per row. hash is
	// maphash's, replaceable by tests.
	index    map[uint64]int
	collided map[string]int
	seed     maphash.Seed
	hash     func(maphash.Seed, []byte) uint64
	// keys holds the run's mapKeys, one after another.
	keys   []byte
	keyBuf []byte
	rows   []compactRow
}

// run compacts txn. The returned rows alias the compactor and are valid
// until the next run.
func (c *compactor) run(txn *Txn, emitTruncate bool) ([]compactRow, []*Relation, error) {
	c.entries = c.entries[:0]
	if c.index == nil {
		c.index, c.collided = make(map[uint64]int), make(map[string]int)
		c.seed = maphash.MakeSeed()
	}
	if c.hash == nil {
		c.hash = maphash.Bytes
	}
	clear(c.index)
	clear(c.collided)
	c.keys = c.keys[:0]
	var skipped []*Relation
	for i := range txn.Changes {
		ch := &txn.Changes[i]
		var err error
		if ch.Kind == Truncate {
			if ch.Rel == nil {
				err = fmt.Errorf("%w: truncate without a relation", ErrMalformedChange)
			} else if emitTruncate {
				c.truncate(ch.Rel)
			} else {
				c.truncateSilently(ch.Rel)
				skipped = append(skipped, ch.Rel)
			}
		} else {
			err = c.change(ch)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("compact change %d: %w", i, err)
		}
	}
	c.rows = c.rows[:0]
	for i := range c.entries {
		e := &c.entries[i]
		if e.dropped {
			continue
		}
		if !e.keyed {
			c.rows = append(c.rows, compactRow{rel: e.rel, op: e.op, before: e.before, after: e.image})
			continue
		}
		row := compactRow{rel: e.rel, key: e.mapKey[4:]}
		if !row.netEffect(e.presentBefore, e.present, e.read, e.image, e.keyImage) {
			continue // inserted and deleted within the transaction
		}
		c.rows = append(c.rows, row)
	}
	return c.rows, skipped, nil
}

// netEffect sets the row's record from its state before and after the
// transaction (docs/records.md#compaction), for the in-memory and the external compaction
// alike; false means no record (inserted and deleted within it).
func (row *compactRow) netEffect(presentBefore, present, read bool, image, keyImage Tuple) bool {
	switch {
	case !presentBefore && present && read:
		row.op, row.after = 'r', image
	case !presentBefore && present:
		row.op, row.after = 'c', image
	case presentBefore && present:
		row.op, row.after = 'u', image
	case presentBefore && !present:
		row.op, row.before = 'd', keyImage
	default:
		return false
	}
	return true
}

// maxRetainedRows caps the entries a compactor keeps between
// transactions; past it the slices and the map, which never shrinks, are
// dropped for the garbage collector.
const maxRetainedRows = 1 << 14

func (c *compactor) release() {
	if cap(c.entries) > maxRetainedRows || cap(c.rows) > maxRetainedRows {
		c.entries, c.rows, c.index, c.collided, c.keys = nil, nil, nil, nil, nil
		return
	}
	// Drop references to the transaction's tuples now rather than at the
	// next run.
	clear(c.entries)
	clear(c.rows)
}

// isKeyed reports whether rel's changes can be compacted.
func isKeyed(rel *Relation) bool {
	if !rel.HasKey {
		return false
	}
	for i := range rel.Columns {
		if rel.Columns[i].Key {
			return true
		}
	}
	return false
}

func (c *compactor) change(ch *Change) error {
	rel := ch.Rel
	if rel == nil {
		return fmt.Errorf("%w: change without a relation", ErrMalformedChange)
	}
	if err := checkWidth(rel, ch); err != nil {
		return err
	}
	if !isKeyed(rel) {
		return c.keylessChange(ch)
	}
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
		i := c.lookup(key, false)
		c.entries[i].rel, c.entries[i].present, c.entries[i].image = rel, true, row
		c.entries[i].read = ch.Kind == Read
	case Update:
		oldKeySrc := ch.Old
		if oldKeySrc == nil {
			oldKeySrc = ch.New // the key did not change
		}
		key, err := c.keyOf(rel, oldKeySrc)
		if err != nil {
			return err
		}
		oi := c.lookup(key, true)
		var prior Tuple
		if e := &c.entries[oi]; e.present && e.image != nil && sameShape(e.rel, rel) {
			prior = e.image
		}
		row, err := fillUnchanged(rel, ch.New, ch.Old, prior)
		if err != nil {
			return err
		}
		if key, err = c.keyOf(rel, row); err != nil {
			return err
		}
		if bytes.Equal(key, c.entries[oi].mapKey) {
			c.entries[oi].rel, c.entries[oi].present, c.entries[oi].image = rel, true, row
			return nil
		}
		// A key change: the old key goes, the new key arrives.
		old := &c.entries[oi]
		old.rel, old.present, old.image, old.keyImage = rel, false, nil, oldKeySrc
		ni := c.lookup(key, false)
		c.entries[ni].rel, c.entries[ni].present, c.entries[ni].image = rel, true, row
	case Delete:
		if ch.Old == nil {
			return fmt.Errorf("%w: delete on %s.%s without the old key", ErrMalformedChange, rel.Schema, rel.Table)
		}
		key, err := c.keyOf(rel, ch.Old)
		if err != nil {
			return err
		}
		i := c.lookup(key, true)
		e := &c.entries[i]
		e.rel, e.present, e.image, e.keyImage = rel, false, nil, ch.Old
	default:
		return fmt.Errorf("%w: unknown change kind %q", ErrMalformedChange, byte(ch.Kind))
	}
	return nil
}

// keylessChange records a change to a table without a key as-is (docs/records.md#keys:
// such tables cannot be compacted).
func (c *compactor) keylessChange(ch *Change) error {
	row, err := keylessRow(ch)
	if err != nil {
		return err
	}
	c.entries = append(c.entries, compactEntry{rel: ch.Rel, op: row.op, image: row.after, before: row.before})
	return nil
}

// keylessRow is the record of a change to a table without a key, for the
// in-memory and the external compaction alike. An update or delete carries
// the whole old row in before, which is all that tells a consumer which
// row it was.
func keylessRow(ch *Change) (compactRow, error) {
	row := compactRow{rel: ch.Rel}
	var err error
	switch ch.Kind {
	case Insert:
		row.op = 'c'
		row.after, err = fillUnchanged(ch.Rel, ch.New, nil, nil)
	case Read:
		row.op, row.after = 'r', ch.New
	case Update:
		row.op, row.before, err = 'u', ch.Old, checkOldRow(ch)
		if err == nil {
			// Old holds the whole old row, unchanged TOASTed values too.
			row.after, err = fillUnchanged(ch.Rel, ch.New, ch.Old, nil)
		}
	case Delete:
		row.op, row.before, err = 'd', ch.Old, checkOldRow(ch)
	default:
		err = fmt.Errorf("%w: unknown change kind %q", ErrMalformedChange, byte(ch.Kind))
	}
	return row, err
}

// checkOldRow makes sure an update or delete on a table without a key
// carries the whole old row, which only REPLICA IDENTITY FULL logs.
func checkOldRow(ch *Change) error {
	if ch.Old == nil || ch.Rel.ReplicaIdentity != 'f' {
		return &OldRowError{Schema: ch.Rel.Schema, Table: ch.Rel.Table}
	}
	return nil
}

// truncate drops everything rel's rows did earlier in the transaction and
// puts the t record in its place.
func (c *compactor) truncate(rel *Relation) {
	for i := range c.entries {
		e := &c.entries[i]
		if e.dropped || e.rel.ID != rel.ID {
			continue
		}
		e.dropped = true
		if e.keyed {
			c.unindex(i)
		}
	}
	c.entries = append(c.entries, compactEntry{rel: rel, op: 't'})
}

// truncateSilently applies a truncate that will not be emitted: rel's rows
// seen so far are deleted, and its keyless changes, which no longer describe
// any row, are dropped.
func (c *compactor) truncateSilently(rel *Relation) {
	for i := range c.entries {
		e := &c.entries[i]
		if e.dropped || e.rel.ID != rel.ID {
			continue
		}
		if !e.keyed {
			e.dropped = true
			continue
		}
		if e.present {
			e.present, e.keyImage, e.image = false, e.image, nil
		}
	}
}

// lookup returns the entry of the keyed row with encoded key mapKey (the
// bytes keyOf returned), creating it with presentBefore for a row not yet
// seen.
func (c *compactor) lookup(mapKey []byte, presentBefore bool) int {
	h := c.hash(c.seed, mapKey)
	i, taken := c.index[h]
	if taken && bytes.Equal(c.entries[i].mapKey, mapKey) {
		return i
	}
	if len(c.collided) > 0 {
		if j, ok := c.collided[string(mapKey)]; ok {
			return j
		}
	}
	start := len(c.keys)
	c.keys = append(c.keys, mapKey...)
	n := len(c.entries)
	if taken {
		c.collided[string(mapKey)] = n
	} else {
		c.index[h] = n
	}
	c.entries = append(c.entries, compactEntry{
		keyed: true, presentBefore: presentBefore, present: presentBefore,
		mapKey: c.keys[start:len(c.keys):len(c.keys)], hash: h,
	})
	return n
}

// unindex removes entry i, a keyed row, from the index.
func (c *compactor) unindex(i int) {
	e := &c.entries[i]
	if j, ok := c.index[e.hash]; ok && j == i {
		delete(c.index, e.hash)
		return
	}
	delete(c.collided, string(e.mapKey))
}

// keyOf encodes the key columns of t as the relation ID followed by each key
// value's JSON, length-prefixed. The result aliases scratch and is valid
// until the next call.
func (c *compactor) keyOf(rel *Relation, t Tuple) ([]byte, error) {
	b := binary.BigEndian.AppendUint32(c.keyBuf[:0], rel.ID)
	for i := range rel.Columns {
		col := &rel.Columns[i]
		if !col.Key {
			continue
		}
		d := t[i]
		switch d.Kind {
		case DatumUnchanged:
			return nil, &PartialRowError{Schema: rel.Schema, Table: rel.Table, Column: col.Name}
		case DatumNull:
			// A key column is never NULL in a row: the old row of an update
			// or delete left it out (a replica identity without it).
			return nil, &OldRowError{Schema: rel.Schema, Table: rel.Table, Column: col.Name}
		}
		at := len(b)
		b = append(b, 0, 0, 0, 0)
		var err error
		b, err = c.vals.appendDatum(b, col.TypeOID, d.Kind, d.Data, 0)
		if err != nil {
			return nil, valueError(rel, col, d.Kind, err)
		}
		binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	}
	c.keyBuf = b
	return b, nil
}

// fillUnchanged returns row with every DatumUnchanged (a TOASTed value the
// update did not touch) replaced: from old where old carries the column's
// real value (REPLICA IDENTITY FULL, or a key column), else from prior, the
// row's image from an earlier change in the transaction. It copies row only
// when something needs filling, and never returns a partial row.
func fillUnchanged(rel *Relation, row, old, prior Tuple) (Tuple, error) {
	var out Tuple
	for i := range row {
		if row[i].Kind != DatumUnchanged {
			continue
		}
		var src Datum
		switch {
		case old != nil && (rel.ReplicaIdentity == 'f' || rel.Columns[i].Key) && old[i].Kind != DatumUnchanged:
			src = old[i]
		case prior != nil && prior[i].Kind != DatumUnchanged:
			src = prior[i]
		default:
			return nil, &PartialRowError{Schema: rel.Schema, Table: rel.Table, Column: rel.Columns[i].Name}
		}
		if out == nil {
			out = make(Tuple, len(row))
			copy(out, row)
		}
		out[i] = src
	}
	if out == nil {
		return row, nil
	}
	return out, nil
}

// checkWidth rejects tuples that do not match the relation's columns.
func checkWidth(rel *Relation, ch *Change) error {
	n := len(rel.Columns)
	switch {
	case ch.Kind != Delete && len(ch.New) != n:
		return fmt.Errorf("%w: %s.%s new tuple has %d columns, relation has %d", ErrMalformedChange, rel.Schema, rel.Table, len(ch.New), n)
	case ch.Old != nil && len(ch.Old) != n:
		return fmt.Errorf("%w: %s.%s old tuple has %d columns, relation has %d", ErrMalformedChange, rel.Schema, rel.Table, len(ch.Old), n)
	}
	return nil
}

// sameShape reports whether tuples of a and b line up column by column, so
// an image taken under one can fill a tuple of the other (a relation
// message in mid-transaction may have added or dropped columns).
func sameShape(a, b *Relation) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil || len(a.Columns) != len(b.Columns) {
		return false
	}
	for i := range a.Columns {
		if a.Columns[i].Name != b.Columns[i].Name || a.Columns[i].TypeOID != b.Columns[i].TypeOID {
			return false
		}
	}
	return true
}

// valueError attaches the table and column to a value decoding error.
func valueError(rel *Relation, col *Column, kind DatumKind, err error) error {
	return &ValueError{Schema: rel.Schema, Table: rel.Table, Column: col.Name, TypeOID: col.TypeOID, Format: kind, Err: err}
}
