package record

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
)

// KPL aggregation (docs/records.md#aggregation): several records in one
// Kinesis record, in the format of the Kinesis Producer Library, so that the
// standard deaggregation of the Kinesis Client Library (and of the
// kinesis-aggregation libraries) reads them:
//
//	magic (F3 89 9A C2) ‖ AggregatedRecord (protobuf) ‖ MD5(AggregatedRecord)
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;  // never written
//	}
//
// Kinesis routes the aggregate by its own partition key, the first inner
// record's. The Client Library drops an inner record whose hash key falls
// outside the shard it was read from, so every inner record carries, as its
// explicit hash key, the hash Kinesis routed the aggregate by: the decimal
// MD5 of the aggregate's partition key. Inner records keep their own
// partition keys.

// kplMagic starts every aggregated record.
var kplMagic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// KPLOverhead is the bytes an aggregate adds besides its records' partition
// keys and data: magic, MD5, the one explicit hash key (at most 39 decimal
// digits) and the field headers of the tables.
const KPLOverhead = 4 + md5.Size + 2 + 39

// KPLRecordOverhead bounds what an aggregate adds to an inner record's
// Size (partition key and data): the Record's tag and length (1+3), its
// partition key index (1+3) and explicit hash key index (1+1), the data's
// tag and length (1+3), and the partition key's entry header in the table
// (1+1), for records under 2 MiB with keys under 128 bytes, as cdcd's are.
const KPLRecordOverhead = 16

// IsKPLAggregate reports whether data starts with the aggregation magic.
// A cdcd record is JSON and starts with '{', so the two never mix up.
func IsKPLAggregate(data []byte) bool { return bytes.HasPrefix(data, kplMagic) }

// AppendKPLAggregate appends to dst one aggregated record holding recs in
// order, and returns it with the aggregate's partition key (recs[0]'s).
// recs must not be empty.
func AppendKPLAggregate(dst []byte, recs []Record) ([]byte, string) {
	outer := recs[0].PartitionKey
	index := make(map[string]uint64, len(recs))
	var body []byte
	for _, r := range recs {
		if _, ok := index[r.PartitionKey]; !ok {
			index[r.PartitionKey] = uint64(len(index))
			body = appendPBBytes(body, 1, []byte(r.PartitionKey))
		}
	}
	body = appendPBBytes(body, 2, []byte(HashKey(outer)))
	var rec []byte
	for _, r := range recs {
		rec = appendPBVarint(rec[:0], 1, index[r.PartitionKey])
		rec = appendPBVarint(rec, 2, 0)
		rec = appendPBBytes(rec, 3, r.Data)
		body = appendPBBytes(body, 3, rec)
	}
	sum := md5.Sum(body)
	dst = append(dst, kplMagic...)
	dst = append(dst, body...)
	return append(dst, sum[:]...), outer
}

// Protobuf wire types, and the two field encodings the format needs.
const (
	pbVarint  = 0
	pbFixed64 = 1
	pbBytes   = 2
	pbFixed32 = 5
)

func appendPBVarint(b []byte, field, v uint64) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(b, field<<3|pbVarint), v)
}

