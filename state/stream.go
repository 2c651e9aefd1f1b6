package state

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cdcd-dev/cdcd/codes"
)

// DefaultFailureThreshold is how long an IMPAIRED stream may fall behind
// before it fails: DSQL keeps undelivered changes for one week.
const DefaultFailureThreshold = 7 * 24 * time.Hour

// DefaultFaultLogInterval bounds how often a fault that keeps repeating
// while IMPAIRED is logged; the log line carries the count in between.
const DefaultFaultLogInterval = time.Minute

// Log attribute keys, constant so that log queries keep working.
const (
	logKeyStream  = "stream"
	logKeyCluster = "cluster"
	logKeyFrom    = "from"
	logKeyTo      = "to"
	logKeyEvent   = "event"
	logKeyCode    = "code"
	logKeyError   = "error"
	logKeyRepeats = "repeats"
	logKeyLag     = "lag"
)

// Persister is the part of Store a Stream writes through.
type Persister interface {
	Save(Record) error
	SaveCheckpoint(streamID string, cp Checkpoint) error
}

var _ Persister = (*Store)(nil)

// Options configure a Stream. Zero values take the documented defaults.
type Options struct {
	Logger  *slog.Logger
	Metrics *Metrics
	// Store persists every status change and checkpoint; nil keeps the
	// stream in memory only.
	Store Persister
	// FailureThreshold is the lag at which an IMPAIRED stream fails;
	// zero means DefaultFailureThreshold.
	FailureThreshold time.Duration
	// FaultLogInterval: zero means DefaultFaultLogInterval.
	FaultLogInterval time.Duration
	// Now is the clock for statusReason.updatedAt; nil means time.Now.
	Now func() time.Time
}

// Snapshot is a consistent copy of a stream's state for readers.
type Snapshot struct {
	Record
	// Lag is the last lag the pipeline reported: the age of the oldest
	// change not yet accepted by Kinesis.
	Lag time.Duration
}

// Stream is one stream's live lifecycle. The pipeline goroutine reports
// outcomes into it (Created, Fault, Recover, Lag, Checkpoint) while the
// control plane reads it (Snapshot, Watch) and deletes it (Delete,
// Deleted); every method is safe for concurrent use. Each status change is
// applied through the transition table, persisted, logged once and counted.
type Stream struct {
	id        string
	log       *slog.Logger
	metrics   *Metrics
	store     Persister
	threshold time.Duration
	logEvery  time.Duration
	now       func() time.Time

	// cpMu serialises checkpoints without holding mu across their fsync,
	// so Snapshot never waits for the disk.
	cpMu sync.Mutex

	mu      sync.Mutex
	rec     Record
	lag     time.Duration
	changed chan struct{}
	// repeats counts faults with an unchanged code since the last log
	// line about them, and lastLog is when that line was written.
	repeats int
	lastLog time.Time
}

