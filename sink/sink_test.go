package sink

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/record"
)

// TestReport replays every classification case through a running sink: the
// first attempt fails, Report gets the code, nothing is delivered until the
// retry succeeds, and then Report gets ("", nil).
func TestReport(t *testing.T) {
	for _, tc := range classifyCases {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			api := &fakeAPI{put: func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
				if calls.Add(1) > 1 {
					return accepted(in), nil
				}
				if tc.perRecord != "" {
					return rejectAll(in, tc.perRecord), nil
				}
				return nil, tc.err
			}}
			var r reports
			cfg := testConfig(record.Unordered)
			cfg.Report = r.report
			rec := recs("k", "payload")
			var over *OversizeError
			local := errors.As(tc.err, &over)
			if local {
				cfg.MaxRecordBytes = 4 // "k"+"payload" is 8 bytes: refused before any call
			}
			s, _ := start(t, cfg, api)
			if err := s.Submit(context.Background(), 7, rec); err != nil {
				t.Fatal(err)
			}
			if local {
				eventually(t, "oversize report", func() bool { return len(r.get()) > 0 })
				time.Sleep(5 * time.Millisecond) // more retries: still refused, still undelivered
				if got := r.get(); !slices.Equal(got, []codes.Code{tc.want}) {
					t.Errorf("reports = %v, want [%s]", got, tc.want)
				}
				if calls.Load() != 0 || s.Delivered() != 0 {
					t.Errorf("oversize record was sent (%d calls) or delivered (%d)", calls.Load(), s.Delivered())
				}
				return
			}
			drain(t, s, 5*time.Second)
			// The recovery report follows the acceptance that Drain sees.
			eventually(t, "recovery report", func() bool { return len(r.get()) >= 2 })
			if got := r.get(); !slices.Equal(got, []codes.Code{tc.want, ""}) {
				t.Errorf("reports = %v, want [%s \"\"]", got, tc.want)
			}
			r.mu.Lock()
			if r.errs[0] == nil || r.errs[1] != nil {
				t.Errorf("report errors = %v, want an error then nil", r.errs)
			}
			r.mu.Unlock()
			if s.Delivered() != 7 {
				t.Errorf("Delivered = %d, want 7", s.Delivered())
			}
		})
	}
}

// TestFirstAcceptedBatchReported: a healthy sink reports ("", nil) once, on
// the first batch Kinesis accepts, so that a code the stream carries from
// before a restart is cleared; later batches report nothing.
func TestFirstAcceptedBatchReported(t *testing.T) {
	var calls atomic.Int32
	api := &fakeAPI{put: func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		calls.Add(1)
		return accepted(in), nil
	}}
	var r reports
	cfg := testConfig(record.Unordered)
	cfg.Report = r.report
	s, _ := start(t, cfg, api)
	if got := r.get(); len(got) != 0 {
		t.Fatalf("reports %v before anything was sent", got)
	}
	for lsn := range uint64(3) {
		if err := s.Submit(context.Background(), lsn+1, recs("k", "payload")); err != nil {
			t.Fatal(err)
		}
		drain(t, s, 5*time.Second)
	}
	eventually(t, "first success report", func() bool { return len(r.get()) > 0 })
	time.Sleep(5 * time.Millisecond) // a second report would show by now
	if got := r.get(); !slices.Equal(got, []codes.Code{""}) || calls.Load() != 3 {
		t.Errorf("reports = %q after %d calls, want one success", got, calls.Load())
	}
}

