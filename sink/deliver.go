package sink

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/cenkalti/backoff/v4"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/retry"
)

// batch is a worker's reusable state for the entries it currently owns.
type batch struct {
	entries  []*entry // not yet accepted
	sent     []*entry // entries of req, same order
	req      []types.PutRecordsRequestEntry
	ends     []int // req[j] carries sent[ends[j-1]:ends[j]]
	accepted []*entry
	wire     *wire // writes req and reads its result (wire.go)

	bo        backoff.BackOff
	failSince time.Time // start of the first failed attempt; zero while healthy
	attempts  int
	impairing bool // counted in health.failing
}

func newBatch(n int) *batch {
	return &batch{
		entries:  make([]*entry, 0, n),
		sent:     make([]*entry, 0, n),
		req:      make([]types.PutRecordsRequestEntry, 0, n),
		ends:     make([]int, 0, n),
		accepted: make([]*entry, 0, n),
		wire:     newWire(),
	}
}

// reset drops references to delivered records so the GC can free them.
func (b *batch) reset() {
	clear(b.entries[:cap(b.entries)])
	clear(b.sent[:cap(b.sent)])
	clear(b.req[:cap(b.req)])
	clear(b.accepted[:cap(b.accepted)])
	b.entries, b.sent, b.req, b.ends, b.accepted = b.entries[:0], b.sent[:0], b.req[:0], b.ends[:0], b.accepted[:0]
	b.failSince, b.attempts, b.impairing = time.Time{}, 0, false
}

// noSDKRetries makes each PutRecords one HTTP attempt. The sink owns retries
// so that backoff, the throttle clock and classification see every failure,
// and so that the SDK's retry quota cannot turn a throttling storm into
// "retry quota exceeded" errors.
func noSDKRetries(o *kinesis.Options) { o.RetryMaxAttempts = 1 }

