package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdcd-dev/cdcd/record"
)

// fakeKinesis is an API whose methods are its fields.
type fakeKinesis struct {
	listShards       func(*kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error)
	getShardIterator func(*kinesis.GetShardIteratorInput) (*kinesis.GetShardIteratorOutput, error)
	getRecords       func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error)
}

func (f *fakeKinesis) ListShards(_ context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return f.listShards(in)
}

func (f *fakeKinesis) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	return f.getShardIterator(in)
}

func (f *fakeKinesis) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	return f.getRecords(in)
}

// serve is a fake stream of open shards holding data, two records a
// GetRecords page, listed one shard a ListShards page. Iterators are
// "shard/position".
func serve(t *testing.T, shards map[string][][]byte, wantIterator types.ShardIteratorType) *fakeKinesis {
	var ids []string
	for id := range shards {
		ids = append(ids, id)
	}
	return &fakeKinesis{
		listShards: func(in *kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error) {
			i := 0
			if in.NextToken != nil {
				i, _ = strconv.Atoi(*in.NextToken)
			}
			out := &kinesis.ListShardsOutput{Shards: []types.Shard{{ShardId: aws.String(ids[i])}}}
			if i+1 < len(ids) {
				out.NextToken = aws.String(strconv.Itoa(i + 1))
			}
			return out, nil
		},
		getShardIterator: func(in *kinesis.GetShardIteratorInput) (*kinesis.GetShardIteratorOutput, error) {
			if in.ShardIteratorType != wantIterator {
				t.Errorf("iterator type %s, want %s", in.ShardIteratorType, wantIterator)
			}
			return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(*in.ShardId + "/0")}, nil
		},
		getRecords: func(in *kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error) {
			shard, pos, _ := strings.Cut(*in.ShardIterator, "/")
			i, _ := strconv.Atoi(pos)
			data := shards[shard]
			end := min(i+2, len(data))
			out := &kinesis.GetRecordsOutput{
				NextShardIterator:  aws.String(fmt.Sprintf("%s/%d", shard, end)),
				MillisBehindLatest: aws.Int64(int64(len(data) - end)),
			}
			for _, d := range data[i:end] {
				out.Records = append(out.Records, types.Record{Data: d})
			}
			return out, nil
		},
	}
}

// encode returns the records of transaction xid, n inserts whose every
// third row is too large for one record, so is chunked.
func encode(t *testing.T, xid uint32, n int) [][]byte {
	t.Helper()
	rel := &record.Relation{ID: 1, Schema: "public", Table: "docs", ReplicaIdentity: 'd', HasKey: true,
		Columns: []record.Column{{Name: "id", TypeOID: 20, TypMod: -1, Key: true}, {Name: "body", TypeOID: 25, TypMod: -1}}}
	var changes []record.Change
	for i := range n {
		body := "small"
		if i%3 == 0 {
			body = strings.Repeat("large ", 1000)
		}
		changes = append(changes, record.Change{Kind: record.Insert, Rel: rel, New: record.Tuple{text(strconv.Itoa(i)), text(body)}})
	}
	return encodeChanges(t, xid, changes...)
}

func text(s string) record.Datum { return record.Datum{Kind: record.DatumText, Data: []byte(s)} }

// encodeChanges returns the records cdcd writes for transaction xid made
// of changes, committed at LSN 16/B374D848 + xid<<8, truncates emitted.
func encodeChanges(t *testing.T, xid uint32, changes ...record.Change) [][]byte {
	t.Helper()
	lsn := 0x16B374D848 + uint64(xid)<<8
	txn := &record.Txn{Xid: xid, CommitLSN: lsn, EndLSN: lsn + 0x80, CommitTime: time.Unix(1705318200+int64(xid), 0), Changes: changes}
	enc, err := record.NewEncoder(record.Config{SystemID: 7312345678901234567, Cluster: "abcdefghijklmnopqrstuvwxyz",
		Database: "shop", Ordering: record.Unordered, MaxRecordBytes: record.MinMaxRecordBytes, EmitTruncate: true})
	if err != nil {
		t.Fatal(err)
	}
	out, err := enc.Encode(txn, 0, time.Unix(1705318201, 0))
	if err != nil {
		t.Fatal(err)
	}
	var data [][]byte
	for _, r := range out.Records {
		data = append(data, r.Data)
	}
	return data
}