// TestOutOfOrderCompletion: with two requests in flight, the later
// transaction's request completes first; Delivered must wait for the earlier.
func TestOutOfOrderCompletion(t *testing.T) {
	type call struct {
		in    *kinesis.PutRecordsInput
		reply chan struct{}
	}
	calls := make(chan call)
	api := &fakeAPI{put: func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		c := call{in, make(chan struct{})}
		calls <- c
		<-c.reply
		return accepted(in), nil
	}}
	reg := prometheus.NewRegistry()
	m := streamMetrics(t, reg, "test")
	cfg := testConfig(record.Unordered)
	cfg.MaxRecordsPerCall, cfg.MaxInFlight, cfg.Linger, cfg.Metrics = 1, 2, time.Nanosecond, m
	s, _ := start(t, cfg, api)
	ctx := context.Background()
	if err := s.Submit(ctx, 10, recs("a", "first")); err != nil {
		t.Fatal(err)
	}
	if err := s.Submit(ctx, 20, recs("b", "second")); err != nil {
		t.Fatal(err)
	}
	c1, c2 := <-calls, <-calls
	if string(c1.in.Records[0].Data) != "first" {
		c1, c2 = c2, c1
	}
	close(c2.reply)
	published := func(n float64) func() bool {
		return func() bool { return metricValue(t, reg, "cdcd_published_records_total", nil) == n }
	}
	eventually(t, "second request accepted", published(1))
	if d := s.Delivered(); d != 0 {
		t.Fatalf("Delivered = %d after only the later transaction was accepted, want 0", d)
	}
	close(c1.reply)
	eventually(t, "first request accepted", published(2))
	eventually(t, "Delivered 20", func() bool { return s.Delivered() == 20 })
}

// TestCancelMidBackoff: a batch failing with a long backoff; cancelling Run
// returns promptly and nothing counts as delivered.
func TestCancelMidBackoff(t *testing.T) {
	var calls atomic.Int32
	api := &fakeAPI{put: func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		calls.Add(1)
		return nil, &types.AccessDeniedException{}
	}}
	reg := prometheus.NewRegistry()
	m := streamMetrics(t, reg, "test")
	var r reports
	cfg := testConfig(record.Row)
	cfg.Backoff = func() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) }
	cfg.Report, cfg.Metrics = r.report, m
	s, stop := start(t, cfg, api)
	if err := s.Submit(context.Background(), 5, recs("k", "a", "b")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "access denied report", func() bool { return len(r.get()) == 1 })
	begin := time.Now()
	stop()
	if d := time.Since(begin); d > time.Second {
		t.Errorf("Run took %v to return after cancel", d)
	}
	if s.Delivered() != 0 || metricValue(t, reg, "cdcd_published_records_total", nil) != 0 {
		t.Errorf("Delivered = %d, published = %v; want nothing delivered", s.Delivered(), metricValue(t, reg, "cdcd_published_records_total", nil))
	}
	if calls.Load() != 1 {
		t.Errorf("%d calls, want 1 (the retry is an hour away)", calls.Load())
	}
	if err := s.Submit(context.Background(), 6, nil); !errors.Is(err, ErrStopped) {
		t.Errorf("Submit after stop = %v, want ErrStopped", err)
	}
	if err := s.Drain(context.Background()); !errors.Is(err, ErrStopped) {
		t.Errorf("Drain after stop = %v, want ErrStopped", err)
	}
}

