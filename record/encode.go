package record

import (
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"
)

// This file is the producer's entry point: an Encoder turns one committed
// transaction into the records of docs/records.md#envelope. Compaction is in compact.go, the
// JSON envelope in envelope.go, values in value*.go, partition keys in
// encode_partition.go and the splitting of oversized records in chunk.go.

// DefaultMaxRecordBytes is Kinesis' default record limit, 1 MiB, which
// counts the data and the partition key.
const DefaultMaxRecordBytes = 1 << 20

// MinMaxRecordBytes is the smallest MaxRecordBytes an Encoder accepts: a
// chunked main record (source, ids, names) must fit in one record, and
// fragments need room for more than their envelope.
const MinMaxRecordBytes = 1024

// Config configures an Encoder. Everything in it ends up in every record, so
// it must not change for the life of a stream, or replays stop matching.
type Config struct {
	// SystemID is the server's system identifier (pg_control_system()),
	// the high 8 bytes of source.txId.
	SystemID uint64
	// Cluster is source.cluster: 26 characters of [a-z0-9] (docs/glossary.md).
	Cluster string
	// Database is source.db.
	Database string
	// Ordering selects the partition key scheme (docs/records.md#ordering).
	Ordering Ordering
	// MaxRecordBytes is the target stream's record limit including the
	// partition key; 0 means DefaultMaxRecordBytes. Larger records are
	// chunked (docs/records.md#chunking).
	MaxRecordBytes int
	// EmitTruncate opts in to op "t" records; otherwise truncates are
	// reported in Encoded.SkippedTruncates.
	EmitTruncate bool
	// Types resolves enums, domains and arrays outside the builtin table.
	// It may be nil: such values then encode as their text output.
	Types Types
}

