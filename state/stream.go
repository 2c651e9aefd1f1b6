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
	logKeyCause   = "cause"
	logKeyOwner   = "owner"
	// logKeyOutstanding lists every outstanding code, the shown one first.
	logKeyOutstanding = "outstanding"
)

// Persister is the part of Store a Stream writes through.
type Persister interface {
	Save(File) error
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

// View is a consistent copy of a stream's state for readers.
type View struct {
	File
	// Lag is the last lag the pipeline reported: the age of the oldest
	// change not yet accepted by Kinesis.
	Lag time.Duration
}

// Stream is one stream's live lifecycle. The pipeline goroutine reports
// outcomes into it (Created, Fault, Recover, Lag, Checkpoint) while the
// control plane reads it (Snapshot, Watch) and deletes it (Delete,
// Deleted); every method is safe for concurrent use. Each status change is
// applied through the transition table, persisted, logged once and counted.
//
// A stream keeps every outstanding cause, one per code, until the code's
// owner (codes.Code.Owner) reports it recovered: one component's success
// never clears another's failure. The shown statusReason is the most
// severe cause (codes.Code.Severity); the others are kept in the record
// beside it, so that after a restart each owner re-evaluates its own.
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
	rec     File
	lag     time.Duration
	changed chan struct{}
	// repeats counts faults with an unchanged code since the last log
	// line about them, and lastLog is when that line was written.
	repeats int
	lastLog time.Time
}

// NewStream wraps a saved (or about to be saved) record. It does not write
// rec; the caller saves a new stream before it announces it.
func NewStream(rec File, opts Options) (*Stream, error) {
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
	if rec.Status == Impaired {
		// A file written with another severity order, or by hand, still
		// shows the most severe cause.
		rec.StatusReason, rec.OtherReasons = causesOf(&rec).show()
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

// View returns a copy of the current state.
func (s *Stream) View() View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return View{File: s.rec.clone(), Lag: s.lag}
}

// Watch returns the current state and a channel closed at the next status
// or reason change, for waiting with select instead of polling.
func (s *Stream) Watch() (View, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return View{File: s.rec.clone(), Lag: s.lag}, s.changed
}

// Created reports that the stream is set up: CREATING → ACTIVE.
func (s *Stream) Created() error { return s.apply(EventCreated) }

// Fault reports a failure classified as code; the error's text, followed
// by a pointer to the code's runbook section, becomes the
// cause's message. The cause stays outstanding until code's owner reports
// it recovered (Recover). A fatal code fails the stream, and so does a
// denial while CREATING; any other code impairs an ACTIVE stream and
// leaves a CREATING one CREATING, since the pipeline retries, with the
// cause as its statusReason until Created or the owner's recovery.
func (s *Stream) Fault(code codes.Code, err error) error {
	msg := string(code)
	if err != nil {
		msg = err.Error()
	}
	msg = withRunbook(code, msg)
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := FaultEvent(code)
	to, terr := s.next(ev)
	if terr != nil {
		return terr
	}
	now := s.now()
	next := causesOf(&s.rec).with(Reason{Code: code, Message: msg, UpdatedAt: now})
	changed, perr := s.set(ev, to, next, now, logKeyCause, string(code))
	if !changed {
		s.repeated(code, msg, now)
	}
	return perr
}

// withRunbook ends msg with a pointer to the runbook's section on code, so
// that whoever reads a statusReason finds what to check. Every cause's
// message passes through Fault, so this is the one place it is added; a
// message that carries it already (an error that wraps an earlier one)
// does not get it twice.
func withRunbook(code codes.Code, msg string) string {
	link := code.Runbook()
	if link == "" || strings.Contains(msg, link) {
		return msg
	}
	return msg + " (see " + link + ")"
}

// Recover reports that owner has evidence its conditions are gone: its
// causes are cleared, and a stream left without any returns to ACTIVE. It
// is a no-op when owner has no cause outstanding, so a component may call
// it after every success.
func (s *Stream) Recover(owner codes.Owner) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := causesOf(&s.rec).without(owner)
	ev := EventRecovered
	if len(next) > 0 {
		ev = EventCleared
	}
	to, err := s.next(ev)
	if err != nil {
		return err
	}
	_, err = s.set(ev, to, next, s.now(), logKeyOwner, string(owner))
	return err
}

// Lag reports the age of the oldest undelivered change. Past the failure
// threshold it fails an IMPAIRED stream; an ACTIVE stream that is catching
// up is delivering and does not fail. The pipeline must report lag while it
// retries, since nothing else measures it.
func (s *Stream) Lag(d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lag = d
	if s.rec.Status != Impaired || d <= s.threshold {
		return nil
	}
	to, err := s.next(EventLagExceeded)
	if err != nil {
		return err
	}
	_, err = s.set(EventLagExceeded, to, causesOf(&s.rec), s.now(), logKeyLag, d.String())
	return err
}

