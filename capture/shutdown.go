package capture

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// PostgreSQL does not finish a fast or smart shutdown while a logical
// walsender runs, and the walsender exits only once its client has confirmed
// everything sent. cdcd confirms nothing the target has not accepted, so
// with the target refusing, the shutdown would wait for ever. Instead a
// session that learns the server is shutting down closes its replication
// connection at once, without waiting for the Handler, and Run reconnects
// with backoff. Unconfirmed changes stay in the slot and are sent again on
// the next session.
//
// Two signals say the server is shutting down:
//   - the health connection, idle between checks, is terminated with 57P01
//     as the shutdown begins; the watcher checks again at once, and the new
//     connection is refused with 57P03 (health.go). This comes first: the
//     walsender is asked to stop only once every regular session is gone.
//   - the walsender ends the stream (CopyDone or CommandComplete), which it
//     does at a shutdown once everything is confirmed.
//
// A streaming walsender is never terminated by a shutdown, so a replication
// connection that ends with an error is an interruption like any other; it
// too is closed before the Handler is waited for. A smart shutdown
// terminates no session and waits for cdcd's regular connections as for any
// client's, so it is not detected.

// errSourceShutdown ends a session whose server is shutting down.
var errSourceShutdown = errors.New("the source is shutting down")

// SQLSTATEs of a server going down.
const (
	// codeAdminShutdown (admin_shutdown) terminates a session: a fast
	// shutdown does it to every regular session, and so does
	// pg_terminate_backend to one.
	codeAdminShutdown = "57P01"
	// codeCannotConnectNow (cannot_connect_now) refuses a new session
	// while the server starts up or shuts down.
	codeCannotConnectNow = "57P03"
)

// pgCode is the SQLSTATE of the PostgreSQL error in err's chain, or "".
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// setSessionEnd registers end as the way to end the running session early;
// nil when none runs.
func (s *Source) setSessionEnd(end context.CancelCauseFunc) {
	s.mu.Lock()
	s.endSession = end
	s.mu.Unlock()
}

// endSessionForShutdown ends the running session, if any, when err, from a
// new connection of the health watcher, says the server is shutting down.
// While a session runs the server was up, so a refusal now is a shutdown,
// not a start.
func (s *Source) endSessionForShutdown(err error) {
	if pgCode(err) != codeCannotConnectNow {
		return
	}
	s.mu.Lock()
	end := s.endSession
	s.mu.Unlock()
	if end != nil {
		end(fmt.Errorf("%w: %w", errSourceShutdown, err))
	}
}

// released logs a session given up for a shutdown, with where it stood:
// what PostgreSQL has confirmed stays the slot's position, and everything
// after it is sent again on the next session.
func (ss *session) released(err error) {
	ss.src.log.Info("source is shutting down; released the replication connection",
		"slot", ss.src.cfg.Slot,
		"confirmed_lsn", pglogrepl.LSN(ss.confirmed),
		"delivered_lsn", pglogrepl.LSN(ss.h.Delivered()),
		"queued_lsn", pglogrepl.LSN(ss.queued),
		"reason", err)
}
