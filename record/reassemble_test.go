package record

import (
	"bytes"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func decodeAll(t testing.TB, recs [][]byte) []*Message {
	t.Helper()
	out := make([]*Message, len(recs))
	for i, r := range recs {
		m, err := Decode(r)
		if err != nil {
			t.Fatalf("Decode(%s): %v", r, err)
		}
		out[i] = m
	}
	return out
}

func consumerLines(t testing.TB, name string) [][]byte {
	t.Helper()
	return bytes.Split(bytes.TrimSpace(readConsumerFile(t, name)), []byte("\n"))
}

// fakeClock is an injectable Now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func TestReassembleFixture(t *testing.T) {
	msgs := decodeAll(t, consumerLines(t, "chunked_update.jsonl"))
	wantAfter := `{"id":7,"body":"héllo wörld ☃ big text","n":12345678901234567890}`
	orders := map[string][]int{
		"main last":            {0, 1, 2, 3},
		"main first":           {3, 0, 1, 2},
		"reversed":             {3, 2, 1, 0},
		"main between":         {2, 0, 3, 1},
		"with duplicates":      {1, 1, 3, 2, 3, 1, 0},
		"duplicates after end": {0, 1, 2, 3, 3, 2, 1, 0},
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			r := NewReassembler(ReassemblerConfig{})
			var got []*Message
			for _, i := range order {
				out, err := r.Add(msgs[i])
				if err != nil {
					t.Fatalf("Add(%d): %v", i, err)
				}
				if out != nil {
					got = append(got, out)
				}
			}
			if len(got) != 1 {
				t.Fatalf("got %d complete messages, want 1", len(got))
			}
			m := got[0]
			after, _ := m.After.MarshalJSON()
			if m.Type != MessageFull || m.Op != "u" || string(after) != wantAfter || m.Before != nil ||
				m.ChunkedAfter != nil || m.Source.Table != "docs" || m.Source.LSN != "16/B374D900" {
				t.Errorf("reassembled = %+v, after %s", m, after)
			}
			if s := r.Stats(); s.PendingChunks != 0 || s.PendingBytes != 0 || s.Completed != 1 {
				t.Errorf("stats after completion = %+v", s)
			}
		})
	}
}

func TestReassembleFullPassesThrough(t *testing.T) {
	m, err := Decode(readConsumerFile(t, "dsql_example.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := NewReassembler(ReassemblerConfig{})
	got, err := r.Add(m)
	if err != nil || got != m {
		t.Fatalf("Add(full) = %v, %v; want the same message", got, err)
	}
}

// TestReassembleProperty: random images, split at random UTF-8 boundaries
// into random numbers of fragments, delivered shuffled, interleaved with
// other records and duplicated, come back exactly once and byte-identical.
func TestReassembleProperty(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 0xc0ffee))
		var originals []*Message
		var stream [][]byte
		for i := range 1 + rng.IntN(8) {
			full := &Message{
				Type: MessageFull, Op: []string{"c", "u", "d", "r", "zz"}[rng.IntN(5)],
				Source: SourceInfo{Version: "1.0", TsNs: int64(1_000 + i), Schema: "public", Table: "t", TxID: "x"},
				TsNs:   int64(i),
			}
			img := randomImage(rng, int64(i), 1+rng.IntN(200))
			switch {
			case full.Op == "d":
				full.Before = img[:1]
			case rng.IntN(3) == 0:
				full.Before, full.After = img[:1], img
			default:
				full.After = img
			}
			originals = append(originals, full)
			if rng.IntN(5) == 0 {
				stream = append(stream, wireJSON(full))
				continue
			}
			stream = append(stream, chunkRecords(rng, full, 1+rng.IntN(12))...)
		}
		for range rng.IntN(len(stream) + 1) {
			stream = append(stream, stream[rng.IntN(len(stream))])
		}
		rng.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })

		r := NewReassembler(ReassemblerConfig{MaxRemembered: 64})
		got := map[int64]*Message{}
		for _, m := range decodeAll(t, stream) {
			out, err := r.Add(m)
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			if out == nil {
				continue
			}
			if out.Type == MessageFull && m.Type == MessageFull {
				// Full records pass straight through, duplicates included;
				// Deduper's job, not Reassembler's.
				got[out.Source.TsNs] = out
				continue
			}
			if _, dup := got[out.Source.TsNs]; dup {
				t.Fatalf("seed %d: record %d reassembled twice", seed, out.Source.TsNs)
			}
			got[out.Source.TsNs] = out
		}
		if s := r.Stats(); s.PendingChunks != 0 || s.PendingBytes != 0 {
			t.Fatalf("seed %d: left pending %+v", seed, s)
		}
		for _, want := range originals {
			g := got[want.Source.TsNs]
			if g == nil {
				t.Fatalf("seed %d: record %d never completed", seed, want.Source.TsNs)
			}
			if !bytes.Equal(wireJSON(g), wireJSON(want)) {
				t.Fatalf("seed %d: reassembled\n%s\nwant\n%s", seed, wireJSON(g), wireJSON(want))
			}
		}
	}
}

