package capture

import (
	"testing"
)

// BenchmarkDecodeAssemble is the receive loop's work per change: parse a
// 10-column insert as it arrives and add it to the open transaction, in
// transactions of 100 inserts. The message bytes are reused between
// messages, as the connection's read buffer is.
//
//	go test ./capture -run '^$' -bench DecodeAssemble -benchmem
func BenchmarkDecodeAssemble(b *testing.B) {
	rel := wire{'R'}.u32(1).str("public").str("t").u8('d').u16(10)
	ins := wire{'I'}.u32(1).u8('N').u16(10)
	for i, v := range []string{"123456", "42", "name-123456", "1234.56", "2024-05-01 12:34:56.789+00", "t",
		"6f1c2f4e-8f5a-4a8e-9a53-0f6d7c1b2a3e", "17636.571428571428", "a note of some length for row 123456", "42"} {
		rel = rel.u8(0).str(string(rune('a' + i))).u32(25).u32(0xffffffff)
		ins = ins.u8('t').u32(uint32(len(v)))
		ins = append(ins, v...)
	}
	a := newAssembler(func(uint32) (catalogRel, error) { return catalogRel{pk: []string{"a"}}, nil }, nil, nil, nil)
	handle := func(w wire) {
		msg, err := parseMessage(w, false)
		if err == nil {
			_, err = a.handle(msg)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	handle(rel)
	buf := make([]byte, len(ins))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n%100 == 0 {
			if n > 0 {
				handle(wCommit(uint64(0x1000 + n)))
			}
			handle(wBegin(uint32(n)))
		}
		copy(buf, ins)
		handle(buf)
		n++
	}
}