// deliver sends b until Kinesis has accepted every entry. Only failed
// entries are sent again, each with the same Data and PartitionKey. It
// returns false if ctx ended first; entries not accepted by then stay
// undelivered.
func (s *Sink) deliver(ctx context.Context, b *batch) bool {
	defer b.reset()
	for {
		b.attempts++
		start := time.Now()
		fail := s.attempt(ctx, b)
		if len(b.entries) == 0 {
			s.health.recovered(b)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if b.failSince.IsZero() {
			b.failSince = start
		}
		s.health.failed(b, fail, len(b.entries))
		s.m.failed(codeLabel(fail), len(b.entries))
		if !s.wait(ctx, b) {
			return false
		}
		s.m.retried(codeLabel(fail))
	}
}

// attempt makes one PutRecords call for b's sendable entries, moves the
// accepted ones out of b.entries and returns why the rest failed.
func (s *Sink) attempt(ctx context.Context, b *batch) error {
	b.sent, b.req, b.ends = b.sent[:0], b.req[:0], b.ends[:0]
	var fail error
	for _, e := range b.entries {
		if e.size > s.cfg.MaxRecordBytes {
			// Refused here rather than by Kinesis: the error is the same on
			// every retry, and the rest of the batch still goes.
			fail = &OversizeError{Size: e.size, Limit: s.cfg.MaxRecordBytes}
			continue
		}
		b.sent = append(b.sent, e)
	}
	if len(b.sent) == 0 {
		return fail
	}
	if s.cfg.Aggregate {
		s.aggregate(b)
	} else {
		for i, e := range b.sent {
			b.req = append(b.req, types.PutRecordsRequestEntry{Data: e.rec.Data, PartitionKey: &e.rec.PartitionKey})
			b.ends = append(b.ends, i+1)
		}
	}
	out, err := s.call(ctx, b.req, b.wire.option)
	if err == nil && len(out.Records) != len(b.req) {
		err = fmt.Errorf("put records: %d result entries for %d records", len(out.Records), len(b.req))
	}
	if err != nil {
		return worse(fail, err)
	}
	// Keep the failed entries (and the refused ones) in b.entries, in
	// order; hand the accepted ones to the tracker.
	b.accepted = b.accepted[:0]
	keep := b.entries[:0]
	var recErr *RecordError
	i, j := 0, 0
	for _, e := range b.entries {
		if i >= len(b.sent) || b.sent[i] != e {
			keep = append(keep, e) // refused as oversize
			continue
		}
		for i >= b.ends[j] {
			j++
		}
		r := out.Records[j] // an aggregate is accepted or refused whole
		i++
		code := aws.ToString(r.ErrorCode)
		if code == "" {
			b.accepted = append(b.accepted, e)
			continue
		}
		keep = append(keep, e)
		if recErr == nil {
			recErr = &RecordError{Code: code, Message: aws.ToString(r.ErrorMessage)}
		} else if severity(classifyCode(code, aws.ToString(r.ErrorMessage))) > severity(classifyCode(recErr.Code, recErr.Message)) {
			recErr.Code, recErr.Message = code, aws.ToString(r.ErrorMessage)
		}
		recErr.Failed++
	}
	clear(b.entries[len(keep):])
	b.entries = keep
	if len(b.accepted) > 0 {
		s.accept(b.accepted)
	}
	if recErr != nil {
		return worse(fail, recErr)
	}
	return fail
}

// worse returns the error whose code is the more severe.
func worse(a, b error) error {
	if a == nil || severity(Classify(b)) > severity(Classify(a)) {
		return b
	}
	return a
}

// call makes one PutRecords call under CallTimeout; wire is the option
// that writes its request and reads its result.
func (s *Sink) call(ctx context.Context, req []types.PutRecordsRequestEntry, wire func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	s.m.callStarted()
	start := time.Now()
	out, err := s.api.PutRecords(ctx, &kinesis.PutRecordsInput{
		StreamName: s.streamName,
		StreamARN:  s.streamARN,
		Records:    req,
	}, noSDKRetries, wire)
	s.m.callDone(time.Since(start), len(req))
	if err != nil {
		return nil, fmt.Errorf("put records: %w", err)
	}
	return out, nil
}

// wait sleeps for b's next backoff interval, or until ctx ends.
func (s *Sink) wait(ctx context.Context, b *batch) bool {
	if b.bo == nil {
		b.bo = s.cfg.Backoff()
	}
	if b.attempts == 1 {
		b.bo.Reset()
	}
	d := b.bo.NextBackOff()
	if d == backoff.Stop || d < 0 {
		d = MaxBackoffWait // never give up on a record: see Config.Backoff
	}
	if d == 0 {
		return ctx.Err() == nil
	}
	return retry.Sleep(ctx, d) == nil
}

// health turns per-batch failures into Report calls and rate-limited log
// lines. A failing batch counts as impairing once its code is reported; the
// stream is healthy again when no batch is impairing. The first batch
// accepted while none is impairing is reported too: the stream may carry a
// code from before a restart that only the sink can clear.
type health struct {
	// confirmed is set once a success has been reported; read without mu
	// so that a healthy sink's batches take no lock.
	confirmed   atomic.Bool
	mu          sync.Mutex
	report      func(codes.Code, error)
	log         *slog.Logger
	impairAfter time.Duration
	failing     int        // batches whose failure was reported
	reported    codes.Code // last code given to Report, "" when healthy
	lastLog     time.Time
	suppressed  int // failure lines not logged since lastLog
}

// logEvery limits failure log lines; the count of those skipped is logged
// with the next one.
const logEvery = 10 * time.Second

func (h *health) init(cfg Config) {
	h.report = cfg.Report
	h.log = cfg.Logger.With(slog.String("component", "sink"), slog.String("stream", streamLabel(cfg)))
	h.impairAfter = cfg.ImpairAfter
}

// failed handles one failed attempt of b with n entries outstanding.
func (h *health) failed(b *batch, err error, n int) {
	code := Classify(err)
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := time.Now(); now.Sub(h.lastLog) >= logEvery {
		h.log.Warn("put records failed; retrying",
			slog.String("code", string(code)), slog.Any("error", err),
			slog.Int("records", n), slog.Int("attempt", b.attempts),
			slog.Int("suppressed", h.suppressed))
		h.lastLog, h.suppressed = now, 0
	} else {
		h.suppressed++
	}
	if transient(code) && time.Since(b.failSince) < h.impairAfter {
		return // throttling and internal failures are normal until they last
	}
	if !b.impairing {
		b.impairing = true
		h.failing++
	}
	if code != h.reported {
		h.reported = code
		h.log.Error("delivery impaired", slog.String("code", string(code)), slog.Any("error", err),
			slog.Duration("failing_for", time.Since(b.failSince)))
		h.report(code, err)
	}
}

// recovered handles b's last entries being accepted.
func (h *health) recovered(b *batch) {
	if !b.impairing && h.confirmed.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if b.impairing {
		b.impairing = false
		h.failing--
	}
	if h.failing > 0 {
		return
	}
	switch {
	case h.reported != "":
		h.log.Info("delivery recovered", slog.Int("attempts", b.attempts),
			slog.Duration("failed_for", time.Since(b.failSince)))
	case h.confirmed.Load():
		return
	}
	h.reported = ""
	h.confirmed.Store(true)
	h.report("", nil)
}

func streamLabel(cfg Config) string {
	if cfg.StreamName != "" {
		return cfg.StreamName
	}
	return cfg.StreamARN
}