func chunkedFixture(t *testing.T) (main *Message, frags []*Message) {
	msgs := decodeAll(t, consumerLines(t, "chunked_update.jsonl"))
	return msgs[3], msgs[:3]
}

func TestReassembleExpireListsMissing(t *testing.T) {
	clock := &fakeClock{t: time.Unix(100, 0)}
	r := NewReassembler(ReassemblerConfig{Now: clock.Now})
	main, frags := chunkedFixture(t)
	for _, m := range []*Message{frags[1], main} {
		if out, err := r.Add(m); out != nil || err != nil {
			t.Fatalf("Add = %v, %v", out, err)
		}
	}
	// A stray fragment whose main record never comes.
	clock.t = clock.t.Add(time.Minute)
	if _, err := r.Add(&Message{Type: MessageFragment, ChunkID: "orphan", Index: 4, Data: "x"}); err != nil {
		t.Fatal(err)
	}
	if errs := r.Expire(time.Unix(100, 0)); len(errs) != 0 {
		t.Fatalf("Expire at the arrival instant = %v, want nothing", errs)
	}
	errs := r.Expire(time.Unix(130, 0))
	if len(errs) != 1 {
		t.Fatalf("Expire = %v, want one error", errs)
	}
	e := errs[0]
	if !errors.Is(e, ErrChunkIncomplete) || e.ChunkID != "c7after" || !reflect.DeepEqual(e.Missing, []int{0, 2}) ||
		e.MissingCount != 2 || e.TotalFragments != 3 || e.Main == nil {
		t.Errorf("error = %+v", e)
	}
	if msg := e.Error(); !strings.Contains(msg, "chunk c7after") || !strings.Contains(msg, "missing fragments [0 2] of 3") ||
		!strings.Contains(msg, "public.docs") {
		t.Errorf("message = %q", msg)
	}
	errs = r.Expire(time.Unix(1000, 0))
	if len(errs) != 1 || errs[0].ChunkID != "orphan" || !strings.Contains(errs[0].Error(), "main record not received, 1 fragments held") {
		t.Errorf("orphan Expire = %v", errs)
	}
	if s := r.Stats(); s.PendingChunks != 0 || s.PendingBytes != 0 || s.Expired != 2 {
		t.Errorf("stats = %+v", s)
	}
}