// TestCancelMidCall: a PutRecords call that hangs until its context ends.
func TestCancelMidCall(t *testing.T) {
	started := make(chan struct{}, 1)
	api := &fakeAPI{put: func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	s, stop := start(t, testConfig(record.Unordered), api)
	if err := s.Submit(context.Background(), 1, recs("k", "a")); err != nil {
		t.Fatal(err)
	}
	<-started
	stop()
	if s.Delivered() != 0 {
		t.Errorf("Delivered = %d, want 0", s.Delivered())
	}
}

// TestThrottlingStorm: whole-call and per-record throttling for a while.
// Within ImpairAfter no code is reported, only the first accepted batch;
// past it, one KINESIS_THROUGHPUT_EXCEEDED and one recovery.
func TestThrottlingStorm(t *testing.T) {
	for _, tc := range []struct {
		name        string
		impairAfter time.Duration
		want        []codes.Code
	}{
		{"short storm", time.Hour, []codes.Code{""}},
		{"lag grows", 10 * time.Millisecond, []codes.Code{codes.KinesisThroughputExceeded, ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			stormUntil := time.Now().Add(60 * time.Millisecond)
			api := &fakeAPI{put: func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
				n := calls.Add(1)
				if n > 40 && time.Now().After(stormUntil) { // at least 40 throttled calls and 60ms
					return accepted(in), nil
				}
				switch n % 4 {
				case 0:
					return nil, &types.ProvisionedThroughputExceededException{}
				case 1:
					return nil, &types.LimitExceededException{}
				case 2:
					return nil, &types.KMSThrottlingException{}
				}
				out := accepted(in) // accept every other entry, throttle the rest
				for i := 0; i < len(out.Records); i += 2 {
					out.Records[i] = rejectAll(in, "ProvisionedThroughputExceededException").Records[i]
				}
				return out, nil
			}}
			reg := prometheus.NewRegistry()
			m := streamMetrics(t, reg, "test")
			var r reports
			cfg := testConfig(record.Row)
			cfg.ImpairAfter, cfg.Report, cfg.Metrics = tc.impairAfter, r.report, m
			cfg.Backoff = func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }
			s, _ := start(t, cfg, api)
			for i := range 50 {
				keys := []string{"a", "b", "c", "d"}
				if err := s.Submit(context.Background(), uint64(i+1), recs(keys[i%4], "x", "y")); err != nil {
					t.Fatal(err)
				}
			}
			drain(t, s, 10*time.Second)
			eventually(t, "recovery report", func() bool { return len(r.get()) >= len(tc.want) })
			if got := r.get(); !slices.Equal(got, tc.want) {
				t.Errorf("reports = %v, want %v", got, tc.want)
			}
			if got := metricValue(t, reg, "cdcd_published_records_total", nil); got != 100 {
				t.Errorf("published %v records, want 100", got)
			}
			if metricValue(t, reg, "cdcd_put_records_failed_records_total", map[string]string{"code": "ProvisionedThroughputExceededException"}) == 0 ||
				metricValue(t, reg, "cdcd_put_records_retries_total", map[string]string{"code": "LimitExceededException"}) == 0 {
				t.Errorf("throttles not counted by code")
			}
		})
	}
}

// TestSubmitBound: Submit blocks at QueueBytes and gives up with ctx,
// enqueueing nothing; a transaction larger than the bound is admitted whole
// when the queue is below it.
func TestSubmitBound(t *testing.T) {
	release := make(chan struct{})
	var sent atomic.Int32
	api := &fakeAPI{put: func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		sent.Add(int32(len(in.Records)))
		return accepted(in), nil
	}}
	cfg := testConfig(record.Unordered)
	cfg.QueueBytes = 10
	s, _ := start(t, cfg, api)
	big := recs("k", strings.Repeat("x", 30)) // 31 bytes > QueueBytes: admitted whole into an empty queue
	if err := s.Submit(context.Background(), 1, big); err != nil {
		t.Fatalf("Submit into an empty queue: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Submit(ctx, 2, recs("k", "blocked")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit over the bound = %v, want context.DeadlineExceeded", err)
	}
	close(release)
	drain(t, s, 5*time.Second)
	if s.Delivered() != 1 || sent.Load() != 1 {
		t.Errorf("Delivered = %d, sent %d records; the cancelled transaction must not be enqueued", s.Delivered(), sent.Load())
	}
	if err := s.Submit(context.Background(), 3, recs("k", "after")); err != nil {
		t.Fatal(err)
	}
	drain(t, s, 5*time.Second)
	if s.Delivered() != 3 {
		t.Errorf("Delivered = %d, want 3", s.Delivered())
	}
	if err := s.Submit(context.Background(), 2, nil); err == nil {
		t.Errorf("Submit with a decreasing lsn succeeded")
	}
}

