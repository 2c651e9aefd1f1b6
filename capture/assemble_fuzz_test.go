package capture

import (
	"encoding/binary"
	"testing"
)

// wire builds pgoutput messages as the server encodes them.
type wire []byte

func (w wire) u8(v byte) wire    { return append(w, v) }
func (w wire) u16(v uint16) wire { return binary.BigEndian.AppendUint16(w, v) }
func (w wire) u32(v uint32) wire { return binary.BigEndian.AppendUint32(w, v) }
func (w wire) u64(v uint64) wire { return binary.BigEndian.AppendUint64(w, v) }
func (w wire) str(s string) wire { return append(append(w, s...), 0) }

func wBegin(xid uint32) wire  { return wire{'B'}.u64(0x100).u64(0).u32(xid) }
func wCommit(end uint64) wire { return wire{'C'}.u8(0).u64(end - 8).u64(end).u64(0) }
func wRel(xid uint32, stream bool) wire {
	w := wire{'R'}
	if stream {
		w = w.u32(xid)
	}
	return w.u32(1).str("public").str("t").u8('d').u16(2).
		u8(1).str("id").u32(23).u32(0xffffffff).
		u8(0).str("v").u32(25).u32(0xffffffff)
}
func wInsert(xid uint32, stream bool, id, v string) wire {
	w := wire{'I'}
	if stream {
		w = w.u32(xid)
	}
	w = w.u32(1).u8('N').u16(2)
	w = w.u8('t').u32(uint32(len(id)))
	w = append(w, id...)
	w = w.u8('t').u32(uint32(len(v)))
	return append(w, v...)
}
func wStreamStart(xid uint32, first byte) wire { return wire{'S'}.u32(xid).u8(first) }
func wStreamStop() wire                        { return wire{'E'} }
func wStreamCommit(xid uint32, end uint64) wire {
	return wire{'c'}.u32(xid).u8(0).u64(end - 8).u64(end).u64(0)
}
func wStreamAbort(xid, sub uint32) wire { return wire{'A'}.u32(xid).u32(sub) }

// frame joins messages with 16-bit length prefixes: the fuzzer's input.
func frame(msgs ...wire) []byte {
	var out []byte
	for _, m := range msgs {
		out = binary.BigEndian.AppendUint16(out, uint16(len(m)))
		out = append(out, m...)
	}
	return out
}

// FuzzAssemble feeds arbitrary pgoutput messages through the parser and the
// assembler as the receive loop does: a malformed or out-of-order message
// must be an error, never a panic, and whatever is assembled must be
// consistent with its relation.
func FuzzAssemble(f *testing.F) {
	f.Add(frame(wBegin(7), wRel(7, false), wInsert(7, false, "1", "a"), wCommit(0x200)))
	f.Add(frame(wStreamStart(9, 1), wRel(9, true), wInsert(9, true, "1", "a"), wInsert(10, true, "2", "b"),
		wStreamStop(), wStreamAbort(9, 10), wStreamStart(9, 0), wInsert(9, true, "3", "c"), wStreamStop(), wStreamCommit(9, 0x300)))
	f.Add(frame(wStreamStart(9, 1), wRel(9, true), wInsert(9, true, "1", "a"), wStreamStop(), wStreamAbort(9, 9)))
	f.Fuzz(func(t *testing.T, data []byte) {
		a := newAssembler(pkLookup("id"), nil, nil, nil)
		for len(data) >= 2 {
			n := int(binary.BigEndian.Uint16(data))
			data = data[2:]
			if n > len(data) {
				return
			}
			msg, err := parseMessage(append([]byte(nil), data[:n]...), a.inStream)
			data = data[n:]
			if err != nil {
				return
			}
			txn, err := a.handle(msg)
			if err != nil {
				return
			}
			if txn == nil {
				continue
			}
			for _, c := range txn.Changes {
				if c.Rel == nil {
					t.Fatalf("change without relation: %+v", c)
				}
				for _, tp := range []int{len(c.Old), len(c.New)} {
					if tp != 0 && tp != len(c.Rel.Columns) {
						t.Fatalf("tuple of %d columns for a relation of %d", tp, len(c.Rel.Columns))
					}
				}
			}
		}
	})
}
