package capture

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/retry"
)

// SlotHealth is the latest reading of the stream's slot from
// pg_replication_slots, and the initial snapshot's progress.
type SlotHealth struct {
	// CheckedAt is when the reading was taken; zero before the first.
	CheckedAt time.Time
	// Err is why the last check failed (the other fields then keep the
	// previous reading); empty when it succeeded.
	Err string
	// Exists reports whether the slot was found.
	Exists bool
	// Active reports whether a walsender is using the slot.
	Active bool
	// WALStatus is reserved, extended, unreserved or lost (PostgreSQL 13+).
	// lost fails the stream with SOURCE_SLOT_LOST; unreserved means it is
	// about to be lost unless the slot advances.
	WALStatus string
	// RetainedWALBytes is the WAL the slot keeps on the server
	// (pg_current_wal_lsn() - restart_lsn).
	RetainedWALBytes int64
	// SafeWALBytes is how much more WAL can be written before the slot is
	// lost (safe_wal_size); -1 when max_slot_wal_keep_size does not limit
	// it.
	SafeWALBytes int64
	// ConfirmedFlushLSN is the position cdcd last confirmed.
	ConfirmedFlushLSN uint64
	// ConfirmedLagBytes is the WAL written since ConfirmedFlushLSN.
	ConfirmedLagBytes int64
	// RestartLSN is the oldest WAL the slot still needs.
	RestartLSN uint64
	// CurrentWALLSN is the server's WAL position (pg_current_wal_lsn()) at
	// CheckedAt, from which a reader measures how far the stream is behind
	// in bytes; zero while the slot has not been found.
	CurrentWALLSN uint64
	// Snapshot is the initial snapshot's progress; zero when the stream has
	// none or it finished before this process started.
	Snapshot SnapshotProgress
}

// SnapshotProgress describes the initial snapshot.
type SnapshotProgress struct {
	Running bool
	Done    bool
	// Table is the table being read.
	Table string
	// TablesDone of Tables are read in full.
	TablesDone int
	Tables     int
	// Rows have been read so far, of an estimated EstimatedRows
	// (pg_class.reltuples; 0 when the tables were never analyzed).
	Rows          int64
	EstimatedRows int64
}

// Health returns the latest slot reading.
func (s *Source) Health() SlotHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.health
}

// watchSlot reads the slot's health at once and every HealthInterval until
// ctx ends. A slot that lost its WAL, or vanished after a session found it,
// cancels ctx with an error wrapping ErrSlotLost, which ends Run. A server
// that is shutting down ends the running session (shutdown.go).
func (s *Source) watchSlot(ctx context.Context, fail context.CancelCauseFunc) {
	var conn *pgx.Conn
	defer func() { closeHealthConn(ctx, &conn) }()
	failures := 0
	wait := time.Duration(0)
	for {
		if err := s.idle(ctx, conn, wait); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Debug("slot health connection ended between checks", "err", err)
			closeHealthConn(ctx, &conn)
			wait = recheck(err, s.cfg.HealthInterval)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, max(s.cfg.HealthInterval, 5*time.Second))
		err := s.checkHealth(cctx, &conn, fail)
		cancel()
		if ctx.Err() != nil {
			return
		}
		wait = s.cfg.HealthInterval
		if err != nil {
			s.endSessionForShutdown(err)
			s.checkFailed(err, failures)
			failures++
			closeHealthConn(ctx, &conn)
			wait = recheck(err, wait)
			continue
		}
		if failures > 0 {
			s.log.Info("slot health check works again", "failures", failures)
			failures = 0
		}
	}
}

