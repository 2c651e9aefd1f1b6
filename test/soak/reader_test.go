package soak

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// rowKey names one row: its table and the JSON of its id.
type rowKey struct{ table, id string }

// rowState is the last write to a row: last-writer-wins by source.ts_ns.
type rowState struct {
	tsNs    int64
	deleted bool
	after   map[string]json.RawMessage
}

// reader rebuilds the tables from every record of every shard and checks
// the records on the way (docs/records.md): duplicates identical but for
// the processing time, and, for a ROW stream, each row's records in commit
// order on one shard.
type reader struct {
	cluster string

	rows      map[rowKey]*rowState
	truncated map[string]int64             // table → source.ts_ns of its last truncate
	firsts    map[string][sha256.Size]byte // dedupe key → the first copy, without ts_ms/ts_ns

	records, duplicates int
	problems            []string
	problemCount        map[string]int // by kind: "duplicate", "order", "record"
}

func newReader(cluster string) *reader {
	return &reader{cluster: cluster, rows: map[rowKey]*rowState{}, truncated: map[string]int64{},
		firsts: map[string][sha256.Size]byte{}, problemCount: map[string]int{}}
}

func (rd *reader) problem(kind, format string, args ...any) {
	rd.problemCount[kind]++
	if len(rd.problems) < 30 {
		rd.problems = append(rd.problems, kind+": "+fmt.Sprintf(format, args...))
	}
}

// readStream takes one Kinesis stream's shards, each in shard order.
func (rd *reader) readStream(name string, shards [][][]byte, rowOrder bool) {
	shardOf := map[rowKey]int{}
	for i, shard := range shards {
		lastTs := map[rowKey]int64{}
		seen := map[string]bool{} // dedupe keys seen on this shard
		for _, data := range shard {
			rd.records++
			r, dk, key, err := rd.decode(data)
			if err != nil {
				rd.problem("record", "stream %s shard %d: %v: %.300s", name, i, err, data)
				continue
			}
			if rowOrder && r.Op != "t" {
				rd.checkOrder(name, i, r, key, dk, lastTs, seen, shardOf)
			}
			seen[dk] = true
			if rd.dedupe(dk, data) {
				rd.apply(r, key)
			}
		}
	}
}

// decode parses one record and names it: its dedupe key (txId, schema,
// table, key, op) and its row.
func (rd *reader) decode(data []byte) (*testenv.Record, string, rowKey, error) {
	var r testenv.Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, "", rowKey{}, err
	}
	if r.Type != "full" {
		// Values stay far below Kinesis's 1 MiB, so cdcd never chunks.
		return nil, "", rowKey{}, fmt.Errorf("a %q record: the soak's values are too small to be chunked", r.Type)
	}
	if r.Source.Cluster != rd.cluster || r.Source.Schema != "public" {
		return nil, "", rowKey{}, errors.New("source.cluster or source.schema is not the run's")
	}
	img := r.After
	switch r.Op {
	case "c", "u":
	case "d":
		img = r.Before
	case "t":
		return &r, r.Source.TxID + "|" + r.Source.Table + "||t", rowKey{table: r.Source.Table}, nil
	default:
		return nil, "", rowKey{}, fmt.Errorf("op %q: the soak's workload makes c, u, d and t", r.Op)
	}
	id, ok := img["id"]
	if !ok {
		return nil, "", rowKey{}, errors.New("no id in the row image")
	}
	key := rowKey{r.Source.Table, string(id)}
	return &r, r.Source.TxID + "|" + key.table + "|" + key.id + "|" + r.Op, key, nil
}

// checkOrder checks docs/records.md#ordering for a ROW stream: a row's
// records are on one shard, in commit order (source.ts_ns), where a
// redelivered record may repeat what the shard already had.
func (rd *reader) checkOrder(name string, shard int, r *testenv.Record, key rowKey, dk string,
	lastTs map[rowKey]int64, seen map[string]bool, shardOf map[rowKey]int) {
	if j, ok := shardOf[key]; ok && j != shard {
		rd.problem("order", "stream %s: row %s %s on shards %d and %d", name, key.table, key.id, j, shard)
	}
	shardOf[key] = shard
	if r.Source.TsNs < lastTs[key] && !seen[dk] {
		rd.problem("order", "stream %s shard %d: row %s %s: a new record at ts_ns %d after one at %d",
			name, shard, key.table, key.id, r.Source.TsNs, lastTs[key])
	}
	lastTs[key] = max(lastTs[key], r.Source.TsNs)
}

// dedupe reports whether data is the first copy of its change; a later
// copy must be byte-identical but for the top-level ts_ms and ts_ns.
func (rd *reader) dedupe(dk string, data []byte) bool {
	masked, err := withoutProcessingTime(data)
	if err != nil {
		rd.problem("record", "%v: %.300s", err, data)
		return false
	}
	sum := sha256.Sum256(masked)
	first, dup := rd.firsts[dk]
	if !dup {
		rd.firsts[dk] = sum
		return true
	}
	rd.duplicates++
	if first != sum {
		rd.problem("duplicate", "%s: a copy differs beyond ts_ms/ts_ns: %.400s", dk, data)
	}
	return false
}

// apply writes a record into the rebuilt tables, last writer wins.
func (rd *reader) apply(r *testenv.Record, key rowKey) {
	ts := r.Source.TsNs
	if r.Op == "t" {
		rd.truncated[key.table] = max(rd.truncated[key.table], ts)
		return
	}
	if cur := rd.rows[key]; cur != nil && cur.tsNs >= ts {
		return
	}
	rd.rows[key] = &rowState{tsNs: ts, deleted: r.Op == "d", after: r.After}
}

// live returns table's rebuilt rows by id: those not deleted and not older
// than the table's last truncate (rows the truncating transaction inserted
// after its TRUNCATE share its source.ts_ns, docs/records.md#truncate).
func (rd *reader) live(table string) map[string]*rowState {
	out := map[string]*rowState{}
	for k, st := range rd.rows {
		if k.table == table && !st.deleted && st.tsNs >= rd.truncated[table] {
			out[k.id] = st
		}
	}
	return out
}

// distinct is how many different changes were read.
func (rd *reader) distinct() int { return len(rd.firsts) }

// processingTime is how a record ends: its top-level ts_ms and ts_ns,
// the last fields (docs/records.md#envelope).
var processingTime = regexp.MustCompile(`,"ts_ms":-?[0-9]+,"ts_ns":-?[0-9]+}$`)

// withoutProcessingTime returns a record without its top-level ts_ms and
// ts_ns: what must be identical between copies. They are the record's last
// fields, and no string value can hold their unescaped `,"ts_ms":`.
func withoutProcessingTime(data []byte) ([]byte, error) {
	i := bytes.LastIndex(data, []byte(`,"ts_ms":`))
	if i < 0 || !processingTime.Match(data[i:]) {
		return nil, errors.New(`the record does not end in ,"ts_ms":…,"ts_ns":…}`)
	}
	return data[:i], nil
}
