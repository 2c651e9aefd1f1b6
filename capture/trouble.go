package capture

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/capture/pgauth"
	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/record"
)

// DefaultImpairAfter is Config.ImpairAfter's default.
const DefaultImpairAfter = 30 * time.Second

// Capture reports the source's failures so that a stream stuck on them
// says why (docs/lifecycle.md#codes), in two ways:
//   - at once, for a failure only an operator can fix (an unmet
//     prerequisite, a missing privilege) and for a session that cannot be
//     established (the source is down or refuses the login); such a report
//     is cleared by the next session that is established;
//   - after Config.ImpairAfter, for sessions that keep failing once
//     established (the slot active for another process, a change the
//     walsender cannot send); such a report is cleared only by a session
//     that works: one that confirms a position past where it started, or
//     runs for ImpairAfter.
// A walsender that is terminated and replaced at once is never reported.

// reportKind is what capture last reported.
type reportKind int

const (
	reportedNone    reportKind = iota
	reportedRefused            // a session could not be established
	reportedFailing            // established sessions keep failing
)

// trouble is the source's run of consecutive failures. Only the goroutine
// that runs Prepare and Run touches it.
type trouble struct {
	// since is the first failure since the source last worked; zero
	// while it works.
	since    time.Time
	failures int
	// lastAtOnce is set when the last failure was reported at once, so
	// that it is not reported again as one that keeps failing.
	lastAtOnce bool
	reported   reportKind
	// cleared is set once a session of this Source was established and
	// cleared the causes a previous run left (re-evaluation after a
	// restart, docs/lifecycle.md#re-evaluation-after-a-restart).
	cleared bool
}

// handlerError marks an error of the Handler's: the pipeline reports its
// own.
type handlerError struct{ error }

func (e handlerError) Unwrap() error { return e.error }

// fromHandler marks err, if any, as the Handler's.
func fromHandler(err error) error {
	if err == nil {
		return nil
	}
	return handlerError{err}
}

// reportedError marks an error capture has reported under a code of its
// own (SOURCE_TABLE_CHANGED), which the reports here leave alone.
type reportedError struct{ error }

func (e reportedError) Unwrap() error { return e.error }

// snapshotHandler marks the errors of a SnapshotHandler's snapshot calls
// as the Handler's.
type snapshotHandler struct{ SnapshotHandler }

func (h snapshotHandler) HandleSnapshot(ctx context.Context, batch *record.Txn) error {
	return fromHandler(h.SnapshotHandler.HandleSnapshot(ctx, batch))
}

func (h snapshotHandler) SnapshotDone(ctx context.Context) error {
	return fromHandler(h.SnapshotHandler.SnapshotDone(ctx))
}

func (h snapshotHandler) MarkSnapshotStarted(ctx context.Context) error {
	return fromHandler(h.SnapshotHandler.MarkSnapshotStarted(ctx))
}

// SQLSTATEs capture tells apart beside those of shutdown.go.
const (
	codeInsufficientPrivilege = "42501"
	codeObjectInUse           = "55006"
)

// Classify is the code a failure of the source shows: SOURCE_SLOT_LOST for
// ErrSlotLost, SOURCE_PREREQUISITE_UNMET for an *Unmet or a privilege the
// role lacks (SQLSTATE 42501), SOURCE_UNAVAILABLE for anything else.
func Classify(err error) codes.Code {
	var u *Unmet
	switch {
	case errors.Is(err, ErrSlotLost):
		return codes.SourceSlotLost
	case errors.As(err, &u), pgCode(err) == codeInsufficientPrivilege:
		return codes.SourcePrerequisiteUnmet
	}
	return codes.SourceUnavailable
}

