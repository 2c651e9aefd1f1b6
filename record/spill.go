package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Spilling (big transactions spill to disk past a memory budget).
// record does no I/O itself: a RunStore holds opaque byte entries, and the
// daemon backs it with encrypted files (package record/spill over
// state/atrest). Two things go through it:
//
//   - capture writes an open transaction's changes, in order, once it
//     passes the budget (ChangeSpill), and hands over a Txn whose Spilled
//     reads them back;
//   - EncodeSpilled sorts a transaction's changes by row into runs of at
//     most the budget and merges them (external.go).
//
// Relations are not serialised: an entry names its relation by its index in
// a table of *Relation pointers that stays in memory for the life of the
// spill (relations are small and few). The index stands for the relation
// ID and the version of its schema that the change was decoded with, so a
// relation altered mid-transaction keeps both shapes, as in memory.

// RunStore creates temporary runs of entries.
//
// A store may run out of room (a cap on its size, a full disk): Create,
// Write and Finish then fail with an error matching ErrSpillFull, which
// the store has reported to the stream. Nothing is lost: the transaction
// that needed the room is read from the slot again.
type RunStore interface {
	Create() (RunWriter, error)
}

// RunWriter appends entries to a new run.
type RunWriter interface {
	// Write appends one entry; the store does not keep p.
	Write(p []byte) error
	// Finish ends writing and opens the run for reading from its first
	// entry. After an error the run is gone.
	Finish() (RunReader, error)
	// Remove abandons the run and deletes what it wrote.
	Remove() error
}

// RunReader reads a run back once.
type RunReader interface {
	// Next returns the next entry, or io.EOF after the last. The caller
	// owns the returned slice and may keep it.
	Next() ([]byte, error)
	// Close ends reading and deletes the run.
	Close() error
}

// ChangeReader yields a transaction's changes one by one, in the order
// they were made.
type ChangeReader interface {
	// Next returns the next change or io.EOF after the last one. Its
	// tuples stay valid until the next call: the spill's reader reuses
	// one buffer, so a caller copies what it keeps.
	Next() (Change, error)
	// Close releases the changes and deletes anything kept on disk.
	Close() error
}

// ErrSpillFull is matched by the errors of a RunStore that has no room.
var ErrSpillFull = errors.New("spill full")

// ErrCorruptSpill means an entry read back is not what was written.
var ErrCorruptSpill = errors.New("record: corrupt spill entry")

// ChangeSpill writes a transaction's changes to one run, in order. It is
// capture's side of Txn.Spilled. Not safe for concurrent use.
type ChangeSpill struct {
	w      RunWriter
	rels   relTable
	buf    []byte
	n      int
	bytes  int64
	others int // changes that are not INSERTs
}

// NewChangeSpill starts a spill in store.
func NewChangeSpill(store RunStore) (*ChangeSpill, error) {
	if store == nil {
		return nil, errors.New("new change spill: nil RunStore")
	}
	w, err := store.Create()
	if err != nil {
		return nil, fmt.Errorf("new change spill: %w", err)
	}
	return &ChangeSpill{w: w}, nil
}

// Add appends ch. tag is kept with it for Finish's filter: capture tags a
// streamed transaction's changes with their subtransaction, so that a
// subtransaction rolled back after its changes were spilled is skipped.
func (s *ChangeSpill) Add(ch *Change, tag uint32) error {
	b := append(s.buf[:0], byte(ch.Kind))
	b = binary.AppendUvarint(b, s.rels.id(ch.Rel))
	b = binary.AppendUvarint(b, uint64(tag))
	b = appendTuple(b, ch.Old)
	b = appendTuple(b, ch.New)
	s.buf = b
	if err := s.w.Write(b); err != nil {
		return fmt.Errorf("spill change: %w", err)
	}
	s.n++
	s.bytes += int64(len(b))
	if ch.Kind != Insert {
		s.others++
	}
	if cap(s.buf) > maxRetainedScratch {
		s.buf = nil
	}
	return nil
}

// Len is the number of changes added.
func (s *ChangeSpill) Len() int { return s.n }

// Bytes is the size of the changes added, as encoded.
func (s *ChangeSpill) Bytes() int64 { return s.bytes }

// Finish ends writing and returns a reader of the changes whose tag keep
// accepts (all of them for a nil keep).
func (s *ChangeSpill) Finish(keep func(tag uint32) bool) (ChangeReader, error) {
	r, err := s.w.Finish()
	if err != nil {
		return nil, fmt.Errorf("finish change spill: %w", err)
	}
	into, _ := r.(intoReader)
	return &spilledChanges{r: r, into: into, rels: s.rels.list, keep: keep, inserts: s.others == 0}, nil
}

// Remove abandons the spill (the transaction aborted) and deletes it.
func (s *ChangeSpill) Remove() error { return s.w.Remove() }

