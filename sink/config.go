package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/cenkalti/backoff/v4"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/retry"
)

// Kinesis limits (PutRecords API reference). A stream may raise its record
// limit to 10 MiB (MaxRecordSizeInKiB); requests may then carry 10 MiB.
const (
	MaxRecordsPerCall = 500
	DefaultRequestMax = 5 << 20
	LargeRequestMax   = 10 << 20
	DefaultRecordMax  = 1 << 20
)

// PutRecordsAPI is the one Kinesis call the sink makes.
type PutRecordsAPI interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

var _ PutRecordsAPI = (*kinesis.Client)(nil)

// Config configures a Sink. Zero values take the defaults noted.
type Config struct {
	// StreamName addresses the target (kinesalite rejects ARN-only
	// requests). StreamARN is sent only when StreamName is empty.
	StreamName string
	StreamARN  string
	// Ordering is record.Unordered or record.Row (docs/records.md#ordering); required.
	Ordering record.Ordering
	// Aggregate packs records into KPL aggregates (docs/records.md#aggregation);
	// UNORDERED only: an aggregate goes to one shard, which would move a
	// row's records between shards in ROW ordering.
	Aggregate bool

	MaxRecordsPerCall int           // default 500, at most 500
	MaxRequestBytes   int           // default 5 MiB (10 MiB if MaxRecordBytes > 5 MiB), at most 10 MiB
	MaxRecordBytes    int           // default 1 MiB (Target.MaxRecordBytes), incl. partition key
	Linger            time.Duration // default 20ms; how long a part-filled batch waits for more
	MaxInFlight       int           // default 4 concurrent PutRecords calls
	// QueueBytes bounds bytes submitted but not yet accepted (default
	// 64 MiB). Submit blocks while the bound is reached; it admits a whole
	// transaction as soon as the queue is below the bound, so the queue can
	// overshoot by at most one transaction: capture must split or spill
	// transactions larger than it wants to hold in memory.
	QueueBytes int
	// CallTimeout bounds one PutRecords call (default 30s); a timeout is
	// retried like any failure.
	CallTimeout time.Duration
	// ImpairAfter is how long a batch may keep failing with a transient
	// code (throttling, internal failure) before the code is reported
	// (default 30s): throttling is normal, and becomes
	// KINESIS_THROUGHPUT_EXCEEDED only when the same records stay
	// undelivered that long, that is when lag keeps growing. Other codes are
	// reported at their first occurrence.
	ImpairAfter time.Duration
	// Backoff makes one retry schedule per failing batch; default
	// exponential from 100ms to 5s with ±50% jitter and no elapsed-time
	// limit. A schedule returning backoff.Stop does not stop retries: the
	// sink never gives up on a record, it waits MaxBackoffWait instead.
	Backoff func() backoff.BackOff
	// Report is called when delivery fails with a classified code (for
	// transient codes, once they have lasted ImpairAfter), again when the
	// code changes, and with ("", nil) on the first success after a failure:
	// when every batch whose failure was reported has since been accepted
	// (a batch stuck on an oversize record keeps the stream impaired however
	// well the others go). The first batch the sink ever gets accepted while
	// nothing is impairing is reported with ("", nil) too, so that a code
	// the stream carries from before a restart is cleared by the evidence
	// of a working delivery. Calls are serialised; Report must not block or
	// call back into the sink.
	Report  func(code codes.Code, err error)
	Logger  *slog.Logger
	Metrics *StreamMetrics // may be nil
}

// MaxBackoffWait is the wait used when a Backoff schedule says Stop.
const MaxBackoffWait = 5 * time.Second

func (c Config) withDefaults() Config {
	if c.MaxRecordsPerCall == 0 {
		c.MaxRecordsPerCall = MaxRecordsPerCall
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = DefaultRecordMax
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = Target{MaxRecordBytes: c.MaxRecordBytes}.MaxRequestBytes()
	}
	if c.Linger == 0 {
		c.Linger = 20 * time.Millisecond
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 4
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = 64 << 20
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 30 * time.Second
	}
	if c.ImpairAfter == 0 {
		c.ImpairAfter = 30 * time.Second
	}
	if c.Backoff == nil {
		c.Backoff = DefaultBackoff
	}
	if c.Report == nil {
		c.Report = func(codes.Code, error) {}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// DefaultBackoff is the retry schedule used when Config.Backoff is nil.
// The sink takes a schedule rather than retrying through retry.Do because
// it must not give up on a record when a schedule says Stop, as Do would.
func DefaultBackoff() backoff.BackOff {
	return retry.Schedule{Initial: 100 * time.Millisecond, Max: 5 * time.Second}.BackOff()
}

// Validate reports every invalid field, naming the key, the value and what
// is allowed. It is called by New after defaults are applied.
func (c Config) Validate() error {
	var errs []error
	bad := func(key string, v any, allowed string) {
		errs = append(errs, fmt.Errorf("sink: %s = %v: %s", key, v, allowed))
	}
	if c.StreamName == "" && c.StreamARN == "" {
		bad("stream_name", `""`, "a stream name or ARN is required")
	}
	if c.StreamARN != "" && !strings.HasPrefix(c.StreamARN, "arn:") {
		bad("stream_arn", c.StreamARN, `must start with "arn:"`)
	}
	if c.Ordering != record.Unordered && c.Ordering != record.Row {
		bad("ordering", fmt.Sprintf("%q", c.Ordering), `must be "UNORDERED" or "ROW"`)
	}
	if c.Aggregate && c.Ordering != record.Unordered {
		bad("aggregation", `"kpl"`, `needs ordering = "UNORDERED": an aggregate lands on one shard, so rows would change shards and lose their order`)
	}
	if c.MaxRecordsPerCall < 1 || c.MaxRecordsPerCall > MaxRecordsPerCall {
		bad("max_records_per_call", c.MaxRecordsPerCall, "must be 1 to 500")
	}
	if c.MaxRequestBytes < 1 || c.MaxRequestBytes > LargeRequestMax {
		bad("max_request_bytes", c.MaxRequestBytes, "must be 1 to 10485760")
	}
	if c.MaxRecordBytes < 1 || c.MaxRecordBytes > c.MaxRequestBytes {
		bad("max_record_bytes", c.MaxRecordBytes, fmt.Sprintf("must be 1 to max_request_bytes (%d)", c.MaxRequestBytes))
	}
	if c.Linger < 0 {
		bad("linger", c.Linger, "must not be negative")
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 256 {
		bad("max_in_flight", c.MaxInFlight, "must be 1 to 256")
	}
	if c.QueueBytes < 1 {
		bad("queue_bytes", c.QueueBytes, "must be positive")
	}
	if c.CallTimeout < 0 {
		bad("call_timeout", c.CallTimeout, "must not be negative")
	}
	if c.ImpairAfter < 0 {
		bad("impair_after", c.ImpairAfter, "must not be negative")
	}
	return errors.Join(errs...)
}