// TestEmptyTransactions: transactions without records advance Delivered,
// but only past everything before them.
func TestEmptyTransactions(t *testing.T) {
	gate := make(chan struct{})
	api := &fakeAPI{put: func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		<-gate
		return accepted(in), nil
	}}
	s, _ := start(t, testConfig(record.Row), api)
	ctx := context.Background()
	if err := s.Submit(ctx, 1, nil); err != nil {
		t.Fatal(err)
	}
	if s.Delivered() != 1 {
		t.Fatalf("Delivered = %d after an empty first transaction, want 1", s.Delivered())
	}
	if err := s.Submit(ctx, 2, recs("k", "a")); err != nil {
		t.Fatal(err)
	}
	if err := s.Submit(ctx, 3, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if s.Delivered() != 1 {
		t.Fatalf("Delivered = %d while transaction 2 is in flight, want 1", s.Delivered())
	}
	close(gate)
	drain(t, s, 5*time.Second)
	if s.Delivered() != 3 {
		t.Errorf("Delivered = %d, want 3", s.Delivered())
	}
}

// TestEmptyTransactionsBounded: while Kinesis holds a transaction's
// records, any number of transactions without records behind it cost one
// tracker entry per run of them, and Delivered reaches each run's end only
// once everything before it is accepted.
func TestEmptyTransactionsBounded(t *testing.T) {
	gate := make(chan struct{})
	api := &fakeAPI{put: func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		<-gate
		return accepted(in), nil
	}}
	reg := prometheus.NewRegistry()
	cfg := testConfig(record.Unordered)
	cfg.Metrics = streamMetrics(t, reg, "test")
	s, _ := start(t, cfg, api)
	ctx := context.Background()
	lsn := uint64(0)
	submit := func(rs []record.Record) {
		t.Helper()
		lsn++
		if err := s.Submit(ctx, lsn, rs); err != nil {
			t.Fatal(err)
		}
	}
	submit(recs("k", "held"))
	for range 10000 {
		submit(nil)
	}
	held := lsn
	submit(recs("k", "second"))
	for range 10000 {
		submit(nil)
	}
	if n := metricValue(t, reg, "cdcd_sink_queued_transactions", nil); n != 4 {
		t.Errorf("%v transactions tracked behind an undelivered one, want 4 (two with records, two runs without)", n)
	}
	if d := s.Delivered(); d != 0 {
		t.Fatalf("Delivered = %d before Kinesis accepted anything, want 0", d)
	}
	close(gate)
	eventually(t, "the first run delivered", func() bool { return s.Delivered() >= held })
	drain(t, s, 5*time.Second)
	if d := s.Delivered(); d != lsn {
		t.Errorf("Delivered = %d after draining, want %d", d, lsn)
	}
	if n := metricValue(t, reg, "cdcd_sink_queued_transactions", nil); n != 0 {
		t.Errorf("%v transactions tracked after draining, want 0", n)
	}
}

// TestBatching: linger fills one request under light load; limits split
// larger loads; the partition key counts toward the request bytes.
func TestBatching(t *testing.T) {
	var mu sync.Mutex
	var sizes [][2]int // records, bytes per call
	api := &fakeAPI{put: func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		b := 0
		for _, e := range in.Records {
			b += len(e.Data) + len(*e.PartitionKey)
		}
		mu.Lock()
		sizes = append(sizes, [2]int{len(in.Records), b})
		mu.Unlock()
		return accepted(in), nil
	}}
	cfg := testConfig(record.Unordered)
	cfg.Linger, cfg.MaxRecordsPerCall, cfg.MaxRequestBytes, cfg.MaxRecordBytes, cfg.MaxInFlight = 50*time.Millisecond, 4, 40, 20, 1
	s, _ := start(t, cfg, api)
	for i := range 3 {
		if err := s.Submit(context.Background(), uint64(i+1), recs("kk", "12345678")); err != nil { // 10 bytes each
			t.Fatal(err)
		}
	}
	eventually(t, "lingered batch", func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 1 })
	mu.Lock()
	if sizes[0] != [2]int{3, 30} {
		t.Errorf("lingered call = %v, want 3 records of 30 bytes", sizes[0])
	}
	sizes = nil
	mu.Unlock()
	for i := range 10 {
		if err := s.Submit(context.Background(), uint64(i+10), recs("kk", "1234567890123")); err != nil { // 15 bytes each
			t.Fatal(err)
		}
	}
	drain(t, s, 5*time.Second)
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, c := range sizes {
		total += c[0]
		if c[0] > 4 || c[1] > 40 {
			t.Errorf("call of %d records, %d bytes exceeds 4 records / 40 bytes", c[0], c[1])
		}
	}
	if total != 10 {
		t.Errorf("sent %d records, want 10", total)
	}
}

