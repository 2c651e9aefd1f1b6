package record

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
)

// Chunking (docs/records.md#chunking). A record whose Data plus partition key would exceed
// MaxRecordBytes is sent as fragments followed by one chunked main record.
// This comment is the contract the consumer's reassembly implements; the
// same text is in testdata/CHUNKING.md.
//
// Which images split: the larger image first (after on a tie); if the main
// record still does not fit, the other one too. An image that is not split
// stays inline at the top level.
//
// Main record, the last record of the group:
//
//	{"type":"chunked","op":"u","before":<inline image or null>,"after":null,
//	 "chunked":{"after":{"chunk_id":"<26 chars>","total_fragments":3,"crc32c":"2139964312"}},
//	 "source":{…as in a full record…},"ts_ms":…,"ts_ns":…}
//
//   - "chunked" sits between "after" and "source" and holds a "before"
//     and/or "after" member, in that order, only for the images that were
//     split. A split image is null at the top level; the consumer takes
//     chunked.X when present, the top-level X otherwise.
//   - "crc32c" is the CRC-32C (Castagnoli) of the image's JSON text, as a
//     decimal string.
//
// Fragment records, before's fragments then after's, each in index order,
// all ahead of their main record:
//
//	{"type":"fragment","chunk_id":"<26 chars>","index":0,"data":"<JSON text piece>"}
//
//   - Decoding each "data" string and concatenating them by index 0 … N−1
//     gives the image's JSON text byte for byte; its CRC-32C matches.
//   - Pieces end on UTF-8 character boundaries, so each is valid UTF-8 on
//     its own. Each fragment record, partition key included, fits
//     MaxRecordBytes after JSON escaping of its piece.
//   - chunk_id is base32 (lowercase, unpadded) of the first 16 bytes of
//     SHA-256("chunk" ‖ txId ‖ lp(schema) ‖ lp(table) ‖ uvarint(row index)
//     ‖ lp(key) ‖ "before"|"after"): the same on every retry and replay,
//     distinct for the two images of one record.
//   - Partition keys: in ROW ordering the fragments carry the row's key, so
//     they reach the row's shard in order, ahead of the main record; in
//     UNORDERED each fragment is spread like any record, and may arrive
//     after its main record.

// fragmentSpan is one fragment's piece of an image, img[start:end].
type fragmentSpan struct{ start, end int }

// chunkImage is an image being split.
type chunkImage struct {
	name  string // "before" or "after"
	text  []byte
	split bool
	id    string
	spans []fragmentSpan
}

func (e *Encoder) appendChunked(out []Record, row *compactRow, index int, rowKey *partKey, before, after []byte) ([]Record, error) {
	images := [2]chunkImage{{name: "before", text: before}, {name: "after", text: after}}
	// Split the larger image first.
	order := [2]int{1, 0}
	if len(before) > len(after) {
		order = [2]int{0, 1}
	}
	var chunked []byte
	fits := false
	for _, i := range order {
		img := &images[i]
		if img.text == nil {
			continue
		}
		img.split = true
		img.id = e.chunkID(row, index, img.name)
		var err error
		img.spans, err = e.splitFragments(img.text, img.id)
		if err != nil {
			return out, err
		}
		chunked = e.appendChunkedField(chunked[:0], &images)
		e.rec = e.appendEnvelope(e.rec[:0], "chunked", row, inlineImage(&images[0]), inlineImage(&images[1]), chunked)
		if len(e.rec)+partitionKeyLen <= e.cfg.MaxRecordBytes {
			fits = true
			break
		}
	}
	if !fits {
		return out, fmt.Errorf("%w: %s.%s: a chunked record of %d bytes exceeds MaxRecordBytes %d",
			ErrRecordTooLarge, row.rel.Schema, row.rel.Table, len(e.rec)+partitionKeyLen, e.cfg.MaxRecordBytes)
	}
	main := slices.Clone(e.rec)
	for i := range images {
		img := &images[i]
		if !img.split {
			continue
		}
		for n, s := range img.spans {
			out = e.addRecord(out, e.partitionKey(rowKey, len(out)), appendFragment(img.id, n, img.text[s.start:s.end]))
		}
	}
	return e.addRecord(out, e.partitionKey(rowKey, len(out)), main), nil
}

