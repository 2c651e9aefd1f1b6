package record

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file holds the test-side encoder for the consumer tests: it writes
// records in the layout docs/records.md#chunking describes, independently of the
// producer's encoder, so the two sides check each other.

// wireJSON encodes m the way a producer would.
func wireJSON(m *Message) []byte {
	var b strings.Builder
	str := func(s string) string { q, _ := json.Marshal(s); return string(q) }
	img := func(r RowImage) string { j, _ := r.MarshalJSON(); return string(j) }
	fmt.Fprintf(&b, `{"type":%s`, str(string(m.Type)))
	if m.Type == MessageFragment {
		fmt.Fprintf(&b, `,"chunk_id":%s,"index":%d,"data":%s}`, str(m.ChunkID), m.Index, str(m.Data))
		return []byte(b.String())
	}
	fmt.Fprintf(&b, `,"op":%s,"before":%s,"after":%s`, str(m.Op), img(m.Before), img(m.After))
	if m.Type == MessageChunked {
		ref := func(c *ChunkedImage) string {
			if c == nil {
				return "null"
			}
			return fmt.Sprintf(`{"chunk_id":%s,"total_fragments":%d,"crc32c":"%d"}`, str(c.ChunkID), c.TotalFragments, c.CRC32C)
		}
		fmt.Fprintf(&b, `,"chunked":{"before":%s,"after":%s}`, ref(m.ChunkedBefore), ref(m.ChunkedAfter))
	}
	s := m.Source
	fmt.Fprintf(&b, `,"source":{"version":%s,"ts_ms":%d,"ts_ns":%d,"txId":%s,"schema":%s,"table":%s,"db":%s,"cluster":%s`,
		str(s.Version), s.TsMs, s.TsNs, str(s.TxID), str(s.Schema), str(s.Table), str(s.DB), str(s.Cluster))
	if s.LSN != "" {
		fmt.Fprintf(&b, `,"lsn":%s`, str(s.LSN))
	}
	fmt.Fprintf(&b, `},"ts_ms":%d,"ts_ns":%d}`, m.TsMs, m.TsNs)
	return []byte(b.String())
}

// splitText cuts text into n pieces on UTF-8 character boundaries, at
// random places; pieces may be empty when text is short.
func splitText(rng *rand.Rand, text string, n int) []string {
	var bounds []int
	for i := range text { // rune start offsets
		if i > 0 {
			bounds = append(bounds, i)
		}
	}
	cuts := make([]int, 0, n+1)
	cuts = append(cuts, 0)
	for i := 1; i < n; i++ {
		if len(bounds) == 0 {
			cuts = append(cuts, 0)
			continue
		}
		cuts = append(cuts, bounds[rng.IntN(len(bounds))])
	}
	cuts = append(cuts, len(text))
	slices.Sort(cuts)
	pieces := make([]string, n)
	for i := range n {
		pieces[i] = text[cuts[i]:cuts[i+1]]
	}
	return pieces
}

// chunkRecords turns a full message into a chunked main record and its
// fragments, splitting each non-null image with probability 3/4 (at least
// one), into 1..maxPieces fragments. chunk ids are derived from the
// record's identity, as the producer's are, so they are stable on replay.
func chunkRecords(rng *rand.Rand, full *Message, maxPieces int) [][]byte {
	main := *full
	main.Type = MessageChunked
	var frags [][]byte
	split := func(side string, img RowImage) *ChunkedImage {
		text, _ := img.MarshalJSON()
		id := fmt.Sprintf("%d.%s.%s.%s", full.Source.TsNs, full.Source.Table, img.Key(), side)
		n := 1 + rng.IntN(maxPieces)
		for i, p := range splitText(rng, string(text), n) {
			if !utf8.ValidString(p) {
				panic("split inside a character")
			}
			frags = append(frags, wireJSON(&Message{Type: MessageFragment, ChunkID: id, Index: i, Data: p}))
		}
		return &ChunkedImage{ChunkID: id, TotalFragments: n, CRC32C: crc32.Checksum(text, castagnoli)}
	}
	chunkBefore := full.Before != nil && rng.IntN(4) > 0
	chunkAfter := full.After != nil && (rng.IntN(4) > 0 || !chunkBefore)
	if full.Before != nil && !chunkBefore && !chunkAfter {
		chunkBefore = true
	}
	if chunkBefore {
		main.ChunkedBefore, main.Before = split("before", full.Before), nil
	}
	if chunkAfter {
		main.ChunkedAfter, main.After = split("after", full.After), nil
	}
	return append([][]byte{wireJSON(&main)}, frags...)
}

// randomText returns a string mixing ASCII, JSON metacharacters, control
// characters, multi-byte and astral runes.
func randomText(rng *rand.Rand, max int) string {
	alphabet := []rune{'a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\t', 0, 0x1f, '<', '&', 'é', 'ß', '€', '☃', 0x2028, 0xfeff, '中', '😀', '𝄞'}
	n := rng.IntN(max + 1)
	var b strings.Builder
	for range n {
		b.WriteRune(alphabet[rng.IntN(len(alphabet))])
	}
	return b.String()
}

// randomImage builds an image whose values cover docs/records.md#values's shapes.
func randomImage(rng *rand.Rand, id int64, maxText int) RowImage {
	img := RowImage{{Name: "id", Value: json.RawMessage(strconv.FormatInt(id, 10))}}
	for i := range rng.IntN(6) {
		var v string
		switch rng.IntN(6) {
		case 0:
			v = strconv.FormatInt(rng.Int64()-rng.Int64(), 10)
		case 1:
			v = "9223372036854775807"
		case 2:
			q, _ := json.Marshal(randomText(rng, maxText))
			v = string(q)
		case 3:
			v = "null"
		case 4:
			v = `[1,[2,"x"],null]`
		default:
			v = "true"
		}
		name := fmt.Sprintf("c%d_%s", i, randomText(rng, 3))
		img = append(img, ColumnValue{Name: name, Value: json.RawMessage(v)})
	}
	return img
}
