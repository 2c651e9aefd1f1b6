package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
)

// Phase 2 of the external compaction (external.go): each row's events, in
// change order, through the rules of compact.go.

// compactRows runs passes over the events until no row waits on a
// placeholder.
func (x *external) compactRows() error {
	for pass := 0; !x.events.empty(); pass++ {
		if pass > x.pending+1 {
			// Each pass resolves the earliest placeholder, so this means
			// a placeholder without its departure.
			return fmt.Errorf("%w: key changes left unresolved after %d passes", ErrCorruptSpill, pass)
		}
		srcs, err := x.events.finish()
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
		x.events = newRunBuilder(x.opts.Store, x.opts.Budget/4)
		err = x.rowsPass(m)
		if cerr := m.close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// rowsPass compacts each row of m, carrying blocked rows to x.events.
func (x *external) rowsPass(m *merger) error {
	var r rowRun
	for {
		h, ok, err := m.next()
		if err != nil {
			return err
		}
		if ok && len(h.key) < 4+4+9 {
			return fmt.Errorf("%w: event key of %d bytes", ErrCorruptSpill, len(h.key))
		}
		if ok && r.group != nil && bytes.Equal(h.key[:len(h.key)-9], r.group) {
			if err := r.apply(h); err != nil {
				return err
			}
			continue
		}
		if r.group != nil {
			if err := r.finish(); err != nil {
				return err
			}
		}
		if !ok {
			return nil
		}
		group := h.key[:len(h.key)-9]
		r = rowRun{x: x, group: group, mapKey: group[4:], truncs: x.truncs[binary.BigEndian.Uint32(group[4:])]}
		if err := r.apply(h); err != nil {
			return err
		}
	}
}

// rowState is compactEntry for one row, and when its entry was created.
type rowState struct {
	exists                 bool
	seq                    uint64
	sub                    byte
	rel                    *Relation
	presentBefore, present bool
	// read: the row's last insert was a snapshot read (op "r").
	read            bool
	image, keyImage Tuple
}

// touch is compactor.lookup: an absent entry is created by this change.
func (s *rowState) touch(presentBefore bool, seq uint64, sub byte) {
	if !s.exists {
		*s = rowState{exists: true, seq: seq, sub: sub, presentBefore: presentBefore, present: presentBefore}
	}
}

// prior is the image an update of rel may fill unchanged values from.
func (s *rowState) prior(rel *Relation) Tuple {
	if s.present && s.image != nil && sameShape(s.rel, rel) {
		return s.image
	}
	return nil
}

func (s *rowState) set(rel *Relation, present bool, image, keyImage Tuple) {
	s.rel, s.present, s.image = rel, present, image
	if keyImage != nil {
		s.keyImage = keyImage
	}
}

// rowRun is one row's pass.
type rowRun struct {
	x      *external
	group  []byte // u32 length ‖ mapKey
	mapKey []byte // relation ID ‖ encoded key
	truncs []truncEvent
	st     rowState
	// blocked: an unresolved placeholder was reached; the rest goes to
	// the next pass.
	blocked bool
	// resolved is 1 + the sequence of the last resolved arrival, which
	// makes its placeholder moot.
	resolved uint64
}

// truncateBefore applies the truncates of the row's table made before seq.
func (r *rowRun) truncateBefore(seq uint64) {
	for len(r.truncs) > 0 && r.truncs[0].seq < seq {
		r.truncs = r.truncs[1:]
		switch {
		case r.x.emitTruncate:
			r.st = rowState{} // dropped: a later change starts afresh
		case r.st.exists && r.st.present:
			r.st.present, r.st.keyImage, r.st.image = false, r.st.image, nil
		}
	}
}

func (r *rowRun) apply(h head) error {
	if r.blocked {
		return r.x.events.add(h.key, h.payload)
	}
	seq := binary.BigEndian.Uint64(h.key[len(h.key)-9:])
	r.truncateBefore(seq)
	d := decoder{b: h.payload}
	typ := d.byte()
	if typ == evSnapshot {
		return r.restore(&d, seq)
	}
	if typ == evPending {
		if r.resolved == seq+1 {
			return nil
		}
		r.blocked = true
		if err := r.x.events.add(r.x.eventKey(r.mapKey, seq, subSnapshot), r.snapshot()); err != nil {
			return err
		}
		return r.x.events.add(h.key, h.payload)
	}
	rel := d.rel(r.x.rels.list)
	t1 := d.tuple()
	var t2 Tuple
	var newKey []byte
	switch typ {
	case evUpdatePart:
		t2 = d.tuple()
	case evDepartFill:
		newKey = d.bytes()
		t2 = d.tuple()
	}
	if err := d.done(); err != nil {
		return err
	}
	if rel == nil {
		return fmt.Errorf("%w: event without a relation", ErrCorruptSpill)
	}
	s := &r.st
	switch typ {
	case evInsert, evRead:
		s.touch(false, seq, 0)
		s.set(rel, true, t1, nil)
		s.read = typ == evRead
	case evUpdate:
		s.touch(true, seq, 0)
		s.set(rel, true, t1, nil)
	case evUpdatePart:
		s.touch(true, seq, 0)
		row, err := fillUnchanged(rel, t1, t2, s.prior(rel))
		if err != nil {
			return fmt.Errorf("compact change %d: %w", seq, err)
		}
		s.set(rel, true, row, nil)
	case evDepart:
		s.touch(true, seq, 0)
		s.set(rel, false, nil, t1)
	case evDepartFill:
		s.touch(true, seq, 0)
		row, err := fillUnchanged(rel, t2, t1, s.prior(rel))
		if err != nil {
			return fmt.Errorf("compact change %d: %w", seq, err)
		}
		// The new row, complete now, for the next pass.
		if err := r.x.events.add(r.x.eventKey(newKey, seq, subEvent), r.x.payload(evArrive, rel, row)); err != nil {
			return err
		}
		s.set(rel, false, nil, t1)
	case evArrive:
		s.touch(false, seq, 1)
		s.set(rel, true, t1, nil)
		r.resolved = seq + 1
	case evDelete:
		s.touch(true, seq, 0)
		s.set(rel, false, nil, t1)
	default:
		return fmt.Errorf("%w: event type %q", ErrCorruptSpill, typ)
	}
	return nil
}

// finish adds the row's record, if it has one, for phase 3.
func (r *rowRun) finish() error {
	if r.blocked {
		return nil
	}
	r.truncateBefore(1<<64 - 1)
	s := &r.st
	if !s.exists {
		return nil
	}
	row := compactRow{rel: s.rel, key: slices.Clone(r.mapKey[4:])}
	if !row.netEffect(s.presentBefore, s.present, s.read, s.image, s.keyImage) {
		return nil // inserted and deleted within the transaction
	}
	return r.x.addRow(s.seq, s.sub, rowKeyed, &row)
}

// snapshot encodes the row's state for the next pass, in x.ent.
func (r *rowRun) snapshot() []byte {
	s := &r.st
	var flags byte
	for i, b := range []bool{s.exists, s.presentBefore, s.present, s.read} {
		if b {
			flags |= 1 << i
		}
	}
	p := append(r.x.ent[:0], evSnapshot, flags, s.sub)
	p = binary.AppendUvarint(p, s.seq)
	p = binary.AppendUvarint(p, r.x.rels.id(s.rel))
	p = appendTuple(p, s.image)
	r.x.ent = appendTuple(p, s.keyImage)
	return r.x.ent
}

func (r *rowRun) restore(d *decoder, seq uint64) error {
	flags := d.byte()
	s := rowState{exists: flags&1 != 0, presentBefore: flags&2 != 0, present: flags&4 != 0, read: flags&8 != 0}
	s.sub = d.byte()
	s.seq = d.uvarint()
	s.rel = d.rel(r.x.rels.list)
	s.image = d.tuple()
	s.keyImage = d.tuple()
	if err := d.done(); err != nil {
		return err
	}
	if s.exists && s.rel == nil {
		return fmt.Errorf("%w: snapshot at %d without a relation", ErrCorruptSpill, seq)
	}
	r.st = s
	return nil
}
