package record

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Partition keys (docs/records.md#ordering). Every key is 32 lowercase hex characters, the
// first 128 bits of a SHA-256, so a record's size is known before its key is
// chosen and Kinesis' MD5 of the key spreads records evenly over shards.
//
//	ROW, table with a key:    SHA-256("row" ‖ lp(schema) ‖ lp(table) ‖ key)
//	ROW, no key or truncate:  SHA-256("table" ‖ lp(schema) ‖ lp(table))
//	UNORDERED:                SHA-256("spread" ‖ txId ‖ uvarint(position))
//
// lp is a 4-byte big-endian length followed by the bytes; key is the
// length-prefixed JSON of the key columns in column order, the same bytes
// compaction identifies rows by, so the text and binary formats agree. In
// ROW ordering a row's records, fragments included, share one key and
// therefore one shard. A table without a key cannot be split by row, so all
// its records, and its truncates, share the table's key: commit order holds
// for the whole table, on one shard. (A truncate cannot be ordered against
// the rows of a keyed table, which live on other shards.) In UNORDERED
// ordering, position is the record's index in Encoded.Records (for
// EncodeSpilled, among all the batches it emits: the same index), so every
// record of a transaction, fragment or not, lands on its own
// pseudo-random shard, the same on every replay.

// partitionKeyLen is the length of every partition key.
const partitionKeyLen = 32

// rowPartitionKey is the ROW-ordering key of row.
func (e *Encoder) rowPartitionKey(row *compactRow) string {
	b := e.pkBuf[:0]
	if row.key != "" {
		b = append(b, "row"...)
	} else {
		b = append(b, "table"...)
	}
	b = appendLenPrefixed(b, row.rel.Schema)
	b = appendLenPrefixed(b, row.rel.Table)
	b = append(b, row.key...)
	e.pkBuf = b
	return hashKey(b)
}

// partitionKey returns rowKey in ROW ordering, and otherwise the spread key
// of the record at position in Encoded.Records.
func (e *Encoder) partitionKey(rowKey string, position int) string {
	if e.cfg.Ordering == Row {
		return rowKey
	}
	b := append(e.pkBuf[:0], "spread"...)
	b = append(b, e.txID[:]...)
	b = binary.AppendUvarint(b, uint64(e.recBase+position))
	e.pkBuf = b
	return hashKey(b)
}

func hashKey(b []byte) string {
	sum := sha256.Sum256(b)
	var out [partitionKeyLen]byte
	hex.Encode(out[:], sum[:partitionKeyLen/2])
	return string(out[:])
}

func appendLenPrefixed(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}
