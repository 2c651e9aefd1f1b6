package record

import (
	"fmt"
	"slices"
)

// The one-pass path of EncodeSpilled, for a transaction whose changes are
// all INSERTs, such as a bulk load: no runs are written, sorted or merged.
//
// Compaction changes nothing in such a transaction. A row's record is
// decided by its first and last changes, and here each row has one change:
// a keyed table's key is its primary key (docs/records.md#keys), which
// PostgreSQL holds unique when the transaction commits (a deferred one
// too), so no two committed INSERTs of one transaction share a key. A
// change of key definition inside the transaction changes the JSON of the
// key, which names its columns. So every INSERT is its row's `c` record,
// in the order made, which is the order Encode gives.

// insertsOnly is implemented by the ChangeReaders that know whether every
// change they hold is an INSERT.
type insertsOnly interface{ insertsOnly() bool }

// direct encodes src's INSERTs in order (phase 1 and 3 in one).
func (x *external) direct(src ChangeReader, out *batch) error {
	err := x.each(src, func(ch *Change, seq uint64) error {
		row, err := x.insertRow(ch)
		if err != nil {
			return fmt.Errorf("compact change %d: %w", seq, err)
		}
		return out.put(&row)
	})
	if err != nil {
		return err
	}
	return out.flush()
}

// insertRow is the record of one INSERT, as compaction would make it.
func (x *external) insertRow(ch *Change) (compactRow, error) {
	rel := ch.Rel
	if rel == nil {
		return compactRow{}, fmt.Errorf("%w: change without a relation", ErrMalformedChange)
	}
	if ch.Kind != Insert {
		return compactRow{}, fmt.Errorf("%w: %q in a transaction read as INSERTs only", ErrMalformedChange, byte(ch.Kind))
	}
	if err := checkWidth(rel, ch); err != nil {
		return compactRow{}, err
	}
	if !isKeyed(rel) {
		return keylessRow(ch)
	}
	after, err := fillUnchanged(rel, ch.New, nil, nil)
	if err != nil {
		return compactRow{}, err
	}
	key, err := x.e.compact.keyOf(rel, after)
	if err != nil {
		return compactRow{}, err
	}
	// keyOf leads with the relation ID, which a record's key leaves out.
	row := compactRow{rel: rel, key: slices.Clone(key[4:])}
	row.netEffect(false, true, false, after, nil)
	return row, nil
}