// validate checks cfg and fills defaults; errors name the field, the value
// and what is allowed.
func (cfg *Config) validate() error {
	if cfg.SystemID == 0 {
		return fmt.Errorf("%w: SystemID is 0; want the server's system identifier", ErrInvalidConfig)
	}
	if !isResourceID(cfg.Cluster) {
		return fmt.Errorf("%w: Cluster %q: want 26 characters of [a-z0-9]", ErrInvalidConfig, cfg.Cluster)
	}
	if cfg.Database == "" {
		return fmt.Errorf("%w: Database is empty", ErrInvalidConfig)
	}
	if cfg.Ordering != Unordered && cfg.Ordering != Row {
		return fmt.Errorf("%w: Ordering %q: want %q or %q", ErrInvalidConfig, cfg.Ordering, Unordered, Row)
	}
	if cfg.MaxRecordBytes == 0 {
		cfg.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if cfg.MaxRecordBytes < MinMaxRecordBytes {
		return fmt.Errorf("%w: MaxRecordBytes %d: want 0 (default %d) or at least %d",
			ErrInvalidConfig, cfg.MaxRecordBytes, DefaultMaxRecordBytes, MinMaxRecordBytes)
	}
	return nil
}

func isResourceID(s string) bool {
	if len(s) != 26 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Encoder encodes committed transactions into records. It reuses buffers
// between calls, so one Encoder serves one goroutine at a time. It holds no
// clock and no randomness: Encode's output is a function of its arguments.
type Encoder struct {
	cfg      Config
	vals     valueCodec
	compact  compactor
	crcTable *crc32.Table
	// dbJSON and clusterJSON are source.db and source.cluster, escaped
	// once.
	dbJSON, clusterJSON []byte

	// Per-transaction state, rebuilt by begin.
	txID [txIDLen]byte
	// srcHead is `{"version":"1.0","ts_ms":…,"ts_ns":…,"txId":"…"` and
	// srcTail is `,"db":…,"cluster":…,"lsn":"…"}`; schema and table go
	// between them.
	srcHead, srcTail []byte
	// procTail is the processing-time tail `,"ts_ms":…,"ts_ns":…}`.
	procTail []byte

	// Scratch, reused across records.
	rec, before, after, pkBuf []byte
	// relCache and lastRel hold relations' names as JSON (relNames).
	relCache map[*Relation]*relJSON
	lastRel  *relJSON
	// keys holds the partition keys of records not yet given theirs
	// (settleKeys); block is what keep cuts records' data from.
	keys, block []byte
	// recBase is the position in the transaction's records of the first
	// record of the slice being appended to: EncodeSpilled hands records
	// out in batches, Encode all at once (0).
	recBase int
}

// Encoded is one transaction's output.
type Encoded struct {
	// Records in the order they must be delivered; in ROW ordering, records
	// with the same partition key must reach their shard in this order.
	Records []Record
	// TsNs is the transaction's source.ts_ns; pass it as prevTsNs to the
	// next Encode on the stream.
	TsNs int64
	// SkippedTruncates lists truncates not emitted because EmitTruncate is
	// off; the caller logs and counts them (docs/records.md#chunking).
	SkippedTruncates []*Relation
}

// NewEncoder validates cfg and returns an Encoder for one stream.
func NewEncoder(cfg Config) (*Encoder, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new encoder: %w", err)
	}
	e := &Encoder{
		cfg:         cfg,
		vals:        valueCodec{types: cfg.Types},
		crcTable:    crc32.MakeTable(crc32.Castagnoli),
		dbJSON:      appendJSONString(nil, cfg.Database),
		clusterJSON: appendJSONString(nil, cfg.Cluster),
	}
	e.compact.vals = &e.vals
	return e, nil
}

// MaxRecordBytes is the limit records are chunked to, partition key
// included.
func (e *Encoder) MaxRecordBytes() int { return e.cfg.MaxRecordBytes }

// Encode compacts txn (docs/records.md#compaction) and encodes it into records. prevTsNs is
// the source.ts_ns of the previous transaction on the stream (0 for none);
// now stamps the processing-time ts_ms/ts_ns, the only bytes that are not a
// function of txn, prevTsNs and the Config.
//
// Timestamps: source.ts_ns is the commit time in microseconds × 1000, raised
// to prevTsNs+1 when that is not greater, so it strictly increases along
// the stream and is the same on replay (docs/records.md#identity); source.ts_ms is always
// source.ts_ns / 10⁶ rounded down, so the two never disagree, even when
// ts_ns was raised.
//
// On error nothing is returned and the transaction must not be confirmed.
func (e *Encoder) Encode(txn *Txn, prevTsNs int64, now time.Time) (Encoded, error) {
	if txn == nil {
		return Encoded{}, fmt.Errorf("encode transaction: %w: nil Txn", ErrMalformedChange)
	}
	if txn.Spilled != nil {
		// Its changes are not in Changes: encoding them as none would
		// drop the transaction silently.
		return Encoded{}, fmt.Errorf("encode transaction: %w: spilled to disk; use EncodeSpilled", ErrMalformedChange)
	}
	if txn.CommitTime.IsZero() {
		// A zero time would overflow ts_ns and break its ordering.
		return Encoded{}, fmt.Errorf("encode transaction: %w: no commit time", ErrMalformedChange)
	}
	out := Encoded{TsNs: SourceTsNs(txn.CommitTime, prevTsNs)}
	e.begin(txn, out.TsNs, now)
	rows, skipped, err := e.compact.run(txn, e.cfg.EmitTruncate)
	if err != nil {
		return Encoded{}, fmt.Errorf("encode transaction %s: %w", e.txID[:], err)
	}
	out.SkippedTruncates = skipped
	if len(rows) > 0 {
		out.Records = make([]Record, 0, len(rows))
	}
	for i := range rows {
		out.Records, err = e.appendRow(out.Records, &rows[i], i)
		if err != nil {
			return Encoded{}, fmt.Errorf("encode transaction %s: %w", e.txID[:], err)
		}
	}
	e.settleKeys(out.Records)
	e.release()
	return out, nil
}

// maxRetainedScratch caps the scratch an Encoder keeps between
// transactions, so one huge row or transaction does not pin its memory for
// the life of the stream.
const maxRetainedScratch = 4 << 20

// release drops scratch buffers that grew past maxRetainedScratch.
func (e *Encoder) release() {
	for _, b := range []*[]byte{&e.rec, &e.before, &e.after, &e.pkBuf, &e.keys, &e.vals.bytes, &e.compact.keyBuf, &e.compact.keys} {
		if cap(*b) > maxRetainedScratch {
			*b = nil
		}
	}
	for i := range e.vals.elems {
		if cap(e.vals.elems[i]) > maxRetainedScratch {
			e.vals.elems[i] = nil
		}
	}
	e.compact.release()
}

// CheckBinary reports the first column of rel whose type cannot be encoded
// from pgoutput's binary format, as a *ValueError wrapping
// ErrBinaryUnsupported, or nil. Capture can call it for each Relation
// message of a stream that publishes in binary, and so refuse the
// configuration up front (docs/records.md#values) rather than fail on the first row.
func (e *Encoder) CheckBinary(rel *Relation) error {
	for i := range rel.Columns {
		col := &rel.Columns[i]
		if !e.vals.binaryDecodable(col.TypeOID) {
			return valueError(rel, col, DatumBinary, ErrBinaryUnsupported)
		}
	}
	return nil
}

// SourceTsNs is source.ts_ns for a transaction committed at commit after one
// whose source.ts_ns was prev: commit microseconds × 1000, or prev+1 when
// that is not greater (equal or backwards commit times).
func SourceTsNs(commit time.Time, prev int64) int64 {
	ts := commit.UnixMicro() * 1000
	if ts <= prev {
		ts = prev + 1
	}
	return ts
}

// txIDLen is the length of source.txId: 16 bytes in unpadded base32.
const txIDLen = 26

// txIDEncoding is RFC 4648 base32 in lowercase without padding; an immutable
// table, not state.
var txIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// TxID returns source.txId: the system identifier and the commit LSN,
// big-endian, in lowercase unpadded base32 (docs/records.md#identity).
func TxID(systemID, commitLSN uint64) string {
	var b [txIDLen]byte
	putTxID(&b, systemID, commitLSN)
	return string(b[:])
}

func putTxID(dst *[txIDLen]byte, systemID, commitLSN uint64) {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], systemID)
	binary.BigEndian.PutUint64(raw[8:], commitLSN)
	txIDEncoding.Encode(dst[:], raw[:])
}

