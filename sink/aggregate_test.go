package sink

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdcd-dev/cdcd/record"
)

// TestAggregate: with aggregation on, many small records travel in few
// Kinesis records within every limit; an aggregate that fails is retried
// whole, and what lands deaggregates to every record exactly once after
// its retry, in submission order per aggregate.
func TestAggregate(t *testing.T) {
	var mu sync.Mutex
	var landed [][]byte // accepted Kinesis records' data
	calls, failedOnce := 0, false
	cfg := testConfig(record.Unordered)
	cfg.Aggregate = true
	cfg.MaxRecordBytes, cfg.MaxRequestBytes, cfg.MaxRecordsPerCall = 2000, 6000, 5
	api := &fakeAPI{put: func(_ context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if len(in.Records) > cfg.MaxRecordsPerCall {
			t.Errorf("call of %d records, over %d", len(in.Records), cfg.MaxRecordsPerCall)
		}
		out, size := accepted(in), 0
		for i, e := range in.Records {
			n := len(e.Data) + len(aws.ToString(e.PartitionKey))
			size += n
			if n > cfg.MaxRecordBytes {
				t.Errorf("Kinesis record of %d bytes, over %d", n, cfg.MaxRecordBytes)
			}
			if !failedOnce && record.IsKPLAggregate(e.Data) {
				failedOnce = true
				out.Records[i] = types.PutRecordsResultEntry{ErrorCode: aws.String("InternalFailure"), ErrorMessage: aws.String("injected")}
				continue
			}
			landed = append(landed, e.Data)
		}
		if size > cfg.MaxRequestBytes {
			t.Errorf("request of %d bytes, over %d", size, cfg.MaxRequestBytes)
		}
		return out, nil
	}}
	s, _ := start(t, cfg, api)
	const txns, per = 40, 10
	for i := range txns {
		rs := make([]record.Record, per)
		for j := range rs {
			rs[j] = record.Record{PartitionKey: fmt.Sprintf("%032d", i*per+j), Data: fmt.Appendf(nil, `{"n":%04d,"pad":"0123456789abcdef"}`, i*per+j)}
		}
		if err := s.Submit(context.Background(), uint64(i+1), rs); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, s, 5*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if !failedOnce {
		t.Fatal("no aggregate was sent")
	}
	seen := map[string]int{}
	for _, data := range landed {
		inner, err := record.Deaggregate(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range inner {
			seen[string(d)]++
		}
	}
	if len(seen) != txns*per {
		t.Fatalf("%d distinct records landed, want %d", len(seen), txns*per)
	}
	for d, n := range seen {
		if n != 1 {
			t.Errorf("record %s landed %d times", d, n)
		}
	}
	if len(landed) >= txns*per/4 {
		t.Errorf("%d Kinesis records for %d records: not aggregated", len(landed), txns*per)
	}
	if s.Delivered() != txns {
		t.Errorf("Delivered %d, want %d", s.Delivered(), txns)
	}
}

// TestAggregateNeedsUnordered: ROW ordering with aggregation is refused,
// naming the key and why.
func TestAggregateNeedsUnordered(t *testing.T) {
	cfg := testConfig(record.Row)
	cfg.Aggregate = true
	_, err := New(cfg, &fakeAPI{})
	if err == nil || !strings.Contains(err.Error(), "aggregation") || !strings.Contains(err.Error(), "UNORDERED") {
		t.Fatalf("New = %v, want a refusal naming aggregation and UNORDERED", err)
	}
}
