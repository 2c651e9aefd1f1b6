package capture

import (
	"strings"
	"testing"
)

// TestParseMessageRejectsMalformed: length fields that point past the
// message are errors before pglogrepl would allocate or index by them.
func TestParseMessageRejectsMalformed(t *testing.T) {
	huge := wire{'I'}.u32(1).u8('N').u16(1).u8('t').u32(0xfffffff0)
	cases := []struct {
		name     string
		msg      []byte
		inStream bool
		want     string
	}{
		{"empty", nil, false, "empty message"},
		{"column longer than message", huge, false, "shorter than"},
		{"column count past end", wire{'I'}.u32(1).u8('N').u16(3).u8('n'), false, "shorter than"},
		{"unknown column kind", wire{'I'}.u32(1).u8('N').u16(1).u8('x'), false, "unknown column kind"},
		{"unknown tuple marker", wire{'U'}.u32(1).u8('Z').u16(0), false, "unknown tuple marker"},
		{"truncate count past end", wire{'T'}.u32(0x7fffffff).u8(0).u32(1), false, "shorter than"},
		{"streamed insert without xid room", wire{'I'}.u32(9), true, "shorter than"},
		{"truncated begin", wire{'B'}.u32(1), false, "must have 20 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseMessage(tc.msg, tc.inStream)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := parseMessage(wInsert(1, false, "1", "a"), false); err != nil {
		t.Fatalf("a well-formed insert: %v", err)
	}
	if _, err := parseMessage(wInsert(1, true, "1", "a"), true); err != nil {
		t.Fatalf("a well-formed streamed insert: %v", err)
	}
}
