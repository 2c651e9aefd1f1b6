package record

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Phase 3 of the external compaction (external.go): the records, in the
// order Encode gives them, encoded.

// emit is phase 3: merge the records into Encode's order, with the
// truncate records in their places, and encode them.
func (x *external) emit(out *batch) error {
	srcs, err := x.rows.finish()
	if err != nil {
		return err
	}
	srcs, err = mergeSources(x.opts.Store, srcs, x.opts.MaxFanIn, x.stop)
	if err != nil {
		return err
	}
	m, err := newMerger(srcs, x.stop)
	if err != nil {
		return err
	}
	defer m.close()

	// A truncate drops the keyless changes of its table made before it;
	// with EmitTruncate the last truncate of a table is its t record
	// (each one drops those before it).
	last := make(map[uint32]uint64, len(x.truncs))
	var tRows []truncEvent
	for id, ts := range x.truncs {
		last[id] = ts[len(ts)-1].seq
		if x.emitTruncate {
			tRows = append(tRows, ts[len(ts)-1])
		}
	}
	slices.SortFunc(tRows, func(a, b truncEvent) int { return cmpUint64(a.seq, b.seq) })

	for {
		h, ok, err := m.next()
		if err != nil {
			return err
		}
		seq := uint64(1<<64 - 1)
		var row compactRow
		var typ byte
		if ok {
			if seq, typ, err = x.decodeRow(h, &row); err != nil {
				return err
			}
		}
		for len(tRows) > 0 && tRows[0].seq < seq {
			if err := out.put(&compactRow{rel: tRows[0].rel, op: 't'}); err != nil {
				return err
			}
			tRows = tRows[1:]
		}
		if !ok {
			break
		}
		if typ == rowKeyless {
			if t, cut := last[row.rel.ID]; cut && t > seq {
				continue
			}
		}
		if err := out.put(&row); err != nil {
			return err
		}
	}
	return out.flush()
}

// batch collects records for emit, BatchBytes or maxBatchRecords at a
// time, numbering rows as Encode does.
type batch struct {
	e        *Encoder
	emit     func([]Record) error
	maxBytes int
	recs     []Record
	bytes    int
	index    int
}

func (b *batch) put(row *compactRow) error {
	n := len(b.recs)
	var err error
	if b.recs, err = b.e.appendRow(b.recs, row, b.index); err != nil {
		return err
	}
	b.index++
	for _, r := range b.recs[n:] {
		b.bytes += r.Size()
	}
	if b.bytes < b.maxBytes && len(b.recs) < maxBatchRecords {
		return nil
	}
	return b.flush()
}

// flush passes the batch to emit; the next batch's positions continue
// from it.
func (b *batch) flush() error {
	if len(b.recs) == 0 {
		return nil
	}
	b.e.settleKeys(b.recs)
	if err := b.emit(b.recs); err != nil {
		return err
	}
	b.e.recBase += len(b.recs)
	clear(b.recs)
	b.recs, b.bytes = b.recs[:0], 0
	return nil
}

// decodeRow reads a phase 3 entry into row.
func (x *external) decodeRow(h head, row *compactRow) (seq uint64, typ byte, err error) {
	if len(h.key) != 9 {
		return 0, 0, fmt.Errorf("%w: record key of %d bytes", ErrCorruptSpill, len(h.key))
	}
	seq = binary.BigEndian.Uint64(h.key)
	d := decoder{b: h.payload}
	typ = d.byte()
	row.op = d.byte()
	row.rel = d.rel(x.rels.list)
	row.key = slices.Clone(d.bytes())
	row.before = d.tuple()
	row.after = d.tuple()
	if err := d.done(); err != nil {
		return 0, 0, err
	}
	if row.rel == nil || (typ != rowKeyed && typ != rowKeyless) {
		return 0, 0, fmt.Errorf("%w: bad record entry", ErrCorruptSpill)
	}
	return seq, typ, nil
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