func TestReassembleCorrupt(t *testing.T) {
	main, frags := chunkedFixture(t)
	tests := []struct {
		name   string
		mutate func(main *Message, frags []*Message) []*Message
		detail string
	}{
		{"crc mismatch", func(m *Message, f []*Message) []*Message {
			bad := *f[1]
			bad.Data = strings.Replace(bad.Data, "w", "W", 1)
			return []*Message{f[0], &bad, f[2], m}
		}, "crc32c of"},
		{"wrong crc in main", func(m *Message, f []*Message) []*Message {
			bad := *m
			ref := *m.ChunkedAfter
			ref.CRC32C++
			bad.ChunkedAfter = &ref
			return []*Message{&bad, f[0], f[1], f[2]}
		}, "main record says"},
		{"index beyond total after main", func(m *Message, f []*Message) []*Message {
			bad := *f[0]
			bad.Index = 3
			return []*Message{m, &bad}
		}, "fragment index 3 beyond total_fragments 3"},
		{"index beyond total before main", func(m *Message, f []*Message) []*Message {
			bad := *f[0]
			bad.Index = 7
			return []*Message{&bad, m}
		}, "fragment index 7 beyond total_fragments 3"},
		{"text is not an object", func(m *Message, f []*Message) []*Message {
			text := `[1,2]`
			ref := &ChunkedImage{ChunkID: "arr", TotalFragments: 1, CRC32C: crc32Castagnoli(text)}
			bad := *m
			bad.ChunkedAfter = ref
			return []*Message{&bad, {Type: MessageFragment, ChunkID: "arr", Data: text}}
		}, "not an image"},
		{"upsert image is null", func(m *Message, f []*Message) []*Message {
			text := `null`
			ref := &ChunkedImage{ChunkID: "nul", TotalFragments: 1, CRC32C: crc32Castagnoli(text)}
			bad := *m
			bad.ChunkedAfter = ref
			return []*Message{&bad, {Type: MessageFragment, ChunkID: "nul", Data: text}}
		}, `"after" is null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReassembler(ReassemblerConfig{})
			var errs []*ChunkError
			for _, m := range tt.mutate(main, frags) {
				out, err := r.Add(m)
				if out != nil {
					t.Fatalf("corrupt input completed: %+v", out)
				}
				errs = append(errs, ChunkErrors(err)...)
			}
			if len(errs) != 1 {
				t.Fatalf("errors = %v, want one", errs)
			}
			if !errors.Is(errs[0], ErrChunkCorrupt) || !strings.Contains(errs[0].Error(), tt.detail) ||
				!strings.Contains(errs[0].Error(), "chunk "+errs[0].ChunkID) {
				t.Errorf("error = %v, want corrupt mentioning %q", errs[0], tt.detail)
			}
			if s := r.Stats(); s.PendingChunks != 0 || s.PendingBytes != 0 {
				t.Errorf("corrupt record left pending: %+v", s)
			}
		})
	}
}

func crc32Castagnoli(s string) uint32 { return crc32.Checksum([]byte(s), castagnoli) }

func TestReassembleMemoryBound(t *testing.T) {
	const maxBytes = 4096
	r := NewReassembler(ReassemblerConfig{MaxBytes: maxBytes, MaxPendingChunks: 8})
	var evicted []string
	for i := range 100 {
		id := string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		out, err := r.Add(&Message{Type: MessageFragment, ChunkID: id, Index: 0, Data: strings.Repeat("d", 300)})
		if out != nil {
			t.Fatal("fragment without main completed")
		}
		for _, e := range ChunkErrors(err) {
			if !errors.Is(e, ErrChunkEvicted) {
				t.Fatalf("unexpected error %v", e)
			}
			evicted = append(evicted, e.ChunkID)
		}
		if s := r.Stats(); s.PendingBytes > maxBytes || s.PendingChunks > 8 {
			t.Fatalf("after %d adds: %+v over the bound", i, s)
		}
	}
	if len(evicted) == 0 || evicted[0] != "a" || evicted[1] != "b" {
		t.Errorf("evicted %v, want oldest first", evicted)
	}

	// One fragment bigger than the whole budget evicts itself and says so.
	_, err := r.Add(&Message{Type: MessageFragment, ChunkID: "huge", Index: 0, Data: strings.Repeat("h", maxBytes)})
	errs := ChunkErrors(err)
	if len(errs) == 0 || errs[len(errs)-1].ChunkID != "huge" || !strings.Contains(err.Error(), "evicted") {
		t.Errorf("oversized fragment: %v", err)
	}
	if s := r.Stats(); s.PendingBytes > maxBytes {
		t.Errorf("over budget: %+v", s)
	}
}

func TestReassembleLateDuplicateAfterEvictionRebuilds(t *testing.T) {
	main, frags := chunkedFixture(t)
	r := NewReassembler(ReassemblerConfig{MaxPendingChunks: 1})
	if _, err := r.Add(frags[0]); err != nil {
		t.Fatal(err)
	}
	// Another chunk pushes the first out.
	if _, err := r.Add(&Message{Type: MessageFragment, ChunkID: "other", Data: "x"}); !errors.Is(err, ErrChunkEvicted) {
		t.Fatalf("want eviction, got %v", err)
	}
	// A full replay of the evicted record still rebuilds it: failed chunk
	// ids are not remembered as done.
	var out *Message
	for _, m := range []*Message{main, frags[0], frags[1], frags[2]} {
		got, err := r.Add(m)
		for _, e := range ChunkErrors(err) {
			if e.ChunkID != "other" {
				t.Fatalf("unexpected %v", e)
			}
		}
		if got != nil {
			out = got
		}
	}
	if out == nil {
		t.Fatal("replayed record did not complete")
	}
}

// TestReassembleProducerGolden reads the producer's envelope examples
// (testdata/envelope.golden, "partition-key data" lines in sections): every
// record decodes, and each chunked section, fed backwards, reassembles.
func TestReassembleProducerGolden(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "envelope.golden"))
	if err != nil {
		t.Fatalf("producer golden file unavailable: %v", err)
	}
	sections := map[string][]*Message{}
	var section string
	for i, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "#") {
			section = line
			continue
		}
		if line == "" {
			continue
		}
		_, data, ok := strings.Cut(line, " ")
		if !ok || section == "" {
			t.Fatalf("envelope.golden line %d is not a \"partition-key data\" line of a section; the file changed shape: %.80q", i+1, line)
		}
		m, err := Decode([]byte(data))
		if err != nil {
			t.Fatalf("%s: %v", section, err)
		}
		sections[section] = append(sections[section], m)
	}
	chunkedSections := 0
	for name, msgs := range sections {
		if !strings.Contains(name, "chunked") {
			continue
		}
		chunkedSections++
		r := NewReassembler(ReassemblerConfig{})
		var got []*Message
		for _, m := range reverse(msgs) {
			out, err := r.Add(m)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if out != nil {
				got = append(got, out)
			}
		}
		if len(got) == 0 || r.Stats().PendingChunks != 0 {
			t.Errorf("%s: reassembled %d records, %d chunks pending", name, len(got), r.Stats().PendingChunks)
		}
	}
	if chunkedSections == 0 {
		t.Fatal("no chunked sections in envelope.golden: the file changed shape")
	}
}
