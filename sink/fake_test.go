package sink

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/record"
)

// fakeAPI is the scripted PutRecords: each test sets put.
type fakeAPI struct {
	put func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error)
}

func (f *fakeAPI) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	return f.put(ctx, in)
}

var _ PutRecordsAPI = (*fakeAPI)(nil)

// accepted returns a PutRecords result accepting every entry.
func accepted(in *kinesis.PutRecordsInput) *kinesis.PutRecordsOutput {
	out := &kinesis.PutRecordsOutput{FailedRecordCount: aws.Int32(0), Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	for i := range out.Records {
		out.Records[i] = types.PutRecordsResultEntry{SequenceNumber: aws.String("1"), ShardId: aws.String("shardId-000000000000")}
	}
	return out
}

// rejectAll returns a result in which every entry failed with code.
func rejectAll(in *kinesis.PutRecordsInput, code string) *kinesis.PutRecordsOutput {
	out := &kinesis.PutRecordsOutput{FailedRecordCount: aws.Int32(int32(len(in.Records))), Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	for i := range out.Records {
		out.Records[i] = types.PutRecordsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String("scripted " + code)}
	}
	return out
}

// reports collects Report calls.
type reports struct {
	mu    sync.Mutex
	codes []codes.Code
	errs  []error
}

func (r *reports) report(c codes.Code, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.codes = append(r.codes, c)
	r.errs = append(r.errs, err)
}

func (r *reports) get() []codes.Code {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]codes.Code(nil), r.codes...)
}

// fastBackoff keeps retries quick in tests.
func fastBackoff() backoff.BackOff { return backoff.NewConstantBackOff(100 * time.Microsecond) }

// testConfig is a config for unit tests: fast retries, immediate reports.
func testConfig(o record.Ordering) Config {
	return Config{
		StreamName:  "test",
		Ordering:    o,
		Linger:      time.Millisecond,
		Backoff:     fastBackoff,
		ImpairAfter: time.Nanosecond,
	}
}

// start makes a sink and runs it until the test ends; stop cancels Run and
// waits for it, failing the test if it does not return promptly.
func start(t *testing.T, cfg Config, api PutRecordsAPI) (s *Sink, stop func()) {
	t.Helper()
	s, err := New(cfg, api)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(2 * time.Second):
				t.Errorf("Run did not return within 2s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return s, stop
}

func recs(key string, data ...string) []record.Record {
	out := make([]record.Record, len(data))
	for i, d := range data {
		out[i] = record.Record{PartitionKey: key, Data: []byte(d)}
	}
	return out
}

func drain(t *testing.T, s *Sink, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := s.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v (Delivered %d)", err, s.Delivered())
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// streamMetrics registers the sink's metrics on reg and returns stream's.
func streamMetrics(t testing.TB, reg *prometheus.Registry, stream string) *StreamMetrics {
	t.Helper()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m.Stream(stream)
}

// metricValue sums the values of the named metric family matching labels.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			sum += value(m)
		}
	}
	return sum
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

var errScripted = errors.New("scripted")
