package sink

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/test/kinesisfake"
)

// BenchmarkSink measures records through Submit, batching, the SDK's
// serialisation and signing, HTTP to a counting kinesisfake, and Delivered.
// One op is one record (~200-byte JSON, 26-byte key, 10 records a
// transaction); allocs/op are per record and include the SDK and the
// in-process server. With no latency the client and server share the CPU,
// so more requests in flight cannot help; the latency=10ms cases show what
// MaxInFlight is for.
func BenchmarkSink(b *testing.B) {
	for _, bc := range []struct {
		ordering record.Ordering
		inFlight int
		latency  time.Duration
	}{
		{record.Unordered, 1, 0},
		{record.Unordered, 8, 0},
		{record.Row, 1, 0},
		{record.Row, 8, 0},
		{record.Unordered, 1, 10 * time.Millisecond},
		{record.Unordered, 8, 10 * time.Millisecond},
	} {
		name := fmt.Sprintf("%s/inflight=%d", strings.ToLower(string(bc.ordering)), bc.inFlight)
		if bc.latency > 0 {
			name += "/latency=" + bc.latency.String()
		}
		b.Run(name, func(b *testing.B) {
			fake := kinesisfake.New(b, kinesisfake.Options{Delay: bc.latency})
			benchSink(b, fake.Client(), bc.ordering, bc.inFlight)
		})
	}
}

// BenchmarkSinkOverhead is the sink alone: the PutRecords fake accepts
// everything without serialising, so records/s is the ceiling the sink's
// queueing, ordering and tracking put on a pipeline.
func BenchmarkSinkOverhead(b *testing.B) {
	var mu sync.Mutex
	outs := map[int]*kinesis.PutRecordsOutput{}
	api := &fakeAPI{put: func(_ context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		mu.Lock()
		defer mu.Unlock()
		out, ok := outs[len(in.Records)]
		if !ok {
			out = accepted(in)
			outs[len(in.Records)] = out
		}
		return out, nil
	}}
	for _, ordering := range []record.Ordering{record.Unordered, record.Row} {
		for _, inFlight := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/inflight=%d", strings.ToLower(string(ordering)), inFlight), func(b *testing.B) {
				benchSink(b, api, ordering, inFlight)
			})
		}
	}
}

func benchSink(b *testing.B, api PutRecordsAPI, ordering record.Ordering, inFlight int) {
	reg := prometheus.NewRegistry()
	m := streamMetrics(b, reg, "bench")
	// 8 MiB queued is ~35k records, fewer than the pool's distinct keys, so
	// ROW mode sees what it sees in production (rows rarely repeat within a
	// queue's worth of changes) rather than a few hot keys.
	s, err := New(Config{StreamName: "bench", Ordering: ordering, MaxInFlight: inFlight, Metrics: m, QueueBytes: 8 << 20}, api)
	if err != nil {
		b.Fatal(err)
	}
	const perTxn = 10
	rng := rand.New(rand.NewPCG(1, 2))
	pool := make([]record.Record, 1<<16)
	for i := range pool {
		key := fmt.Sprintf("%026x", rng.Uint64())
		data := fmt.Sprintf(`{"type":"full","op":"u","before":null,"after":{"id":%d,"v":"%s"},"source":{"version":"1.0","txId":"ffthunp5stx6ffs2vyfqoatmfu","schema":"public","table":"t"}}`,
			i, strings.Repeat("x", 40))
		pool[i] = record.Record{PartitionKey: key, Data: []byte(data)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	lsn := uint64(0)
	for i := 0; i < b.N; i += perTxn {
		n := min(perTxn, b.N-i)
		j := i % (len(pool) - perTxn)
		lsn++
		if err := s.Submit(ctx, lsn, pool[j:j+n]); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Drain(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	if s.Delivered() != lsn {
		b.Fatalf("Delivered = %d, want %d", s.Delivered(), lsn)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	b.ReportMetric(recordsPerCall(b, reg), "records/call")
}

// recordsPerCall is the mean of the records-per-call histogram.
func recordsPerCall(b *testing.B, reg *prometheus.Registry) float64 {
	fams, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "cdcd_put_records_records_per_call" {
			h := f.GetMetric()[0].GetHistogram()
			return h.GetSampleSum() / float64(h.GetSampleCount())
		}
	}
	return 0
}