func TestNewValidates(t *testing.T) {
	api := &fakeAPI{}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no stream", Config{Ordering: record.Row}, "stream_name"},
		{"bad arn", Config{StreamARN: "stream/x", Ordering: record.Row}, "stream_arn"},
		{"no ordering", Config{StreamName: "s"}, "ordering"},
		{"too many records", Config{StreamName: "s", Ordering: record.Row, MaxRecordsPerCall: 501}, "max_records_per_call"},
		{"record over request", Config{StreamName: "s", Ordering: record.Row, MaxRequestBytes: 100, MaxRecordBytes: 200}, "max_record_bytes"},
		{"negative linger", Config{StreamName: "s", Ordering: record.Row, Linger: -1}, "linger"},
		{"negative in flight", Config{StreamName: "s", Ordering: record.Row, MaxInFlight: -1}, "max_in_flight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, api)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	s, err := New(Config{StreamARN: "arn:aws:kinesis:us-east-1:1:stream/s", Ordering: record.Unordered}, api)
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.MaxRecordsPerCall != 500 || s.cfg.MaxRequestBytes != 5<<20 || s.cfg.MaxRecordBytes != 1<<20 || s.cfg.MaxInFlight != 4 {
		t.Errorf("defaults not applied: %+v", s.cfg)
	}
	if s.streamName != nil || *s.streamARN == "" {
		t.Errorf("ARN-only config must send StreamARN only")
	}
	large, err := New(Config{StreamName: "s", Ordering: record.Row, MaxRecordBytes: 8 << 20}, api)
	if err != nil {
		t.Fatal(err)
	}
	if large.cfg.MaxRequestBytes != 10<<20 {
		t.Errorf("MaxRequestBytes = %d for 8 MiB records, want 10 MiB", large.cfg.MaxRequestBytes)
	}
}

func TestDescribeTarget(t *testing.T) {
	api := &fakeDescribe{}
	for _, tc := range []struct {
		name string
		kib  *int32
		want int
	}{
		{"reported", ptr(int32(10240)), 10 << 20},
		{"not reported (kinesalite)", nil, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api.out = &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{
				StreamName: ptr("s"), StreamARN: ptr("arn:aws:kinesis:us-east-1:1:stream/s"), OpenShardCount: ptr(int32(4)),
				StreamStatus: types.StreamStatusActive, EncryptionType: types.EncryptionTypeKms, KeyId: ptr("alias/k"),
				MaxRecordSizeInKiB: tc.kib,
			}}
			got, err := DescribeTarget(context.Background(), api, "s", "")
			if err != nil {
				t.Fatal(err)
			}
			if got.MaxRecordBytes != tc.want || got.Shards != 4 || got.KeyID != "alias/k" || got.EncryptionType != "KMS" || got.Status != "ACTIVE" {
				t.Errorf("DescribeTarget = %+v", got)
			}
			if *api.in.StreamName != "s" || api.in.StreamARN != nil {
				t.Errorf("addressed by %+v, want the name only", api.in)
			}
		})
	}
	api.err = &types.ResourceNotFoundException{}
	if _, err := DescribeTarget(context.Background(), api, "", "arn:x"); Classify(err) != codes.KinesisStreamNotFound {
		t.Errorf("DescribeTarget error %v classifies as %q", err, Classify(err))
	}
}

type fakeDescribe struct {
	in  *kinesis.DescribeStreamSummaryInput
	out *kinesis.DescribeStreamSummaryOutput
	err error
}

func (f *fakeDescribe) DescribeStreamSummary(_ context.Context, in *kinesis.DescribeStreamSummaryInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	f.in = in
	return f.out, f.err
}

func ptr[T any](v T) *T { return &v }