// spilledChanges reads back a ChangeSpill.
type spilledChanges struct {
	r       RunReader
	into    intoReader // r, when it can read into buf
	rels    []*Relation
	keep    func(uint32) bool
	inserts bool   // every change added was an INSERT
	buf     []byte // the last change read, reused when r can
}

// intoReader is a RunReader that can read an entry into a buffer of the
// caller's (atrest's spill files can).
type intoReader interface {
	NextInto(buf []byte) ([]byte, error)
}

func (c *spilledChanges) insertsOnly() bool { return c.inserts }

func (c *spilledChanges) Next() (Change, error) {
	for {
		p, err := c.next()
		if err != nil {
			if err == io.EOF {
				return Change{}, io.EOF
			}
			return Change{}, fmt.Errorf("read spilled change: %w", err)
		}
		d := decoder{b: p}
		ch := Change{Kind: ChangeKind(d.byte())}
		ch.Rel = d.rel(c.rels)
		tag := d.uvarint()
		ch.Old = d.tuple()
		ch.New = d.tuple()
		if err := d.done(); err != nil {
			return Change{}, fmt.Errorf("read spilled change: %w", err)
		}
		if c.keep == nil || c.keep(uint32(tag)) {
			return ch, nil
		}
	}
}

// next reads the next entry, into c.buf when the reader can: a large
// transaction's spill is read back once, so a fresh slice per change was
// a third of its allocations.
func (c *spilledChanges) next() ([]byte, error) {
	if c.into == nil {
		return c.r.Next()
	}
	p, err := c.into.NextInto(c.buf)
	if cap(p) <= maxRetainedScratch {
		c.buf = p
	}
	return p, err
}

func (c *spilledChanges) Close() error { return c.r.Close() }

// SliceChanges is a ChangeReader over changes in memory.
func SliceChanges(changes []Change) ChangeReader { return &sliceChanges{c: changes} }

type sliceChanges struct {
	c []Change
	i int
}

func (s *sliceChanges) Next() (Change, error) {
	if s.i >= len(s.c) {
		return Change{}, io.EOF
	}
	s.i++
	return s.c[s.i-1], nil
}

func (s *sliceChanges) insertsOnly() bool {
	for i := range s.c {
		if s.c[i].Kind != Insert {
			return false
		}
	}
	return true
}

func (s *sliceChanges) Close() error {
	s.c = nil
	return nil
}

// relTable numbers the relations of one spill from 1; 0 is a nil relation,
// which compaction then rejects as it would in memory.
type relTable struct {
	list  []*Relation // list[i-1] has number i
	index map[*Relation]uint64
}

func (t *relTable) id(rel *Relation) uint64 {
	if rel == nil {
		return 0
	}
	if n, ok := t.index[rel]; ok {
		return n
	}
	if t.index == nil {
		t.index = make(map[*Relation]uint64)
	}
	t.list = append(t.list, rel)
	t.index[rel] = uint64(len(t.list))
	return uint64(len(t.list))
}

// appendTuple appends uvarint(columns+1), 0 for a nil tuple, then each
// datum as its kind, uvarint length and bytes.
func appendTuple(dst []byte, t Tuple) []byte {
	if t == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(t))+1)
	for i := range t {
		dst = append(dst, byte(t[i].Kind))
		dst = binary.AppendUvarint(dst, uint64(len(t[i].Data)))
		dst = append(dst, t[i].Data...)
	}
	return dst
}

// tupleSize is an upper bound of appendTuple's output, for sizing.
func tupleSize(t Tuple) int {
	n := binary.MaxVarintLen64
	for i := range t {
		n += 1 + binary.MaxVarintLen64 + len(t[i].Data)
	}
	return n
}

// decoder reads what the append functions of this file and external.go
// wrote. Its first error sticks; the values read after it are zero.
// Decoded byte slices alias the entry, which the caller owns.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorruptSpill, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("short entry")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("length past the end")
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.fail("short entry")
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) rel(rels []*Relation) *Relation {
	n := d.uvarint()
	if n == 0 {
		return nil
	}
	if n > uint64(len(rels)) {
		d.fail("unknown relation")
		return nil
	}
	return rels[n-1]
}

func (d *decoder) tuple() Tuple {
	n := d.uvarint()
	if n == 0 {
		return nil
	}
	n--
	if n > uint64(len(d.b)) { // every datum takes at least 2 bytes
		d.fail("column count past the end")
		return nil
	}
	t := make(Tuple, n)
	for i := range t {
		t[i].Kind = DatumKind(d.byte())
		if data := d.bytes(); len(data) > 0 {
			t[i].Data = data
		}
	}
	if d.err != nil {
		return nil
	}
	return t
}

// done reports the first error, or an error if bytes are left over.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}