// Describe words err for a status reason: what failed and, where capture
// knows it, the statement or the step that fixes it. It names settings,
// roles, tables and slots, never a secret or a row value.
func Describe(err error) error {
	var u *Unmet
	switch {
	case errors.As(err, &u):
		what := u.Check
		if u.Object != "" {
			what += " of " + u.Object
		}
		return fmt.Errorf("source prerequisite %s not met: %w", what, u)
	case pgCode(err) == codeObjectInUse:
		var pgErr *pgconn.PgError
		errors.As(err, &pgErr)
		return fmt.Errorf("%s (SQLSTATE %s): another client reads the slot, or a session of cdcd whose connection broke has not ended yet (PostgreSQL ends it within wal_sender_timeout); find it with SELECT pid, application_name, client_addr FROM pg_stat_replication, and stop it or end it with SELECT pg_terminate_backend(pid)", pgErr.Message, pgErr.Code)
	case isSourceUnavailable(err), pgCode(err) == codeInsufficientPrivilege:
		var ce *connectError
		if errors.As(err, &ce) {
			return err // in pgauth.Describe's words already
		}
		cause, msg := pgauth.Describe(err)
		return fmt.Errorf("%s: %s", cause, msg)
	}
	return err
}

// reportable reports whether err is reported here: the slot's loss ends
// Run and is reported by its caller, the Handler's errors by the
// pipeline, a full spill by the spill store, a changed table as
// SOURCE_TABLE_CHANGED (tablecheck.go), and a server that shuts down is
// no fault.
func reportable(err error) bool {
	var he handlerError
	var re reportedError
	var tce *TableChangedError
	return !errors.Is(err, ErrSlotLost) && !errors.As(err, &he) && !errors.As(err, &re) && !errors.As(err, &tce) &&
		!errors.Is(err, record.ErrSpillFull) && !errors.Is(err, errSourceShutdown) && !errors.Is(err, context.Canceled)
}

// atOnce reports whether err is reported as soon as it happens: it needs
// an operator, or a session could not be established.
func atOnce(err error, established bool) bool {
	return Classify(err) == codes.SourcePrerequisiteUnmet || !established && isSourceUnavailable(err)
}

// report reports err as the code Classify gives it, in msg's words.
func (s *Source) report(kind reportKind, err, msg error) {
	s.trouble.reported = kind
	s.cfg.Report(Classify(err), msg)
}

// prepared records the outcome of Prepare, which the pipeline retries:
// every failure but the slot's loss is reported at once, and a success
// clears what an earlier attempt reported.
func (s *Source) prepared(err error) {
	switch {
	case err == nil:
		s.works()
	case reportable(err):
		s.report(reportedRefused, err, Describe(err))
	}
}

// failed records a session that ended with err; established says it got
// as far as streaming.
func (s *Source) failed(err error, established bool) {
	if s.trouble.since.IsZero() {
		s.trouble.since = time.Now()
	}
	s.trouble.failures++
	s.trouble.lastAtOnce = reportable(err) && atOnce(err, established)
	if s.trouble.lastAtOnce {
		s.report(reportedRefused, err, Describe(err))
	}
}

// stillFailing reports sessions that keep failing once the next attempt,
// wait from now, would come ImpairAfter or more after the first failure.
func (s *Source) stillFailing(err error, wait time.Duration) {
	t := &s.trouble
	if !reportable(err) || t.lastAtOnce || t.failures < 2 || time.Since(t.since)+wait < s.cfg.ImpairAfter {
		return
	}
	s.report(reportedFailing, err, fmt.Errorf("replication failed %d times in a row over %s, and cdcd keeps retrying; the last error: %w",
		t.failures, time.Since(t.since).Round(time.Second), Describe(err)))
}

// established records a session that started streaming: a session that
// could not be established, if reported, is no longer the trouble, and
// the first such session of a Source clears what a previous run left.
func (s *Source) established() {
	t := &s.trouble
	if t.reported == reportedRefused || t.reported == reportedNone && !t.cleared {
		t.reported, t.cleared = reportedNone, true
		s.cfg.Report("", nil)
	}
}

// works records that the source works: the failures so far are over.
func (s *Source) works() {
	t := &s.trouble
	t.since, t.failures = time.Time{}, 0
	if t.reported != reportedNone {
		t.reported = reportedNone
		s.cfg.Report("", nil)
	}
}

// isSourceUnavailable reports errors that mean PostgreSQL cannot be reached
// or refused the session, as opposed to errors of cdcd's own pipeline.
func isSourceUnavailable(err error) bool {
	var connErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &connErr):
		return true
	case errors.As(err, &pgErr):
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "28") || strings.HasPrefix(pgErr.Code, "57")
	case pgconn.Timeout(err):
		return true
	}
	return errors.Is(err, errConnLost)
}