// begin prepares the parts of the envelope shared by every record of txn.
func (e *Encoder) begin(txn *Txn, tsNs int64, now time.Time) {
	putTxID(&e.txID, e.cfg.SystemID, txn.CommitLSN)
	e.keys = e.keys[:0] // what a failed Encode left

	h := append(e.srcHead[:0], `{"version":"1.0","ts_ms":`...)
	h = strconv.AppendInt(h, floorDiv(tsNs, 1_000_000), 10)
	h = append(h, `,"ts_ns":`...)
	h = strconv.AppendInt(h, tsNs, 10)
	h = append(h, `,"txId":"`...)
	h = append(h, e.txID[:]...)
	e.srcHead = append(h, '"')

	t := append(e.srcTail[:0], `,"db":`...)
	t = append(t, e.dbJSON...)
	t = append(t, `,"cluster":`...)
	t = append(t, e.clusterJSON...)
	t = append(t, `,"lsn":"`...)
	t = appendLSN(t, txn.CommitLSN)
	e.srcTail = append(t, `"}`...)

	nowNs := now.UnixNano()
	p := append(e.procTail[:0], `,"ts_ms":`...)
	p = strconv.AppendInt(p, floorDiv(nowNs, 1_000_000), 10)
	p = append(p, `,"ts_ns":`...)
	p = strconv.AppendInt(p, nowNs, 10)
	e.procTail = append(p, '}')
}

// floorDiv divides rounding toward negative infinity, so ms and ns agree
// for instants before 1970 too.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