func inlineImage(img *chunkImage) []byte {
	if img.split {
		return nil
	}
	return img.text
}

// appendChunkedField appends the "chunked" object for the images split so
// far.
func (e *Encoder) appendChunkedField(dst []byte, images *[2]chunkImage) []byte {
	dst = append(dst, '{')
	first := true
	for i := range images {
		img := &images[i]
		if !img.split {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, img.name...)
		dst = append(dst, `":`...)
		dst = appendChunkRef(dst, img.id, len(img.spans), crc32.Checksum(img.text, e.crcTable))
	}
	return append(dst, '}')
}

// chunkID names one split image; see the contract above.
func (e *Encoder) chunkID(row *compactRow, index int, image string) string {
	b := append(e.pkBuf[:0], "chunk"...)
	b = append(b, e.txID[:]...)
	b = appendLenPrefixed(b, row.rel.Schema)
	b = appendLenPrefixed(b, row.rel.Table)
	b = binary.AppendUvarint(b, uint64(index))
	b = appendLenPrefixed(b, row.key)
	b = append(b, image...)
	e.pkBuf = b
	sum := sha256.Sum256(b)
	var id [txIDLen]byte
	txIDEncoding.Encode(id[:], sum[:16])
	return string(id[:])
}

// Fragment record layout around the data piece.
const (
	fragmentHead  = `{"type":"fragment","chunk_id":"`
	fragmentIndex = `","index":`
	fragmentData  = `,"data":"`
	fragmentTail  = `"}`
)

// fragmentEnvelopeLen is the size of fragment index of image id without its
// piece, partition key included.
func fragmentEnvelopeLen(id string, index int) int {
	digits := len(strconv.Itoa(index))
	return len(fragmentHead) + len(id) + len(fragmentIndex) + digits + len(fragmentData) + len(fragmentTail) + partitionKeyLen
}

// splitFragments cuts img into pieces that each fit a fragment record.
func (e *Encoder) splitFragments(img []byte, id string) ([]fragmentSpan, error) {
	return splitUTF8(nil, img, func(i int) int {
		return e.cfg.MaxRecordBytes - fragmentEnvelopeLen(id, i)
	})
}

// splitUTF8 cuts img into consecutive spans, each ending on a UTF-8
// character boundary, such that span i, JSON-escaped as a string body,
// takes at most budget(i) bytes. It fails when a single character does not
// fit its budget.
func splitUTF8(spans []fragmentSpan, img []byte, budget func(i int) int) ([]fragmentSpan, error) {
	for start := 0; start < len(img); {
		limit := budget(len(spans))
		end, cost := start, 0
		for end < len(img) {
			out, in := jsonEscapedLen(img[end:])
			if cost+out > limit {
				break
			}
			cost += out
			end += in
		}
		if end == start {
			return spans, fmt.Errorf("%w: fragment %d has room for %d bytes, not one character", ErrRecordTooLarge, len(spans), limit)
		}
		spans = append(spans, fragmentSpan{start, end})
		start = end
	}
	return spans, nil
}

// appendFragment returns one fragment record in a buffer of its own size.
func appendFragment(id string, index int, piece []byte) []byte {
	n := fragmentEnvelopeLen(id, index) - partitionKeyLen
	for i := 0; i < len(piece); {
		out, in := jsonEscapedLen(piece[i:])
		n += out
		i += in
	}
	dst := make([]byte, 0, n)
	dst = append(dst, fragmentHead...)
	dst = append(dst, id...)
	dst = append(dst, fragmentIndex...)
	dst = strconv.AppendInt(dst, int64(index), 10)
	dst = append(dst, fragmentData...)
	dst = appendJSONStringBody(dst, piece)
	return append(dst, fragmentTail...)
}
