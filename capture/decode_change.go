package capture

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/cdcd-dev/cdcd/record"
)

// changeMessage is an Insert, Update or Delete message decoded straight into
// record tuples. pglogrepl's decoders allocate a struct and a byte slice for
// every column and copy the data a byte at a time, which was most of
// capture's allocations; decodeChange makes one copy of the message (whose
// bytes alias the connection's read buffer), one slice of datums for its
// tuples, and the message itself.
type changeMessage struct {
	kind record.ChangeKind
	// xid is the (sub)transaction that made the change, in a stream block.
	xid   uint32
	relID uint32
	// old is the 'K' or 'O' tuple, nil without one; new the 'N' tuple, nil
	// for a delete.
	old, new record.Tuple
	bytes    int // tuple data bytes
}

func (m *changeMessage) Type() pglogrepl.MessageType { return pglogrepl.MessageType(m.kind) }

// isChangeMessage reports whether decodeChange reads messages of type typ.
func isChangeMessage(typ byte) bool {
	switch pglogrepl.MessageType(typ) {
	case pglogrepl.MessageTypeInsert, pglogrepl.MessageTypeUpdate, pglogrepl.MessageTypeDelete:
		return true
	}
	return false
}

// decodeChange decodes an Insert, Update or Delete message; inStream says
// whether it carries the xid of a streamed transaction. Every length is
// checked against the message before it is used.
func decodeChange(buf []byte, inStream bool) (*changeMessage, error) {
	data := bytes.Clone(buf)
	m := &changeMessage{kind: record.ChangeKind(data[0])}
	p := 1
	if inStream {
		if p+4 > len(data) {
			return nil, errShort
		}
		m.xid = binary.BigEndian.Uint32(data[p:])
		p += 4
	}
	if p+5 > len(data) {
		return nil, errShort
	}
	m.relID = binary.BigEndian.Uint32(data[p:])
	p += 4
	marker := data[p]
	var datums record.Tuple
	var err error
	switch {
	case marker == 'K' || marker == 'O':
		if m.kind == record.Insert {
			break
		}
		tuples := 1
		if m.kind == record.Update {
			tuples = 2 // the new tuple follows
		}
		if m.old, datums, p, err = decodeTuple(data, p+1, datums, tuples); err != nil {
			return nil, err
		}
		if m.kind == record.Delete {
			return m, m.finish(data, p)
		}
		if p >= len(data) || data[p] != 'N' {
			return nil, tupleMarkerError(data, p)
		}
		fallthrough
	case marker == 'N' && m.kind != record.Delete:
		if m.new, _, p, err = decodeTuple(data, p+1, datums, 1); err != nil {
			return nil, err
		}
		return m, m.finish(data, p)
	}
	return nil, tupleMarkerError(data, p)
}

// finish checks that the tuples ended the message at p and counts their
// data.
func (m *changeMessage) finish(data []byte, p int) error {
	if p != len(data) {
		return fmt.Errorf("%d bytes after the last tuple", len(data)-p)
	}
	m.count()
	return nil
}

// count sets m.bytes from the tuples.
func (m *changeMessage) count() {
	m.bytes = 0
	for _, t := range []record.Tuple{m.old, m.new} {
		for i := range t {
			m.bytes += len(t[i].Data)
		}
	}
}

func tupleMarkerError(data []byte, p int) error {
	if p >= len(data) {
		return errShort
	}
	return fmt.Errorf("unknown tuple marker %q", data[p])
}

// decodeTuple decodes the TupleData at p, appending its datums to datums,
// which a second tuple of the message then shares; when datums is nil it is
// made with room for tuples tuples of this one's width. Datum data aliases
// data. It returns the tuple, datums, and the end of the tuple.
func decodeTuple(data []byte, p int, datums record.Tuple, tuples int) (record.Tuple, record.Tuple, int, error) {
	if p+2 > len(data) {
		return nil, datums, 0, errShort
	}
	n := int(binary.BigEndian.Uint16(data[p:]))
	p += 2
	if datums == nil {
		// An update's old and new tuples both have the relation's columns.
		datums = make(record.Tuple, 0, tuples*n)
	}
	start := len(datums)
	for range n {
		if p >= len(data) {
			return nil, datums, 0, errShort
		}
		kind := data[p]
		p++
		d := record.Datum{Kind: record.DatumKind(kind)}
		switch kind {
		case pglogrepl.TupleDataTypeText, pglogrepl.TupleDataTypeBinary:
			if p+4 > len(data) {
				return nil, datums, 0, errShort
			}
			size := int(binary.BigEndian.Uint32(data[p:]))
			p += 4
			if size > len(data)-p {
				return nil, datums, 0, errShort
			}
			d.Data = data[p : p+size : p+size]
			p += size
		case pglogrepl.TupleDataTypeNull, pglogrepl.TupleDataTypeToast:
		default:
			return nil, datums, 0, fmt.Errorf("unknown column kind %q", kind)
		}
		datums = append(datums, d)
	}
	return datums[start:len(datums):len(datums)], datums, p, nil
}
