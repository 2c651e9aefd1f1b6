package record

// This file is the consumer's entry point: Decode turns the Data of one
// Kinesis record back into a Message. The producer side (encode*.go,
// chunk*.go, envelope*.go) writes the same layout; the two sides share no
// code on purpose, so a bug in one cannot hide itself in the other's tests.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// ErrMalformedRecord marks Data that is not a CDC record this package can
// read. Every error Decode returns wraps it.
var ErrMalformedRecord = errors.New("malformed cdc record")

// MessageType is the record's "type" field (docs/records.md#envelope).
type MessageType string

// The three record types. The names carry the Message prefix because
// change.go already uses Insert/Update/Delete/Truncate and the producer owns
// the rest of the package's short names.
const (
	MessageFull     MessageType = "full"
	MessageChunked  MessageType = "chunked"
	MessageFragment MessageType = "fragment"
)

// Effect is what a record does to a keyed replica. Applications switch on
// Effect, never on op strings: that is how "unknown op = upsert" (docs/records.md#operations)
// holds everywhere at once.
type Effect int

const (
	// EffectNone is a fragment: a piece of a chunked record's image that
	// does nothing by itself.
	EffectNone Effect = iota
	// EffectUpsert writes After: ops c, u, r and every op this package does
	// not recognise.
	EffectUpsert
	// EffectRemove deletes the row identified by Before (op d).
	EffectRemove
	// EffectTruncate empties the table named by Source (op t).
	EffectTruncate
)

func (e Effect) String() string {
	switch e {
	case EffectNone:
		return "none"
	case EffectUpsert:
		return "upsert"
	case EffectRemove:
		return "remove"
	case EffectTruncate:
		return "truncate"
	}
	return "Effect(" + strconv.Itoa(int(e)) + ")"
}

// EffectOf maps an op string to its effect. Only "d" and "t" are special;
// everything else, "r" and ops invented after this code was written
// included, is an upsert of the after image.
func EffectOf(op string) Effect {
	switch op {
	case "d":
		return EffectRemove
	case "t":
		return EffectTruncate
	}
	return EffectUpsert
}

// SourceInfo is the record's "source" object. TsNs orders transactions on a
// stream and is the version used by Deduper and Applier.
type SourceInfo struct {
	Version string
	TsMs    int64
	TsNs    int64
	TxID    string
	Schema  string
	Table   string
	DB      string
	Cluster string
	// LSN is cdcd's commit LSN ("16/B374D848"); empty from DSQL.
	LSN string
}

// ChunkedImage describes an image that was split into fragments (docs/records.md#chunking).
type ChunkedImage struct {
	ChunkID        string
	TotalFragments int
	// CRC32C is the CRC-32C (Castagnoli) of the image's JSON text.
	CRC32C uint32
}

// Message is one decoded CDC record.
//
// For MessageFull, Before and After hold the images (nil when null). For
// MessageChunked, an image that was split is nil and described by
// ChunkedBefore or ChunkedAfter instead; Reassembler turns such a message
// into a MessageFull. For MessageFragment only ChunkID, Index and Data are
// set.
type Message struct {
	Type MessageType
	// Op is the raw op string; use Effect to act on it.
	Op     string
	Before RowImage
	After  RowImage
	Source SourceInfo
	// TsMs and TsNs are cdcd's processing time, the only fields that differ
	// between a record and its redelivered duplicate.
	TsMs int64
	TsNs int64

	ChunkedBefore *ChunkedImage
	ChunkedAfter  *ChunkedImage

	ChunkID string
	Index   int
	Data    string
}

// Effect reports what the message does; see EffectOf.
func (m *Message) Effect() Effect {
	if m.Type == MessageFragment {
		return EffectNone
	}
	return EffectOf(m.Op)
}

