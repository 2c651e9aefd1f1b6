package record

import (
	"bytes"
	"testing"
)

// FuzzDecode: Decode never panics, every error wraps ErrMalformedRecord,
// and what it accepts re-encodes to a record that decodes to the same
// message.
func FuzzDecode(f *testing.F) {
	f.Add(readConsumerFile(f, "dsql_example.json"))
	f.Add(readConsumerFile(f, "cdcd_delete.json"))
	for _, line := range consumerLines(f, "chunked_update.jsonl") {
		f.Add(line)
	}
	f.Add([]byte(`{"type":"full","op":"t","before":null,"after":null,` + src + `}`))
	f.Add([]byte(`{"type":"full","op":"c","after":{"a":1,"a":2},` + src + `}`))
	f.Add([]byte(`{"type":"chunked","op":"d","chunked":{"before":{"chunk_id":"k","total_fragments":2,"crc32c":5}},` + src + `}`))
	f.Add([]byte(`{"type":"fragment","chunk_id":"k","index":0,"data":"\ud800"}`))
	f.Add([]byte(`{"TYPE":"full","Op":"c","after":{"x":[1e400]},` + src + `}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if m != nil {
				t.Fatal("Decode returned a message and an error")
			}
			return
		}
		if m.Type != MessageFull && m.Type != MessageChunked && m.Type != MessageFragment {
			t.Fatalf("accepted type %q", m.Type)
		}
		enc := wireJSON(m)
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded record %s does not decode: %v", enc, err)
		}
		if enc2 := wireJSON(m2); !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip changed the record:\n%s\n%s", enc, enc2)
		}
		if m.Effect() != m2.Effect() {
			t.Fatalf("effect changed: %v → %v", m.Effect(), m2.Effect())
		}
	})
}
