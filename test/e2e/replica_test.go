package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// This file reads the Kinesis stream the way any consumer would, with the
// AWS SDK and encoding/json alone (nothing of cdcd's), rebuilds the tables
// from the records and compares them with the source.

// wireRecord is a record as a plain JSON reader sees it, with the partition
// key Kinesis stored it under.
type wireRecord struct {
	cdcRecord
	partitionKey string
}

// readKinesis returns every record of the harness's stream, shard by shard,
// each shard in its order.
func (h *harness) readKinesis(ctx context.Context) [][]wireRecord {
	h.t.Helper()
	return readKinesisStream(ctx, h.t, h.env, h.kinesis)
}

// readKinesisStream returns every record of Kinesis stream name, shard by
// shard, each shard in its order.
func readKinesisStream(ctx context.Context, t *testing.T, env testenv.Env, name string) [][]wireRecord {
	t.Helper()
	client := testenv.KinesisClient(t, env, "")
	ls, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatalf("list shards: %v", err)
	}
	var out [][]wireRecord
	for _, s := range ls.Shards {
		it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(name), ShardId: s.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatalf("shard iterator: %v", err)
		}
		var recs []wireRecord
		for iter := it.ShardIterator; iter != nil; {
			res, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatalf("get records: %v", err)
			}
			for _, r := range res.Records {
				var w wireRecord
				if err := json.Unmarshal(r.Data, &w.cdcRecord); err != nil {
					t.Fatalf("record is not JSON: %v: %q", err, r.Data)
				}
				w.raw, w.partitionKey = string(r.Data), aws.ToString(r.PartitionKey)
				recs = append(recs, w)
			}
			iter = res.NextShardIterator
			if len(res.Records) == 0 && aws.ToInt64(res.MillisBehindLatest) == 0 {
				break
			}
		}
		out = append(out, recs)
	}
	return out
}

// canonical is a row image as JSON with its keys sorted, restricted to cols
// when cols is not empty.
func canonical(img map[string]json.RawMessage, cols []string) string {
	keys := slices.Sorted(maps.Keys(img))
	if len(cols) > 0 {
		keys = slices.Sorted(slices.Values(cols))
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:", k)
		v, ok := img[k]
		if !ok {
			v = json.RawMessage(`"<absent>"`)
		}
		var c bytes.Buffer
		if err := json.Compact(&c, v); err != nil {
			c.WriteString(`"<bad json>"`)
		}
		b.Write(c.Bytes())
	}
	b.WriteByte('}')
	return b.String()
}

// keyedReplica applies the records of table to rows keyed by pk, last
// writer wins by source.ts_ns: any delivery order converges.
func keyedReplica(shards [][]wireRecord, schema, table string, pk []string) map[string]string {
	type version struct {
		ts  int64
		row string // "" for a deleted row
	}
	rows := map[string]version{}
	each(shards, func(r wireRecord) {
		if r.Source.Schema != schema || r.Source.Table != table {
			return
		}
		img, row := r.After, ""
		if r.Op == "d" {
			img = r.Before
		} else {
			row = canonical(r.After, nil)
		}
		k := canonical(img, pk)
		if v, ok := rows[k]; !ok || v.ts < r.Source.TsNs {
			rows[k] = version{r.Source.TsNs, row}
		}
	})
	out := map[string]string{}
	for k, v := range rows {
		if v.row != "" {
			out[k] = v.row
		}
	}
	return out
}

// sourceRows reads table's rows as JSON objects of cols, keyed by pk.
func (h *harness) sourceRows(ctx context.Context, table string, pk, cols []string) map[string]string {
	h.t.Helper()
	out := map[string]string{}
	for _, img := range h.sourceImages(ctx, table, cols) {
		out[canonical(img, pk)] = canonical(img, nil)
	}
	return out
}

// sourceImages reads table's rows as PostgreSQL's JSON of cols.
func (h *harness) sourceImages(ctx context.Context, table string, cols []string) []map[string]json.RawMessage {
	h.t.Helper()
	rows, err := h.db.Query(ctx, `SELECT row_to_json(x)::text FROM (SELECT `+strings.Join(cols, ", ")+` FROM `+table+`) x`)
	if err != nil {
		h.t.Fatalf("read %s: %v", table, err)
	}
	texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		h.t.Fatalf("read %s: %v", table, err)
	}
	out := make([]map[string]json.RawMessage, len(texts))
	for i, text := range texts {
		if err := json.Unmarshal([]byte(text), &out[i]); err != nil {
			h.t.Fatal(err)
		}
	}
	return out
}

// waitKeyed waits until the records of public.table, applied by primary key
// pk, equal the source's rows of cols, and returns what it read.
func (h *harness) waitKeyed(table string, pk, cols []string) [][]wireRecord {
	h.t.Helper()
	want := h.sourceRows(context.Background(), table, pk, cols)
	return h.waitConverged(60*time.Second, want, func(s [][]wireRecord) map[string]string {
		return keyedReplica(s, "public", table, pk)
	})
}

// each calls f with every record read, shard by shard.
func each(shards [][]wireRecord, f func(r wireRecord)) {
	for _, shard := range shards {
		for _, r := range shard {
			f(r)
		}
	}
}

// waitConverged reads Kinesis until replica(shards) equals want, and fails
// with the difference after timeout.
func (h *harness) waitConverged(timeout time.Duration, want map[string]string, replica func([][]wireRecord) map[string]string) [][]wireRecord {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	deadline := time.Now().Add(timeout)
	for {
		shards := h.readKinesis(ctx)
		got := replica(shards)
		if maps.Equal(got, want) {
			return shards
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the stream's rows do not match the source after %v:\n%s", timeout, rowDiff(want, got))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// rowDiff lists the rows that differ between want and got.
func rowDiff(want, got map[string]string) string {
	var lines []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			lines = append(lines, "missing "+w)
		} else if g != w {
			lines = append(lines, "want "+w+"\n got "+g)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			lines = append(lines, "extra "+g)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