// Delete starts deletion: any status but DELETED → DELETING.
func (s *Stream) Delete() error { return s.apply(EventDelete) }

// Deleted reports that teardown finished: DELETING → DELETED.
func (s *Stream) Deleted() error { return s.apply(EventDeleted) }

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

// apply runs an event that ends every cause (Created, Delete, Deleted)
// through the transition table.
func (s *Stream) apply(ev Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	to, err := s.next(ev)
	if err != nil {
		return err
	}
	_, err = s.set(ev, to, nil, s.now())
	return err
}

// next is the status after ev. The caller holds mu.
func (s *Stream) next(ev Event) (Status, error) {
	to, err := Next(s.rec.Status, ev)
	if err != nil {
		return to, fmt.Errorf("stream %s: %w", s.id, err)
	}
	return to, nil
}

// set makes to the status and next the outstanding causes: the most
// severe is the statusReason, the others are kept beside it. It reports
// whether anything the file records changed; if not (a repeated fault, a
// recovery of an owner with nothing outstanding, a repeated delete) only
// messages are updated in memory, so a retry loop costs no fsync. A change
// is applied in memory even when persisting it fails: the fault did
// happen, and the error is returned and logged so the operator learns the
// file is behind. The caller holds mu; attrs go into the log line.
func (s *Stream) set(ev Event, to Status, next causes, now time.Time, attrs ...any) (bool, error) {
	from := s.rec.Status
	if !to.HoldsReason() {
		next = nil
	}
	reason, others := next.show()
	if ev == EventLagExceeded {
		reason.Message = fmt.Sprintf("lag %s passed the failure threshold %s; last error: %s", s.lag, s.threshold, reason.Message)
		reason.UpdatedAt = now
	}
	unchanged := to == from && causesOf(&s.rec).sameCodes(next)
	s.rec.Status, s.rec.StatusReason, s.rec.OtherReasons = to, reason, others
	if unchanged {
		return false, nil
	}
	var perr error
	// A CREATING stream's causes stay in memory: its run finds them again
	// at once after a restart, and the file keeps the format every cdcd
	// reads (a statusReason goes with IMPAIRED and FAILED only).
	if s.store != nil && (to != from || to != Creating) {
		if perr = s.store.Save(s.saved()); perr != nil {
			perr = fmt.Errorf("persist stream %s status %s: %w", s.id, to, perr)
			s.log.Error("stream status not persisted", logKeyTo, string(to), logKeyError, perr)
		}
	}
	if to != from {
		s.metrics.transition(s.id, from, to)
	}
	s.logTransition(ev, from, to, reason, now, attrs)
	close(s.changed)
	s.changed = make(chan struct{})
	if to == Deleted {
		s.metrics.forget(s.id)
	}
	return true, perr
}

// saved is the record as the file keeps it. The caller holds mu.
func (s *Stream) saved() File {
	rec := s.rec.clone()
	if rec.Status == Creating {
		rec.StatusReason, rec.OtherReasons = nil, nil
	}
	return rec
}

// repeated logs a fault that changed nothing at most once per interval,
// with the number of repeats since the last line. The caller holds mu.
func (s *Stream) repeated(code codes.Code, msg string, now time.Time) {
	s.repeats++
	if now.Sub(s.lastLog) < s.logEvery {
		return
	}
	s.log.Warn("stream still "+strings.ToLower(string(s.rec.Status)), logKeyCode, string(code), logKeyError, msg, logKeyRepeats, s.repeats)
	s.repeats, s.lastLog = 0, now
}

func (s *Stream) logTransition(ev Event, from, to Status, reason *Reason, now time.Time, extra []any) {
	attrs := []any{logKeyFrom, string(from), logKeyTo, string(to), logKeyEvent, ev.String()}
	if reason != nil {
		attrs = append(attrs, logKeyCode, string(reason.Code), logKeyError, reason.Message)
	}
	attrs = append(attrs, extra...)
	if len(s.rec.OtherReasons) > 0 {
		// The other causes are not in GetStream; the log names them.
		attrs = append(attrs, logKeyOutstanding, s.rec.Codes())
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
	case Creating:
		if reason != nil {
			s.log.Warn("stream held in creating", attrs...)
			return
		}
		s.log.Info("stream creating", attrs...)
	default:
		s.log.Info("stream "+strings.ToLower(string(to)), attrs...)
	}
}
