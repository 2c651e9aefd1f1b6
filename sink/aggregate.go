package sink

import (
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdcd-dev/cdcd/record"
)

// aggregate fills b.req from b.sent with KPL aggregates
// (docs/records.md#aggregation): consecutive entries share one Kinesis
// record while it stays within MaxRecordBytes. An entry alone in its group
// goes as it is, so a record too large to share, or the last of a batch,
// costs no aggregation overhead; consumers read both forms.
func (s *Sink) aggregate(b *batch) {
	start, size := 0, record.KPLOverhead
	for i, e := range b.sent {
		cost := e.size + record.KPLRecordOverhead
		if i > start && size+cost > s.cfg.MaxRecordBytes {
			s.appendGroup(b, start, i)
			start, size = i, record.KPLOverhead
		}
		size += cost
	}
	s.appendGroup(b, start, len(b.sent))
}

// appendGroup adds one request entry carrying b.sent[from:to].
func (s *Sink) appendGroup(b *batch, from, to int) {
	b.ends = append(b.ends, to)
	if to-from == 1 {
		e := b.sent[from]
		b.req = append(b.req, types.PutRecordsRequestEntry{Data: e.rec.Data, PartitionKey: &e.rec.PartitionKey})
		return
	}
	recs := make([]record.Record, to-from)
	n := 0
	for i, e := range b.sent[from:to] {
		recs[i] = e.rec
		n += e.size + record.KPLRecordOverhead
	}
	data, key := record.AppendKPLAggregate(make([]byte, 0, n+record.KPLOverhead), recs)
	b.req = append(b.req, types.PutRecordsRequestEntry{Data: data, PartitionKey: &key})
}

// takeLimits are how many entries, and how many of their bytes, one batch
// takes. Aggregated, a batch takes many more records (limited by bytes), at
// most 2/3 of the request limit: an entry is at least a 32-byte partition
// key and 16 bytes of data, so the per-record overhead adds at most a
// third, and what is left covers each aggregate's own. Aggregates are
// filled greedily, so any two neighbours hold more than MaxRecordBytes, and
// the bytes taken are also capped so that at most MaxRecordsPerCall
// aggregates result.
func (c Config) takeLimits() (records, bytes int) {
	if !c.Aggregate {
		return c.MaxRecordsPerCall, c.MaxRequestBytes
	}
	bytes = min(c.MaxRequestBytes*2/3, (c.MaxRecordsPerCall-1)/2*c.MaxRecordBytes)
	return max(bytes/48, 1), max(bytes, 1)
}
