package sink_test

// End-to-end tests against kinesalite (test/infra/up.sh). They skip when
// CDCD_TEST_KINESIS_ENDPOINT and the other test variables are unset, and
// fail instead when CI is set (testenv.Require).

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/sink"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// payload is what each test record carries, to check it on the way out.
type payload struct {
	Txn int    `json:"txn"`
	Key string `json:"key"`
	Seq int    `json:"seq"` // the record's position among its key's records
	Pad string `json:"pad"`
}

func TestKinesisDelivery(t *testing.T) {
	env := testenv.Require(t)
	client := testenv.KinesisClient(t, env, "")
	for _, ordering := range []record.Ordering{record.Unordered, record.Row} {
		t.Run(string(ordering), func(t *testing.T) {
			const shards = 4
			name := testenv.StreamName(t)
			testenv.CreateStream(t, client, name, shards)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()

			target, err := sink.DescribeTarget(ctx, client, name, "")
			if err != nil {
				t.Fatal(err)
			}
			if target.Shards != shards || target.MaxRecordBytes != sink.DefaultRecordMax || target.EncryptionType != "NONE" {
				t.Fatalf("DescribeTarget = %+v, want %d shards, the 1 MiB default (kinesalite reports no limit), NONE", target, shards)
			}
			reg := prometheus.NewRegistry()
			m, err := sink.NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			var rep reporter
			s, err := sink.New(sink.Config{
				StreamName: name, Ordering: ordering,
				MaxRecordBytes: target.MaxRecordBytes, MaxRequestBytes: target.MaxRequestBytes(),
				MaxRecordsPerCall: 50, // several calls in flight even for this small load
				MaxInFlight:       4, Linger: 5 * time.Millisecond,
				Metrics: m.Stream(name), Report: rep.report,
			}, client)
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- s.Run(runCtx) }()
			defer func() {
				stop()
				<-done
			}()

			// Rows updated again and again, so ROW order is exercised: 30 keys,
			// 300 transactions of up to 8 records.
			rng := rand.New(rand.NewPCG(42, uint64(len(ordering))))
			seq := map[string]int{}
			want := map[string]payload{}
			var lsn uint64
			for txn := range 300 {
				var recs []record.Record
				for range rng.IntN(9) {
					key := fmt.Sprintf("public.t/%d", rng.IntN(30))
					if ordering == record.Unordered {
						key = fmt.Sprintf("%016x", rng.Uint64())
					}
					p := payload{Txn: txn, Key: key, Seq: seq[key], Pad: fmt.Sprintf("%0*d", rng.IntN(200), 0)}
					seq[key]++
					data, _ := json.Marshal(p)
					recs = append(recs, record.Record{PartitionKey: key, Data: data})
					want[fmt.Sprintf("%s#%d", key, p.Seq)] = p
				}
				lsn = uint64(txn+1) * 100
				if err := s.Submit(ctx, lsn, recs); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Drain(ctx); err != nil {
				t.Fatalf("Drain: %v (Delivered %d of %d; reports %v)", err, s.Delivered(), lsn, rep.get())
			}
			if s.Delivered() != lsn {
				t.Fatalf("Delivered = %d, want %d", s.Delivered(), lsn)
			}
			// One success report, for the first accepted batch; no code.
			for deadline := time.Now().Add(5 * time.Second); len(rep.get()) == 0 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			if got := rep.get(); len(got) != 1 || got[0] != "" {
				t.Errorf("reports %q from a healthy kinesalite, want one success", got)
			}

			got := readAll(ctx, t, client, name)
			seen := map[string]bool{}
			shardsUsed := map[string]bool{}
			keyShard := map[string]string{}
			lastSeq := map[string]int{}
			for _, r := range got {
				var p payload
				if err := json.Unmarshal(r.data, &p); err != nil {
					t.Fatalf("record %q: %v", r.data, err)
				}
				id := fmt.Sprintf("%s#%d", p.Key, p.Seq)
				if seen[id] {
					t.Errorf("record %s read twice", id)
				}
				seen[id] = true
				if p != want[id] || r.key != p.Key {
					t.Errorf("record %s = %+v under key %q, want %+v", id, p, r.key, want[id])
				}
				shardsUsed[r.shard] = true
				if sh, ok := keyShard[p.Key]; ok && sh != r.shard {
					t.Errorf("key %s on shards %s and %s", p.Key, sh, r.shard)
				}
				keyShard[p.Key] = r.shard
				if ordering == record.Row {
					// Records are read shard by shard in sequence-number order.
					last, ok := lastSeq[p.Key]
					if !ok {
						last = -1
					}
					if p.Seq != last+1 {
						t.Errorf("key %s: record %d follows %d", p.Key, p.Seq, last)
					}
					lastSeq[p.Key] = p.Seq
				}
			}
			if len(seen) != len(want) {
				t.Errorf("read %d distinct records, want %d", len(seen), len(want))
			}
			if len(shardsUsed) < 2 {
				t.Errorf("records landed on %d shard(s), want them spread over %d", len(shardsUsed), shards)
			}
			if n := gather(t, reg, "cdcd_published_records_total"); int(n) != len(want) {
				t.Errorf("cdcd_published_records_total = %v, want %d", n, len(want))
			}
		})
	}
}