// idle waits d for the next check. Meanwhile it listens on the open
// connection, so a session the server ends (a fast shutdown terminates the
// idle ones first) is noticed at once, with the error it ended with. A
// notification, which nothing listens for, only brings the check forward.
func (s *Source) idle(ctx context.Context, conn *pgx.Conn, d time.Duration) error {
	if conn == nil || d <= 0 {
		return retry.Sleep(ctx, d)
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	_, err := conn.WaitForNotification(wctx)
	if wctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// recheck is the wait before the check after a connection ended with err.
// A session terminated with 57P01 is checked again at once: a server that
// is shutting down refuses the new connection with 57P03, which ends the
// replication session, while one whose administrator terminated only this
// session accepts it.
func recheck(err error, wait time.Duration) time.Duration {
	if pgCode(err) == codeAdminShutdown {
		return 0
	}
	return wait
}

// checkFailed records a failed check. A source that is down is reported by
// the session; one line per ten failures keeps the log readable meanwhile.
func (s *Source) checkFailed(err error, failures int) {
	s.met.healthErrors.Inc()
	if failures%10 == 0 {
		s.log.Warn("slot health check failed", "err", err, "failures", failures+1)
	}
	s.mu.Lock()
	s.health.Err = err.Error()
	s.health.CheckedAt = time.Now()
	s.mu.Unlock()
}

func closeHealthConn(ctx context.Context, conn **pgx.Conn) {
	if *conn != nil {
		(*conn).Close(context.WithoutCancel(ctx))
		*conn = nil
	}
}

func (s *Source) checkHealth(ctx context.Context, connp **pgx.Conn, fail context.CancelCauseFunc) error {
	if *connp == nil {
		c, err := s.connect(ctx)
		if err != nil {
			return err
		}
		*connp = c
	}
	h, err := readHealth(ctx, *connp, s.cfg.Slot)
	if err != nil {
		return err
	}
	if err := s.checkConfigured(ctx, *connp); err != nil {
		return err
	}
	s.mu.Lock()
	prev := s.health
	h.Snapshot = prev.Snapshot
	s.health = h
	s.mu.Unlock()
	s.met.setHealth(h)
	switch {
	case h.Exists && h.WALStatus == "lost":
		err := fmt.Errorf("%w: slot %q has wal_status lost: PostgreSQL removed WAL it had not delivered (max_slot_wal_keep_size); delete the stream and create it again", ErrSlotLost, s.cfg.Slot)
		s.log.Error("replication slot lost", "slot", s.cfg.Slot, "err", err)
		fail(err)
	case !h.Exists && s.slotReady.Load():
		err := fmt.Errorf("%w: slot %q was dropped while the stream used it; delete the stream and create it again", ErrSlotLost, s.cfg.Slot)
		s.log.Error("replication slot lost", "slot", s.cfg.Slot, "err", err)
		fail(err)
	case h.Exists && h.WALStatus == "unreserved" && prev.WALStatus != "unreserved":
		s.log.Warn("replication slot is about to lose WAL it needs (wal_status unreserved): the stream falls behind max_slot_wal_keep_size",
			"slot", s.cfg.Slot, "retained_wal_bytes", h.RetainedWALBytes, "safe_wal_bytes", h.SafeWALBytes)
	case h.Exists && prev.WALStatus == "unreserved" && h.WALStatus != "unreserved":
		s.log.Info("replication slot caught up: its WAL is reserved again", "slot", s.cfg.Slot, "wal_status", h.WALStatus)
	}
	return nil
}

func readHealth(ctx context.Context, conn *pgx.Conn, slot string) (SlotHealth, error) {
	h := SlotHealth{CheckedAt: time.Now(), SafeWALBytes: -1}
	var walStatus, confirmed, restart, current *string
	var safe, retained, lag *int64
	err := conn.QueryRow(ctx, `SELECT active, wal_status, safe_wal_size,
			confirmed_flush_lsn::text, restart_lsn::text, pg_current_wal_lsn()::text,
			pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint,
			pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, slot).
		Scan(&h.Active, &walStatus, &safe, &confirmed, &restart, &current, &retained, &lag)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, nil
	}
	if err != nil {
		return h, fmt.Errorf("read replication slot %q: %w", slot, err)
	}
	h.Exists = true
	if walStatus != nil {
		h.WALStatus = *walStatus
	}
	switch {
	case h.WALStatus == "lost":
		h.SafeWALBytes = 0
	case safe != nil:
		h.SafeWALBytes = max(*safe, 0)
	}
	if retained != nil {
		h.RetainedWALBytes = *retained
	}
	if lag != nil {
		h.ConfirmedLagBytes = *lag
	}
	if h.ConfirmedFlushLSN, err = parseLSN(confirmed); err != nil {
		return h, err
	}
	if h.RestartLSN, err = parseLSN(restart); err != nil {
		return h, err
	}
	if h.CurrentWALLSN, err = parseLSN(current); err != nil {
		return h, err
	}
	return h, nil
}

func parseLSN(s *string) (uint64, error) {
	if s == nil {
		return 0, nil
	}
	lsn, err := pglogrepl.ParseLSN(*s)
	if err != nil {
		return 0, fmt.Errorf("parse LSN %q: %w", *s, err)
	}
	return uint64(lsn), nil
}

// setSnapshot records snapshot progress for Health.
func (s *Source) setSnapshot(p SnapshotProgress) {
	s.mu.Lock()
	s.health.Snapshot = p
	s.mu.Unlock()
}