func appendPBBytes(b []byte, field uint64, v []byte) []byte {
	b = binary.AppendUvarint(b, field<<3|pbBytes)
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

// HashKey is the hash key Kinesis gives a partition key: the MD5 of its
// UTF-8 bytes as an unsigned 128-bit integer, in decimal.
func HashKey(partitionKey string) string {
	sum := md5.Sum([]byte(partitionKey))
	return new(big.Int).SetBytes(sum[:]).String()
}

// KPLRecord is one record of an aggregate.
type KPLRecord struct {
	PartitionKey    string
	ExplicitHashKey string // "" when the record has none
	Data            []byte // aliases the aggregate
}

// DeaggregateKPL returns the records of an aggregated record. It fails on
// data without the magic, a wrong MD5 or a malformed body, naming which:
// a consumer must not take a damaged aggregate for one cdcd record.
func DeaggregateKPL(data []byte) ([]KPLRecord, error) {
	if !IsKPLAggregate(data) || len(data) < len(kplMagic)+md5.Size {
		return nil, errors.New("kpl: not an aggregated record")
	}
	body := data[len(kplMagic) : len(data)-md5.Size]
	if sum := md5.Sum(body); !bytes.Equal(sum[:], data[len(data)-md5.Size:]) {
		return nil, errors.New("kpl: MD5 of the aggregated record does not match its trailer")
	}
	var keys, hashes []string
	var raw [][]byte
	err := pbFields(body, func(field, wire, _ uint64, v []byte) {
		switch {
		case wire != pbBytes:
		case field == 1:
			keys = append(keys, string(v))
		case field == 2:
			hashes = append(hashes, string(v))
		case field == 3:
			raw = append(raw, v)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("kpl: aggregated record: %w", err)
	}
	out := make([]KPLRecord, len(raw))
	for i, b := range raw {
		if err := decodeKPLRecord(b, keys, hashes, &out[i]); err != nil {
			return nil, fmt.Errorf("kpl: record %d: %w", i, err)
		}
	}
	return out, nil
}

// decodeKPLRecord decodes one Record message into r.
func decodeKPLRecord(b []byte, keys, hashes []string, r *KPLRecord) error {
	pk, ehk := uint64(len(keys)), uint64(len(hashes))
	hasEHK := false
	var data []byte
	err := pbFields(b, func(field, wire, n uint64, v []byte) {
		switch {
		case field == 1 && wire == pbVarint:
			pk = n
		case field == 2 && wire == pbVarint:
			ehk, hasEHK = n, true
		case field == 3 && wire == pbBytes:
			data = v
		}
	})
	switch {
	case err != nil:
		return err
	case pk >= uint64(len(keys)):
		return fmt.Errorf("partition key index missing or outside the table of %d", len(keys))
	case hasEHK && ehk >= uint64(len(hashes)):
		return fmt.Errorf("explicit hash key index %d outside the table of %d", ehk, len(hashes))
	case data == nil:
		return errors.New("no data")
	}
	r.PartitionKey, r.Data = keys[pk], data
	if hasEHK {
		r.ExplicitHashKey = hashes[ehk]
	}
	return nil
}

// pbFields calls fn with each field of a protobuf message: its number, wire
// type, and value (n for varints, v for length-delimited fields; fixed
// fields are skipped over). Groups and malformed input are errors.
func pbFields(b []byte, fn func(field, wire, n uint64, v []byte)) error {
	for len(b) > 0 {
		tag, k := binary.Uvarint(b)
		if k <= 0 {
			return errors.New("malformed field tag")
		}
		b = b[k:]
		field, wire := tag>>3, tag&7
		var n uint64
		var v []byte
		switch wire {
		case pbVarint:
			if n, k = binary.Uvarint(b); k <= 0 {
				return fmt.Errorf("field %d: malformed varint", field)
			}
		case pbBytes:
			l, m := binary.Uvarint(b)
			if m <= 0 || l > uint64(len(b)-m) {
				return fmt.Errorf("field %d: length runs past the end", field)
			}
			k, v = m+int(l), b[m:m+int(l)]
		case pbFixed64, pbFixed32:
			if k = 8; wire == pbFixed32 {
				k = 4
			}
			if k > len(b) {
				return fmt.Errorf("field %d: runs past the end", field)
			}
		default:
			return fmt.Errorf("field %d: unsupported wire type %d", field, wire)
		}
		if field == 0 {
			return errors.New("field number 0")
		}
		fn(field, wire, n, v)
		b = b[k:]
	}
	return nil
}

// Deaggregate returns the records one Kinesis record's data carries: the
// records of an aggregate, or data itself.
func Deaggregate(data []byte) ([][]byte, error) {
	if !IsKPLAggregate(data) {
		return [][]byte{data}, nil
	}
	recs, err := DeaggregateKPL(data)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(recs))
	for i, r := range recs {
		out[i] = r.Data
	}
	return out, nil
}
