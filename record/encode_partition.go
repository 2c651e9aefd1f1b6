package record

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
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

// partKey is a partition key before it joins its record (settleKeys).
type partKey [partitionKeyLen]byte

// rowPartitionKey is the ROW-ordering key of row.
func (e *Encoder) rowPartitionKey(row *compactRow) partKey {
	b := e.pkBuf[:0]
	if len(row.key) != 0 {
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
func (e *Encoder) partitionKey(rowKey *partKey, position int) partKey {
	if e.cfg.Ordering == Row {
		return *rowKey
	}
	b := append(e.pkBuf[:0], "spread"...)
	b = append(b, e.txID[:]...)
	b = binary.AppendUvarint(b, uint64(e.recBase+position))
	e.pkBuf = b
	return hashKey(b)
}

func hashKey(b []byte) (k partKey) {
	sum := sha256.Sum256(b)
	hex.Encode(k[:], sum[:partitionKeyLen/2])
	return k
}

func appendLenPrefixed[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// addRecord appends a record of data to out; its key waits in e.keys for
// settleKeys.
func (e *Encoder) addRecord(out []Record, key partKey, data []byte) []Record {
	e.keys = append(e.keys, key[:]...)
	return append(out, Record{Data: data})
}

// settleKeys gives the records added since the last call, the last ones of
// recs, their partition keys, all cut from one string: one allocation for
// the keys of a transaction (or of a batch of EncodeSpilled) instead of one
// a record.
func (e *Encoder) settleKeys(recs []Record) {
	n := len(e.keys) / partitionKeyLen
	keys := string(e.keys)
	recs = recs[len(recs)-n:]
	for i := range recs {
		recs[i].PartitionKey = keys[i*partitionKeyLen : (i+1)*partitionKeyLen]
	}
	e.keys = e.keys[:0]
}

// dataBlockSize is the size of the blocks keep cuts records' data from,
// and a quarter of it the largest record that shares a block: the
// garbage collector frees a block once none of its records is referenced,
// so a record kept long (a retry under throttling) keeps at most a block
// alive with it.
const dataBlockSize = 16 << 10

// keep returns a copy of b that does not alias the Encoder's scratch. Small
// records are cut one after another from a shared block, one allocation
// for many records; the copies are capped, so appending to one cannot
// reach the next.
func (e *Encoder) keep(b []byte) []byte {
	if len(b) > dataBlockSize/4 {
		return slices.Clone(b)
	}
	if cap(e.block)-len(e.block) < len(b) {
		e.block = make([]byte, 0, dataBlockSize)
	}
	start := len(e.block)
	e.block = append(e.block, b...)
	return e.block[start:len(e.block):len(e.block)]
}
