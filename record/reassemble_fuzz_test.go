package record

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// FuzzReassemble feeds arbitrary record lines to a tightly bounded
// Reassembler (it must never panic, exceed its bounds or lose track of its
// bytes), then splits the same input, used as a column value, at
// seed-chosen places and checks it comes back exactly.
func FuzzReassemble(f *testing.F) {
	lines := readConsumerFile(f, "chunked_update.jsonl")
	f.Add(lines, uint64(0))
	f.Add(bytes.Join(reverse(bytes.Split(bytes.TrimSpace(lines), []byte("\n"))), []byte("\n")), uint64(1))
	f.Add([]byte(`{"type":"fragment","chunk_id":"a","index":3,"data":"x"}`+"\n"+
		`{"type":"chunked","op":"u","chunked":{"after":{"chunk_id":"a","total_fragments":2,"crc32c":"1"}},`+src+`}`), uint64(2))
	f.Add([]byte("héllo \"wörld\" \x00 😀"), uint64(3))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		const maxBytes, maxChunks = 4096, 4
		clock := &fakeClock{t: time.Unix(0, 0)}
		r := NewReassembler(ReassemblerConfig{MaxBytes: maxBytes, MaxPendingChunks: maxChunks, MaxRemembered: 4, Now: clock.Now})
		for _, line := range bytes.Split(data, []byte("\n")) {
			m, err := Decode(line)
			if err != nil {
				continue
			}
			clock.t = clock.t.Add(time.Second)
			out, err := r.Add(m)
			if out != nil && err != nil {
				t.Fatalf("Add returned %v and %v", out, err)
			}
			if out != nil && out.Type != MessageFull {
				t.Fatalf("Add returned a %s message", out.Type)
			}
			if s := r.Stats(); s.PendingBytes > maxBytes || s.PendingChunks > maxChunks {
				t.Fatalf("over the bounds: %+v", s)
			}
		}
		r.Expire(clock.t.Add(time.Hour))
		if s := r.Stats(); s.PendingBytes != 0 || s.PendingChunks != 0 {
			t.Fatalf("after expiring everything: %+v", s)
		}

		value, _ := json.Marshal(string(data))
		full := fullMsg("u", 1, nil, RowImage{{Name: "id", Value: []byte(`1`)}, {Name: "v", Value: value}})
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		pieces := decodeAll(t, chunkRecords(rng, full, 1+int(seed%16)))
		rng.Shuffle(len(pieces), func(i, j int) { pieces[i], pieces[j] = pieces[j], pieces[i] })
		r = NewReassembler(ReassemblerConfig{})
		var got *Message
		for _, m := range pieces {
			out, err := r.Add(m)
			if err != nil {
				t.Fatal(err)
			}
			if out != nil {
				got = out
			}
		}
		if got == nil || !bytes.Equal(wireJSON(got), wireJSON(full)) {
			t.Fatalf("split of %q did not round-trip: %+v", data, got)
		}
	})
}

func reverse[T any](s []T) []T {
	out := make([]T, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}