// wireMessage is the union of every record type's fields. Pointers tell
// "absent" from zero so Decode can name what is missing.
type wireMessage struct {
	Type    *string         `json:"type"`
	Op      *string         `json:"op"`
	Before  json.RawMessage `json:"before"`
	After   json.RawMessage `json:"after"`
	Chunked *wireChunked    `json:"chunked"`
	Source  *wireSource     `json:"source"`
	TsMs    *int64          `json:"ts_ms"`
	TsNs    *int64          `json:"ts_ns"`
	ChunkID *string         `json:"chunk_id"`
	Index   *int64          `json:"index"`
	Data    *string         `json:"data"`
}

type wireChunked struct {
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
}

type wireChunkRef struct {
	ChunkID        *string         `json:"chunk_id"`
	TotalFragments *int64          `json:"total_fragments"`
	CRC32C         json.RawMessage `json:"crc32c"`
}

type wireSource struct {
	Version string `json:"version"`
	TsMs    int64  `json:"ts_ms"`
	TsNs    *int64 `json:"ts_ns"`
	TxID    string `json:"txId"`
	Schema  string `json:"schema"`
	Table   string `json:"table"`
	DB      string `json:"db"`
	Cluster string `json:"cluster"`
	LSN     string `json:"lsn"`
}

// maxFragments bounds total_fragments so a corrupt count cannot make a
// consumer wait for, or list, billions of pieces. At Kinesis' 10 MiB record
// ceiling it still allows images far beyond PostgreSQL's 1 GB value limit.
const maxFragments = 1 << 20

// Decode parses the Data of one Kinesis record. Unknown fields are ignored
// (docs/records.md#identity: consumers ignore fields they do not know); missing or
// mistyped required fields are errors wrapping ErrMalformedRecord.
//
// Values keep their exact JSON text, so int8 values and numerics survive
// without passing through float64.
func Decode(data []byte) (*Message, error) {
	m, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	return m, nil
}

func decode(data []byte) (*Message, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformedRecord)
	}
	var w wireMessage
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedRecord, err)
	}
	if w.Type == nil {
		return nil, fmt.Errorf("%w: missing \"type\"", ErrMalformedRecord)
	}
	m := &Message{Type: MessageType(*w.Type)}
	if w.TsMs != nil {
		m.TsMs = *w.TsMs
	}
	if w.TsNs != nil {
		m.TsNs = *w.TsNs
	}
	switch m.Type {
	case MessageFragment:
		return m, decodeFragment(&w, m)
	case MessageFull, MessageChunked:
		return m, decodeChange(&w, m)
	}
	return nil, fmt.Errorf("%w: unknown type %q", ErrMalformedRecord, *w.Type)
}

func decodeFragment(w *wireMessage, m *Message) error {
	switch {
	case w.ChunkID == nil || *w.ChunkID == "":
		return fmt.Errorf("%w: fragment without \"chunk_id\"", ErrMalformedRecord)
	case w.Index == nil:
		return fmt.Errorf("%w: fragment %s without \"index\"", ErrMalformedRecord, *w.ChunkID)
	case *w.Index < 0 || *w.Index >= maxFragments:
		return fmt.Errorf("%w: fragment %s: index %d out of range [0, %d)", ErrMalformedRecord, *w.ChunkID, *w.Index, maxFragments)
	case w.Data == nil:
		return fmt.Errorf("%w: fragment %s/%d without \"data\"", ErrMalformedRecord, *w.ChunkID, *w.Index)
	}
	m.ChunkID, m.Index, m.Data = *w.ChunkID, int(*w.Index), *w.Data
	return nil
}

