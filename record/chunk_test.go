package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// randomJSONText returns a string mixing the characters that stress
// splitting: ASCII, characters JSON escapes, and 2-, 3- and 4-byte UTF-8.
func randomJSONText(r *rand.Rand, n int) string {
	pieces := []string{"a", "Z", "0", " ", `"`, `\`, "\n", "\t", "\x01", "\x7f", "é", "☃", "😀", "\u2028", "€", "/"}
	var b strings.Builder
	for range n {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// TestSplitUTF8Property checks, over random images and budgets, that
// splitting yields pieces that each fit their budget once escaped, end on
// UTF-8 boundaries, and concatenate back to the image.
func TestSplitUTF8Property(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 3000 {
		img := appendJSONString([]byte(`{"k":`), randomJSONText(r, r.IntN(400)))
		img = append(img, '}')
		base := 6 + r.IntN(120)
		vary := r.IntN(2) == 0
		budget := func(i int) int {
			if vary {
				return base + (i*7)%13
			}
			return base
		}
		spans, err := splitUTF8(nil, img, budget)
		if err != nil {
			t.Fatalf("iteration %d: %v", iter, err)
		}
		var joined []byte
		for i, s := range spans {
			piece := img[s.start:s.end]
			if len(piece) == 0 || !utf8.Valid(piece) {
				t.Fatalf("iteration %d: piece %d %q empty or not on UTF-8 boundaries", iter, i, piece)
			}
			if n := len(appendJSONStringBody(nil, piece)); n > budget(i) {
				t.Fatalf("iteration %d: piece %d escapes to %d bytes, budget %d", iter, i, n, budget(i))
			}
			if i > 0 && spans[i-1].end != s.start {
				t.Fatalf("iteration %d: spans not consecutive", iter)
			}
			joined = append(joined, piece...)
		}
		if !bytes.Equal(joined, img) {
			t.Fatalf("iteration %d: pieces do not concatenate to the image", iter)
		}
	}
}

func TestSplitUTF8BudgetTooSmall(t *testing.T) {
	_, err := splitUTF8(nil, []byte(`"😀"`), func(int) int { return 3 })
	if !errors.Is(err, ErrRecordTooLarge) {
		t.Errorf("error %v, want ErrRecordTooLarge", err)
	}
}

// chunkGroup is a chunked record reassembled by hand, following the
// contract in chunk.go, independently of the consumer's Reassembler.
type chunkGroup struct {
	main   wireRecord
	images map[string]string // "before"/"after" → reassembled JSON text
}

func reassembleByHand(t *testing.T, recs []Record, limit int) []chunkGroup {
	t.Helper()
	var groups []chunkGroup
	pieces := map[string][]string{}
	for i, w := range parseRecords(t, recs) {
		if recs[i].Size() > limit {
			t.Errorf("record %d is %d bytes, limit %d", i, recs[i].Size(), limit)
		}
		switch w.Type {
		case "fragment":
			if w.Index != len(pieces[w.ChunkID]) {
				t.Fatalf("fragment %s/%d out of order", w.ChunkID, w.Index)
			}
			pieces[w.ChunkID] = append(pieces[w.ChunkID], w.Data)
		case "chunked":
			g := chunkGroup{main: w, images: map[string]string{}}
			for name, ref := range w.Chunked {
				got := pieces[ref.ChunkID]
				if len(got) != ref.TotalFragments {
					t.Fatalf("chunk %s: %d fragments before the main record, total_fragments %d", ref.ChunkID, len(got), ref.TotalFragments)
				}
				text := strings.Join(got, "")
				crc := crc32.Checksum([]byte(text), crc32.MakeTable(crc32.Castagnoli))
				if ref.CRC32C != strconv.FormatUint(uint64(crc), 10) {
					t.Errorf("chunk %s: crc32c %s, computed %d", ref.ChunkID, ref.CRC32C, crc)
				}
				g.images[name] = text
				delete(pieces, ref.ChunkID)
			}
			groups = append(groups, g)
		}
	}
	if len(pieces) != 0 {
		t.Errorf("fragments without a main record: %d chunks", len(pieces))
	}
	return groups
}

// TestChunkedRecords encodes random oversized rows at small limits and
// checks every property docs/records.md#chunking and the contract in chunk.go promise.
func TestChunkedRecords(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, ordering := range []Ordering{Row, Unordered} {
		for iter := range 40 {
			limit := MinMaxRecordBytes + r.IntN(3000)
			body := randomJSONText(r, 200+r.IntN(6000))
			key := strconv.Itoa(iter)
			txn := testTxn(insertOf(itemsRel(), tup(key, body, "1")))
			small := newTestEncoder(t, func(c *Config) { c.Ordering = ordering; c.MaxRecordBytes = limit })
			chunked := mustEncode(t, small, txn)
			wantAfter := rawImage(t, mustEncode(t, newTestEncoder(t, nil), txn).Records[0].Data, "after")
			groups := reassembleByHand(t, chunked.Records, limit)
			if len(groups) > 1 {
				t.Fatalf("%d chunked records for one row", len(groups))
			}
			if len(groups) == 0 {
				continue // small enough to fit
			}
			g := groups[0]
			if g.main.Type != "chunked" || g.main.Op != "c" || g.main.After != nil || g.main.Before != nil {
				t.Errorf("main record %+v", g.main)
			}
			if g.images["after"] != wantAfter {
				t.Errorf("%s/%d: reassembled after differs from the unchunked image", ordering, iter)
			}
			last := chunked.Records[len(chunked.Records)-1]
			if !bytes.HasPrefix(last.Data, []byte(`{"type":"chunked",`)) {
				t.Errorf("the main record is not last")
			}
			if ordering == Row {
				for _, rec := range chunked.Records {
					if rec.PartitionKey != last.PartitionKey {
						t.Errorf("ROW: fragment key %s, main record key %s", rec.PartitionKey, last.PartitionKey)
					}
				}
			}
			again := mustEncode(t, newTestEncoder(t, func(c *Config) { c.Ordering = ordering; c.MaxRecordBytes = limit }), txn)
			if !reflect.DeepEqual(recordKeysAndFragments(again.Records), recordKeysAndFragments(chunked.Records)) {
				t.Errorf("a replay gives different fragments or chunk ids")
			}
		}
	}
}

// rawImage returns the exact JSON text of a record's before or after.
func rawImage(t *testing.T, data []byte, name string) string {
	t.Helper()
	var w map[string]json.RawMessage
	if err := json.Unmarshal(data, &w); err != nil {
		t.Fatal(err)
	}
	return string(w[name])
}

// recordKeysAndFragments is everything of records except the main record's
// processing time.
func recordKeysAndFragments(recs []Record) []string {
	var out []string
	for _, r := range recs {
		s := string(r.Data)
		if strings.HasPrefix(s, `{"type":"chunked"`) {
			s = s[:strings.LastIndex(s, `,"ts_ms"`)]
		}
		out = append(out, r.PartitionKey+" "+s)
	}
	return out
}

// TestChunkedDeleteKey checks that a delete's before image, the only image
// of its record, is chunked like an after image.
func TestChunkedDeleteKey(t *testing.T) {
	rel := &Relation{ID: 9, Schema: "public", Table: "docs", HasKey: true,
		Columns: []Column{{Name: "path", TypeOID: oidText, Key: true}, {Name: "v", TypeOID: oidInt4}}}
	path := strings.Repeat("dir/", 600)
	e := newTestEncoder(t, func(c *Config) { c.MaxRecordBytes = MinMaxRecordBytes })
	enc := mustEncode(t, e, testTxn(deleteOf(rel, tup(path, nil))))
	groups := reassembleByHand(t, enc.Records, MinMaxRecordBytes)
	if len(groups) != 1 || groups[0].images["before"] != `{"path":"`+path+`"}` || groups[0].main.Op != "d" {
		t.Fatalf("groups %+v", groups)
	}
}

// TestChunkThreshold checks that a record exactly at the limit stays whole
// and one byte more is chunked.
func TestChunkThreshold(t *testing.T) {
	txn := testTxn(insertOf(itemsRel(), tup("1", strings.Repeat("x", 2000), "1")))
	size := mustEncode(t, newTestEncoder(t, nil), txn).Records[0].Size()
	for _, tt := range []struct {
		limit   int
		chunked bool
	}{{size, false}, {size - 1, true}} {
		enc := mustEncode(t, newTestEncoder(t, func(c *Config) { c.MaxRecordBytes = tt.limit }), txn)
		if got := len(enc.Records) > 1; got != tt.chunked {
			t.Errorf("limit %d for a %d-byte record: %d records, chunked %v", tt.limit, size, len(enc.Records), tt.chunked)
		}
	}
}

// TestChunkedRoundTrip feeds chunked output through the consumer side
// (Decode and Reassembler) and expects the unchunked record back.
func TestChunkedRoundTrip(t *testing.T) {
	body := strings.Repeat("héllo \"wörld\" ☃ \\ 😀\n", 300)
	txn := testTxn(updateOf(itemsRel(), nil, tup("42", body, "7")))
	whole := mustEncode(t, newTestEncoder(t, nil), txn).Records
	want, err := Decode(whole[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	chunked := mustEncode(t, newTestEncoder(t, func(c *Config) { c.MaxRecordBytes = 2048 }), txn).Records
	if len(chunked) < 3 {
		t.Fatalf("%d records, want fragments", len(chunked))
	}
	re := NewReassembler(ReassemblerConfig{})
	var got []*Message
	for i, rec := range chunked {
		m, err := Decode(rec.Data)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		out, err := re.Add(m)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if out != nil {
			got = append(got, out)
		}
	}
	if len(got) != 1 {
		t.Fatalf("reassembled %d records, want 1", len(got))
	}
	if got[0].Op != want.Op || !reflect.DeepEqual(got[0].After, want.After) || got[0].Source != want.Source {
		t.Errorf("reassembled %+v\nwant %+v", got[0], want)
	}
}