// collect runs the consumer and returns what it handed over.
func collect(t *testing.T, api API, cfg Config) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []Record
	err := Run(ctx, api, cfg, func(_ context.Context, r Record) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func fast(cfg Config) Config {
	cfg.Stream, cfg.FromStart, cfg.IdleExit, cfg.Poll = "orders", true, 100*time.Millisecond, 5*time.Millisecond
	return cfg
}

func TestRunReassemblesAndDedupes(t *testing.T) {
	recs := encode(t, 1, 6)
	if len(recs) <= 6 {
		t.Fatalf("nothing was chunked: %d records", len(recs))
	}
	// Shard a holds a transaction, then all of it again, as a producer
	// retrying it would write; shard b holds another transaction.
	other := encode(t, 2, 2)
	written := append(slices.Clone(recs), other...)
	api := serve(t, map[string][][]byte{"a": append(recs, recs...), "b": other}, types.ShardIteratorTypeTrimHorizon)
	for _, tc := range []struct {
		dedupe bool
		want   int
	}{{true, 6 + 2}, {false, 6 + 4 + 2}} { // the Reassembler drops chunked records it completed (rows 0 and 3)
		got := collect(t, api, fast(Config{Dedupe: tc.dedupe}))
		if len(got) != tc.want {
			t.Errorf("dedupe %v: %d records, want %d", tc.dedupe, len(got), tc.want)
		}
		for _, r := range got {
			m := r.Message
			if m == nil || m.Type != record.MessageFull {
				t.Fatalf("handed over %+v, want a full message", r)
			}
			if small := string(m.After[1].Value) == `"small"`; small && !slices.ContainsFunc(written, func(d []byte) bool { return string(d) == string(r.Data) }) {
				t.Errorf("row %s: data %q is not the record as written", m.After[0].Value, r.Data)
			}
			// A reassembled record reads as it would have, had it fit.
			if again, err := record.Decode(r.Data); err != nil || again.Type != record.MessageFull ||
				string(again.After[1].Value) != string(m.After[1].Value) {
				t.Errorf("row %s: data %.100q does not decode to the message: %v", m.After[0].Value, r.Data, err)
			}
		}
	}
}

// TestRunDeaggregates: records packed in KPL aggregates, chunked ones
// included, are handed over one by one as if sent alone, beside records
// that were.
func TestRunDeaggregates(t *testing.T) {
	recs := encode(t, 1, 6)
	var agg []record.Record
	for i, d := range recs {
		agg = append(agg, record.Record{PartitionKey: fmt.Sprintf("%032d", i), Data: d})
	}
	first, _ := record.AppendKPLAggregate(nil, agg[:len(agg)/2])
	second, _ := record.AppendKPLAggregate(nil, agg[len(agg)/2:])
	plain := encode(t, 2, 2)
	api := serve(t, map[string][][]byte{"a": {first, second}, "b": plain}, types.ShardIteratorTypeTrimHorizon)
	got := collect(t, api, fast(Config{}))
	if len(got) != 6+2 {
		t.Fatalf("%d records, want the 6 aggregated rows and 2 plain ones", len(got))
	}
	rows := map[string]bool{}
	for _, r := range got {
		if r.Message == nil || r.Message.Type != record.MessageFull || record.IsKPLAggregate(r.Data) {
			t.Fatalf("handed over %.80q, want one full record", r.Data)
		}
		rows[fmt.Sprintf("%s/%s", r.Message.Source.TxID, r.Message.After[0].Value)] = true
	}
	if len(rows) != 8 {
		t.Errorf("distinct rows %v, want 8", rows)
	}
	raw := collect(t, api, fast(Config{Raw: true}))
	aggregates := 0
	for _, r := range raw {
		if record.IsKPLAggregate(r.Data) {
			aggregates++
		}
	}
	if len(raw) != 2+len(plain) || aggregates != 2 {
		t.Errorf("raw: %d records (%d aggregates), want the 2 aggregates and the %d plain records as they are", len(raw), aggregates, len(plain))
	}
}

func TestRunRaw(t *testing.T) {
	recs := encode(t, 1, 3)
	got := collect(t, serve(t, map[string][][]byte{"a": recs}, types.ShardIteratorTypeTrimHorizon), fast(Config{Raw: true}))
	if len(got) != len(recs) {
		t.Fatalf("%d records, want every one of %d", len(got), len(recs))
	}
	for i, r := range got {
		if r.Message != nil || string(r.Data) != string(recs[i]) {
			t.Errorf("record %d: %+v", i, r)
		}
	}
}

func TestRunStop(t *testing.T) {
	api := serve(t, map[string][][]byte{"a": encode(t, 1, 6), "b": encode(t, 1, 6)}, types.ShardIteratorTypeLatest)
	var mu sync.Mutex
	calls := 0
	cfg := fast(Config{})
	cfg.FromStart, cfg.IdleExit = false, 0 // only the handler ends this run
	err := Run(context.Background(), api, cfg, func(context.Context, Record) error {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls == 3 {
			return ErrStop
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Run = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestRunErrors(t *testing.T) {
	boom := errors.New("boom")
	api := serve(t, map[string][][]byte{"a": encode(t, 1, 2), "b": encode(t, 1, 2)}, types.ShardIteratorTypeTrimHorizon)
	serveRecords := api.getRecords
	var mu sync.Mutex
	throttled := false
	api.getRecords = func(in *kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error) {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(*in.ShardIterator, "a/") && !throttled {
			throttled = true // retried after a poll, not an error
			return nil, &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}
		}
		if *in.ShardIterator == "b/2" {
			return nil, boom
		}
		return serveRecords(in)
	}
	err := Run(context.Background(), api, fast(Config{}), func(context.Context, Record) error { return nil })
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "shard b") || !throttled {
		t.Errorf("a failing shard: got %v (throttled %v)", err, throttled)
	}

	err = Run(context.Background(), serve(t, map[string][][]byte{"a": {[]byte("{}")}}, types.ShardIteratorTypeTrimHorizon),
		fast(Config{}), func(context.Context, Record) error { return nil })
	if !errors.Is(err, record.ErrMalformedRecord) {
		t.Errorf("a record that is not cdcd's: got %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cfg := fast(Config{})
	cfg.IdleExit = 0
	err = Run(ctx, serve(t, map[string][][]byte{"a": encode(t, 1, 1)}, types.ShardIteratorTypeTrimHorizon), cfg,
		func(context.Context, Record) error { cancel(); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled context: got %v", err)
	}
}
