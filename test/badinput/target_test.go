package badinput

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// requestID matches the request id in an AWS error, which differs on
// every call.
var requestID = regexp.MustCompile(`RequestID: [0-9a-f-]+,`)

// TestKinesisStreamMissing: a target stream that does not exist fails the
// stream at once, naming it.
func TestKinesisStreamMissing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noKinesis: true})
	f.createTable()
	f.start()
	v := f.waitStatus("FAILED")
	v.message = requestID.ReplaceAllString(v.message, "RequestID: ID,")
	wantReason(t, v, "KINESIS_STREAM_NOT_FOUND", fmt.Sprintf("describe stream summary: operation error Kinesis: DescribeStreamSummary, https response error StatusCode: 400, RequestID: ID, ResourceNotFoundException: Stream %s under account 000000000000 not found: create it (aws kinesis create-stream --stream-name %s --region %s), or correct target.kinesis_stream (see docs/runbook.md#kinesis_stream_not_found)", f.kinesis, f.kinesis, f.env.Region))
}

// TestKinesisStreamResharding: a shard split while cdcd writes is no
// fault: every row arrives, on the parent shard or its children.
func TestKinesisStreamResharding(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{})
	f.streaming(1, 2)
	kin := testenv.KinesisClient(t, f.env, "")
	ctx := context.Background()
	shards, err := kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: &f.kinesis})
	if err != nil {
		t.Fatal(err)
	}
	half := new(big.Int).Lsh(big.NewInt(1), 127)
	_, err = kin.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: &f.kinesis,
		ShardToSplit: shards.Shards[0].ShardId, NewStartingHashKey: aws.String(half.String())})
	if err != nil {
		t.Fatal(err)
	}
	f.insert(3, 4, 5, 6)
	wantIDs(t, f.waitRecords(6), "c", "1", "2", "3", "4", "5", "6")
	if v, err := f.getStream(); err != nil || v.status != "ACTIVE" {
		t.Errorf("GetStream after the split: %+v, %v", v, err)
	}
}

// TestRecordOverEveryLimit: a 2.5 MiB row is over Kinesis' record limit
// (1 MiB), queue_bytes and memory_budget (1 MiB each): it spills, arrives
// chunked, and reassembles to the row. (No single record can be over the
// request limit: every fragment fits one request.)
func TestRecordOverEveryLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{delivery: "queue_bytes = 1048576\nmemory_budget = 1048576"})
	f.createTable()
	f.start()
	f.waitStatus("ACTIVE")
	f.exec(`INSERT INTO t SELECT 1, string_agg(md5(i::text), '') FROM generate_series(1, 5 * 16384) i`)
	var want string
	if err := f.db.QueryRow(context.Background(), `SELECT encode(sha256(convert_to(v, 'UTF8')), 'hex') FROM t`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	// Reading and decoding megabytes is slow under the race detector: wait
	// until the slot confirms the row, which cdcd does once Kinesis has
	// accepted every record of it, and read once.
	f.waitConfirmed()
	raws := f.rawRecords()
	r := record.NewReassembler(record.ReassemblerConfig{})
	var full *record.Message
	for _, data := range raws {
		m, err := record.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if done, err := r.Add(m); err != nil {
			t.Fatal(err)
		} else if done != nil {
			full = done
		}
	}
	if full == nil {
		t.Fatalf("%d records do not reassemble to the row", len(raws))
	}
	v, _ := full.After.Get("v")
	var text string
	if err := json.Unmarshal(v, &text); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(text))
	if got := hex.EncodeToString(sum[:]); got != want || len(text) != 5<<19 {
		t.Errorf("reassembled value: %d bytes, sha256 %s; want %d, %s", len(text), got, 5<<19, want)
	}
	if v, err := f.getStream(); err != nil || v.status != "ACTIVE" {
		t.Errorf("GetStream: %+v, %v", v, err)
	}
}
