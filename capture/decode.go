package capture

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
)

// parseMessage decodes one pgoutput message: Insert, Update and Delete with
// decodeChange, the rest with pglogrepl. Protocol 2's parser reads
// protocol 1 messages alike; inStream says whether messages carry the xid of
// a streamed transaction. A malformed message is an error, never a panic or
// a huge allocation: pglogrepl's decoders index into the buffer on trust and
// allocate whatever a tuple's length field says, so tuples are checked
// against the buffer first.
func parseMessage(buf []byte, inStream bool) (msg pglogrepl.Message, err error) {
	if len(buf) == 0 {
		return nil, errors.New("empty message")
	}
	if isChangeMessage(buf[0]) {
		m, err := decodeChange(buf, inStream)
		if err != nil {
			return nil, fmt.Errorf("malformed %q message: %w", buf[0], err)
		}
		return m, nil
	}
	if err := checkTuples(buf, inStream); err != nil {
		return nil, fmt.Errorf("malformed %q message: %w", buf[0], err)
	}
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("malformed %q message: %v", buf[0], r)
		}
	}()
	return pglogrepl.ParseV2(buf, inStream)
}

var errShort = errors.New("shorter than its fields say")

// checkTuples walks the tuples of an Insert, Update or Delete message and
// the relation list of a Truncate, and makes sure they fit inside buf.
func checkTuples(buf []byte, inStream bool) error {
	p := 1
	typ := pglogrepl.MessageType(buf[0])
	switch typ {
	case pglogrepl.MessageTypeInsert, pglogrepl.MessageTypeUpdate, pglogrepl.MessageTypeDelete, pglogrepl.MessageTypeTruncate:
	default:
		return nil
	}
	if inStream {
		p += 4 // xid
	}
	if typ == pglogrepl.MessageTypeTruncate {
		// relation count, options, then the relation ids
		if p+5 > len(buf) || int64(binary.BigEndian.Uint32(buf[p:]))*4 > int64(len(buf)-p-5) {
			return errShort
		}
		return nil
	}
	p += 4 // relation id
	for p < len(buf) {
		switch buf[p] {
		case 'K', 'O', 'N':
		default:
			return fmt.Errorf("unknown tuple marker %q", buf[p])
		}
		var err error
		if p, err = checkTuple(buf, p+1); err != nil {
			return err
		}
	}
	if p > len(buf) {
		return errShort
	}
	return nil
}

// checkTuple checks one TupleData starting at p and returns its end.
func checkTuple(buf []byte, p int) (int, error) {
	if p+2 > len(buf) {
		return 0, errShort
	}
	n := int(binary.BigEndian.Uint16(buf[p:]))
	p += 2
	for range n {
		if p >= len(buf) {
			return 0, errShort
		}
		kind := buf[p]
		p++
		switch kind {
		case pglogrepl.TupleDataTypeText, pglogrepl.TupleDataTypeBinary:
			if p+4 > len(buf) {
				return 0, errShort
			}
			size := int(binary.BigEndian.Uint32(buf[p:]))
			p += 4
			if size > len(buf)-p {
				return 0, errShort
			}
			p += size
		case pglogrepl.TupleDataTypeNull, pglogrepl.TupleDataTypeToast:
		default:
			return 0, fmt.Errorf("unknown column kind %q", kind)
		}
	}
	return p, nil
}