// NewStream wraps a saved (or about to be saved) record. It does not write
// rec; the caller saves a new stream before it announces it.
func NewStream(rec Record, opts Options) (*Stream, error) {
	if rec.Version == 0 {
		rec.Version = FileVersion
	}
	if err := rec.validate(); err != nil {
		return nil, fmt.Errorf("new stream: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics, _ = NewMetrics(nil) // unregistered: cannot fail
	}
	if opts.FailureThreshold <= 0 {
		opts.FailureThreshold = DefaultFailureThreshold
	}
	if opts.FaultLogInterval <= 0 {
		opts.FaultLogInterval = DefaultFaultLogInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	id := rec.Definition.StreamID
	s := &Stream{
		id:        id,
		log:       opts.Logger.With(logKeyStream, id, logKeyCluster, rec.Definition.ClusterID),
		metrics:   opts.Metrics,
		store:     opts.Store,
		threshold: opts.FailureThreshold,
		logEvery:  opts.FaultLogInterval,
		now:       opts.Now,
		rec:       rec.clone(),
		changed:   make(chan struct{}),
	}
	if rec.Status != Deleted {
		s.metrics.set(id, rec.Status)
	}
	return s, nil
}

// ID is the stream identifier.
func (s *Stream) ID() string { return s.id }

// Definition is what the stream was created with; it never changes.
func (s *Stream) Definition() Definition {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.clone().Definition
}

// Snapshot returns a copy of the current state.
func (s *Stream) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Snapshot{Record: s.rec.clone(), Lag: s.lag}
}

// Watch returns the current state and a channel closed at the next status
// or reason change, for waiting with select instead of polling.
func (s *Stream) Watch() (Snapshot, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Snapshot{Record: s.rec.clone(), Lag: s.lag}, s.changed
}

// Created reports that the stream is set up: CREATING → ACTIVE.
func (s *Stream) Created() error { return s.apply(EventCreated, nil) }

// Fault reports a failure classified as code. A non-fatal code impairs an
// ACTIVE stream; a fatal one, or any fault while CREATING, fails it. The
// error's text becomes the reason's message.
func (s *Stream) Fault(code codes.Code, err error) error {
	msg := string(code)
	if err != nil {
		msg = err.Error()
	}
	return s.apply(FaultEvent(code), &Reason{Code: code, Message: msg})
}

// Recover reports a successful delivery: IMPAIRED → ACTIVE; a no-op while
// ACTIVE, so the pipeline may call it after every success.
func (s *Stream) Recover() error { return s.apply(EventRecovered, nil) }

// Lag reports the age of the oldest undelivered change. Past the failure
// threshold it fails an IMPAIRED stream; an ACTIVE stream that is catching
// up is delivering and does not fail. The pipeline must report lag while it
// retries, since nothing else measures it.
func (s *Stream) Lag(d time.Duration) error {
	s.mu.Lock()
	s.lag = d
	exceeded := s.rec.Status == Impaired && d > s.threshold
	s.mu.Unlock()
	if !exceeded {
		return nil
	}
	err := s.apply(EventLagExceeded, nil)
	if err != nil && s.Snapshot().Status != Impaired {
		// Recovered or failed for another reason in between: the
		// lag report is moot, not an error for the pipeline.
		return nil
	}
	return err
}

// Delete starts deletion: any status but DELETED → DELETING.
func (s *Stream) Delete() error { return s.apply(EventDelete, nil) }

// Deleted reports that teardown finished: DELETING → DELETED.
func (s *Stream) Deleted() error { return s.apply(EventDeleted, nil) }

// Checkpoint persists the resume position (see Checkpoint and
// Store.SaveCheckpoint). Call it before confirming cp.LSN to PostgreSQL.
func (s *Stream) Checkpoint(cp Checkpoint) error {
	s.cpMu.Lock()
	defer s.cpMu.Unlock()
	if s.store != nil {
		if err := s.store.SaveCheckpoint(s.id, cp); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	s.mu.Lock()
	if cp.LSN >= s.rec.Checkpoint.LSN {
		s.rec.Checkpoint = cp
	}
	s.mu.Unlock()
	return nil
}

// apply runs ev through the transition table. reason is the fault's reason
// for fault events and nil otherwise. A status change is applied in memory
// even when persisting it fails: the fault did happen, and the error is
// returned and logged so the operator learns the file is behind.
func (s *Stream) apply(ev Event, reason *Reason) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	from := s.rec.Status
	to, err := Next(from, ev)
	if err != nil {
		return fmt.Errorf("stream %s: %w", s.id, err)
	}
	now := s.now()
	switch {
	case !to.HasReason():
		reason = nil
	case ev == EventLagExceeded:
		prev := s.rec.StatusReason // set: only IMPAIRED takes this event
		reason = &Reason{
			Code:    prev.Code,
			Message: fmt.Sprintf("lag %s passed the failure threshold %s; last error: %s", s.lag, s.threshold, prev.Message),
		}
	}
	if reason != nil {
		reason.UpdatedAt = now
	}

	if to == from {
		if reason == nil {
			return nil // ACTIVE+Recovered, DELETING+Delete: nothing changes
		}
		if prev := s.rec.StatusReason; prev != nil && prev.Code == reason.Code {
			// The same fault again while IMPAIRED: keep the time the code
			// was first seen, keep the file as is (no fsync per retry),
			// and log at most once per interval with a count.
			prev.Message = reason.Message
			s.repeats++
			if now.Sub(s.lastLog) >= s.logEvery {
				s.log.Warn("stream still impaired", logKeyCode, string(prev.Code),
					logKeyError, prev.Message, logKeyRepeats, s.repeats)
				s.repeats, s.lastLog = 0, now
			}
			return nil
		}
	}

	s.rec.Status, s.rec.StatusReason = to, reason
	var perr error
	if s.store != nil {
		if perr = s.store.Save(s.rec.clone()); perr != nil {
			perr = fmt.Errorf("persist stream %s status %s: %w", s.id, to, perr)
			s.log.Error("stream status not persisted", logKeyTo, string(to), logKeyError, perr)
		}
	}
	if to != from {
		s.metrics.transition(s.id, from, to)
	}
	s.logTransition(ev, from, to, reason, now)
	close(s.changed)
	s.changed = make(chan struct{})
	if to == Deleted {
		s.metrics.forget(s.id)
	}
	return perr
}

func (s *Stream) logTransition(ev Event, from, to Status, reason *Reason, now time.Time) {
	attrs := []any{logKeyFrom, string(from), logKeyTo, string(to), logKeyEvent, ev.String()}
	if reason != nil {
		attrs = append(attrs, logKeyCode, string(reason.Code), logKeyError, reason.Message)
	}
	if ev == EventLagExceeded {
		attrs = append(attrs, logKeyLag, s.lag.String())
	}
	if s.repeats > 0 {
		attrs = append(attrs, logKeyRepeats, s.repeats)
	}
	s.repeats, s.lastLog = 0, now
	switch to {
	case Failed:
		s.log.Error("stream failed", attrs...)
	case Impaired:
		s.log.Warn("stream impaired", attrs...)
	default:
		s.log.Info("stream "+strings.ToLower(string(to)), attrs...)
	}
}