func decodeChange(w *wireMessage, m *Message) error {
	if w.Op == nil {
		return fmt.Errorf("%w: %s record without \"op\"", ErrMalformedRecord, m.Type)
	}
	m.Op = *w.Op
	if err := decodeSource(w.Source, &m.Source); err != nil {
		return err
	}
	var err error
	if m.Before, err = parseImage(w.Before); err != nil {
		return fmt.Errorf("%w: before: %v", ErrMalformedRecord, err)
	}
	if m.After, err = parseImage(w.After); err != nil {
		return fmt.Errorf("%w: after: %v", ErrMalformedRecord, err)
	}
	if m.Type == MessageChunked {
		if w.Chunked == nil {
			return fmt.Errorf("%w: chunked record without \"chunked\"", ErrMalformedRecord)
		}
		if m.ChunkedBefore, err = decodeChunkRef(w.Chunked.Before); err != nil {
			return fmt.Errorf("%w: chunked.before: %v", ErrMalformedRecord, err)
		}
		if m.ChunkedAfter, err = decodeChunkRef(w.Chunked.After); err != nil {
			return fmt.Errorf("%w: chunked.after: %v", ErrMalformedRecord, err)
		}
		switch {
		case m.ChunkedBefore == nil && m.ChunkedAfter == nil:
			return fmt.Errorf("%w: chunked record with no chunked image", ErrMalformedRecord)
		case m.ChunkedBefore != nil && m.Before != nil:
			return fmt.Errorf("%w: before is both inline and chunked", ErrMalformedRecord)
		case m.ChunkedAfter != nil && m.After != nil:
			return fmt.Errorf("%w: after is both inline and chunked", ErrMalformedRecord)
		case m.ChunkedBefore != nil && m.ChunkedAfter != nil && m.ChunkedBefore.ChunkID == m.ChunkedAfter.ChunkID:
			return fmt.Errorf("%w: before and after share chunk_id %s", ErrMalformedRecord, m.ChunkedAfter.ChunkID)
		}
	}
	return checkImages(m)
}

// checkImages rejects records whose effect cannot be carried out from what
// they hold: an upsert needs a row. A delete with no before is legal: it is
// the delete (docs/records.md#keys) on a table without a primary key, and Applier reports it.
func checkImages(m *Message) error {
	if m.Effect() == EffectUpsert && m.After == nil && m.ChunkedAfter == nil {
		return fmt.Errorf("%w: op %q is an upsert but \"after\" is null", ErrMalformedRecord, m.Op)
	}
	return nil
}

func decodeSource(w *wireSource, s *SourceInfo) error {
	switch {
	case w == nil:
		return fmt.Errorf("%w: missing \"source\"", ErrMalformedRecord)
	case w.TsNs == nil:
		return fmt.Errorf("%w: missing \"source.ts_ns\"", ErrMalformedRecord)
	case w.Schema == "" || w.Table == "":
		return fmt.Errorf("%w: missing \"source.schema\" or \"source.table\"", ErrMalformedRecord)
	}
	*s = SourceInfo{
		Version: w.Version, TsMs: w.TsMs, TsNs: *w.TsNs, TxID: w.TxID,
		Schema: w.Schema, Table: w.Table, DB: w.DB, Cluster: w.Cluster, LSN: w.LSN,
	}
	return nil
}

func decodeChunkRef(raw json.RawMessage) (*ChunkedImage, error) {
	if isNull(raw) {
		return nil, nil
	}
	var w wireChunkRef
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, err
	}
	switch {
	case w.ChunkID == nil || *w.ChunkID == "":
		return nil, errors.New("missing \"chunk_id\"")
	case w.TotalFragments == nil:
		return nil, fmt.Errorf("chunk %s: missing \"total_fragments\"", *w.ChunkID)
	case *w.TotalFragments < 1 || *w.TotalFragments > maxFragments:
		return nil, fmt.Errorf("chunk %s: total_fragments %d out of range [1, %d]", *w.ChunkID, *w.TotalFragments, maxFragments)
	}
	crc, err := parseCRC(w.CRC32C)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %v", *w.ChunkID, err)
	}
	return &ChunkedImage{ChunkID: *w.ChunkID, TotalFragments: int(*w.TotalFragments), CRC32C: crc}, nil
}

// parseCRC reads crc32c as docs/records.md#chunking writes it, a decimal string, and also
// as a bare number: DSQL's guide does not pin the JSON type, and accepting
// both costs nothing.
func parseCRC(raw json.RawMessage) (uint32, error) {
	if isNull(raw) {
		return 0, errors.New("missing \"crc32c\"")
	}
	text := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, fmt.Errorf("crc32c: %v", err)
		}
	}
	v, err := strconv.ParseUint(text, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("crc32c %s is not a decimal uint32", raw)
	}
	return uint32(v), nil
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}
