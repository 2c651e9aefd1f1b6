package capture

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"
)

// wTuple appends a TupleData of the given column kinds; text and binary
// columns carry their index as data.
func wTuple(w wire, kinds string) wire {
	w = w.u16(uint16(len(kinds)))
	for i, k := range []byte(kinds) {
		w = w.u8(k)
		if k == 't' || k == 'b' {
			v := fmt.Sprintf("v%d", i)
			if i%3 == 0 {
				v = "" // empty values are values
			}
			w = w.u32(uint32(len(v)))
			w = append(w, v...)
		}
	}
	return w
}

// changeMessages builds Insert, Update and Delete messages of every shape
// pgoutput sends, with random column kinds.
func changeMessages(rng *rand.Rand, inStream bool) []wire {
	kinds := func() string {
		n := 1 + rng.IntN(12) // pglogrepl refuses an insert of no columns
		var b strings.Builder
		for range n {
			b.WriteByte("tbnu"[rng.IntN(4)])
		}
		return b.String()
	}
	head := func(typ byte) wire {
		w := wire{typ}
		if inStream {
			w = w.u32(rng.Uint32())
		}
		return w.u32(rng.Uint32())
	}
	var out []wire
	for range 50 {
		k := kinds()
		out = append(out,
			wTuple(head('I').u8('N'), k),
			wTuple(head('U').u8('N'), k),
			wTuple(wTuple(head('U').u8('K'), k).u8('N'), k),
			wTuple(wTuple(head('U').u8('O'), kinds()).u8('N'), k),
			wTuple(head('D').u8('K'), k),
			wTuple(head('D').u8('O'), k))
	}
	return out
}

// TestDecodeChangeMatchesPglogrepl: decodeChange reads every Insert, Update
// and Delete as pglogrepl does, without aliasing the message buffer.
func TestDecodeChangeMatchesPglogrepl(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, inStream := range []bool{false, true} {
		for _, msg := range changeMessages(rng, inStream) {
			buf := bytes.Clone(msg)
			got, err := parseMessage(buf, inStream)
			if err != nil {
				t.Fatalf("parse %x: %v", msg, err)
			}
			want, err := pglogrepl.ParseV2(msg, inStream)
			if err != nil {
				t.Fatalf("pglogrepl parse %x: %v", msg, err)
			}
			w := fromPglogrepl(unwrap(want))
			if inStream {
				w.xid = binary.BigEndian.Uint32(msg[1:])
			}
			for i := range buf {
				buf[i] = 0xEE // the receive loop reuses its buffer
			}
			if !reflect.DeepEqual(got, w) {
				t.Fatalf("message %x:\n got  %+v\n want %+v", msg, got, w)
			}
		}
	}
}

// TestDecodeChangeRejects: what pglogrepl would misread or ignore is an
// error.
func TestDecodeChangeRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		msg  wire
		want string
	}{
		{"insert of a key tuple", wTuple(wire{'I'}.u32(1).u8('K'), "t"), "unknown tuple marker 'K'"},
		{"delete of a new tuple", wTuple(wire{'D'}.u32(1).u8('N'), "t"), "unknown tuple marker 'N'"},
		{"update without its new tuple", wTuple(wire{'U'}.u32(1).u8('O'), "t"), "shorter than"},
		{"update with two old tuples", wTuple(wTuple(wire{'U'}.u32(1).u8('O'), "t").u8('K'), "t"), "unknown tuple marker 'K'"},
		{"bytes after the tuple", wTuple(wire{'I'}.u32(1).u8('N'), "t").u8('N'), "1 bytes after the last tuple"},
		{"no tuple", wire{'D'}.u32(1), "shorter than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseMessage(c.msg, false)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}