// TestKinesisErrors checks classification against kinesalite's real error
// responses: a missing stream, and a record over its 1 MiB limit when the
// sink is told the limit is higher.
func TestKinesisErrors(t *testing.T) {
	env := testenv.Require(t)
	client := testenv.KinesisClient(t, env, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	missing := testenv.StreamName(t)
	if _, err := sink.DescribeTarget(ctx, client, missing, ""); sink.Classify(err) != codes.KinesisStreamNotFound {
		t.Errorf("DescribeTarget(missing) error %v classifies as %q", err, sink.Classify(err))
	}

	name := testenv.StreamName(t)
	testenv.CreateStream(t, client, name, 1)
	for _, tc := range []struct {
		name   string
		stream string
		size   int
		want   codes.Code
	}{
		{"stream not found", missing, 10, codes.KinesisStreamNotFound},
		{"oversize record", name, 1<<20 + 100, codes.KinesisOversizeRecord},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rep reporter
			s, err := sink.New(sink.Config{
				StreamName: tc.stream, Ordering: record.Row, MaxRecordBytes: 2 << 20,
				ImpairAfter: time.Nanosecond, Report: rep.report,
			}, client)
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- s.Run(runCtx) }()
			defer func() {
				stop()
				<-done
			}()
			if err := s.Submit(ctx, 1, []record.Record{{PartitionKey: "k", Data: make([]byte, tc.size)}}); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for len(rep.get()) == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := rep.get(); len(got) == 0 || got[0] != tc.want {
				t.Errorf("reports = %v, want %s first", got, tc.want)
			}
			if s.Delivered() != 0 {
				t.Errorf("Delivered = %d for a record Kinesis refused", s.Delivered())
			}
		})
	}
}

type reporter struct {
	mu    sync.Mutex
	codes []codes.Code
}

func (r *reporter) report(c codes.Code, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.codes = append(r.codes, c)
}

func (r *reporter) get() []codes.Code {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]codes.Code(nil), r.codes...)
}

type readRecord struct {
	shard, key string
	data       []byte
}

// readAll reads every shard from TRIM_HORIZON to its end, shard by shard,
// each in sequence-number order.
func readAll(ctx context.Context, t *testing.T, c *kinesis.Client, name string) []readRecord {
	t.Helper()
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	var out []readRecord
	for _, sh := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(name), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for iter != nil {
			res, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res.Records {
				out = append(out, readRecord{shard: aws.ToString(sh.ShardId), key: aws.ToString(r.PartitionKey), data: r.Data})
			}
			if len(res.Records) == 0 {
				break // everything was written before reading began
			}
			iter = res.NextShardIterator
		}
	}
	return out
}

func gather(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
