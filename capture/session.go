package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/cdcd-dev/cdcd/record"
)

// sessionOutcome is how far a session got before it ended.
type sessionOutcome int

const (
	// sessionRefused: it failed before streaming.
	sessionRefused sessionOutcome = iota
	// sessionStreamed: it streamed, but did not work (session.worked).
	sessionStreamed
	// sessionWorked: it confirmed a position past its start or streamed
	// for ImpairAfter, which resets the reconnect backoff.
	sessionWorked
)

// stream runs one replication session and says how far it got.
func (s *Source) stream(ctx context.Context, h Handler) (sessionOutcome, error) {
	catalog, conn, err := s.connectBoth(ctx)
	if err != nil {
		return sessionRefused, err
	}
	defer catalog.Close(context.WithoutCancel(ctx))
	defer conn.Close(context.WithoutCancel(ctx))

	start, version, err := s.startReplication(ctx, catalog, conn, h)
	if err != nil {
		return sessionRefused, err
	}
	s.log.Info("replication started", "slot", s.cfg.Slot, "from", pglogrepl.LSN(start), "streaming", s.streamsInProgress(version))
	s.established()

	ss := &session{
		src: s, conn: conn, h: h, confirmed: start, start: start, began: time.Now(),
		asm: newAssembler(
			func(relID uint32) (catalogRel, error) {
				return s.lookupRel(ctx, catalog, relID, version >= pgPublishesGenerated)
			},
			func(oid uint32, refresh bool) error { return s.types.resolve(ctx, catalog, oid, refresh) },
			s.met, s.log),
	}
	ss.asm.store, ss.asm.budget = s.spill, s.cfg.MemoryBudget
	ss.asm.refuseKeyless = !s.cfg.KeylessTables
	// After run, whose worker is done with what it was handed: the spills
	// of transactions still open are received again next session.
	defer ss.asm.discard()
	err = ss.run(ctx)
	// A session that ended for want of spill space (SPILL_FULL, which the
	// store reported) got nowhere: the next one waits longer, and reads
	// the same transaction again.
	if ss.worked && !errors.Is(err, record.ErrSpillFull) {
		return sessionWorked, err
	}
	return sessionStreamed, err
}

// startReplication checks the slot, or takes the initial snapshot, and
// starts streaming from the handler's persisted position, which it
// returns with the server's version (server_version_num).
func (s *Source) startReplication(ctx context.Context, catalog *pgx.Conn, conn *pgconn.PgConn, h Handler) (uint64, int, error) {
	var version int
	if err := catalog.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return 0, 0, fmt.Errorf("read server version: %w", err)
	}
	var start uint64
	if sh, ok := h.(SnapshotHandler); ok && s.cfg.Snapshot && h.Persisted() == 0 {
		var err error
		if start, err = s.initialSnapshot(ctx, catalog, conn, version, snapshotHandler{sh}); err != nil {
			return 0, 0, err
		}
	} else {
		start = h.Persisted()
		if err := s.checkSlot(ctx, catalog, start); err != nil {
			return 0, 0, err
		}
	}
	s.slotReady.Store(true)

	err := pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, pglogrepl.LSN(start), pglogrepl.StartReplicationOptions{
		PluginArgs: pluginArgs(s.cfg.Publication, s.streamsInProgress(version)),
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "42704" || pgErr.Code == "55000" && strings.Contains(pgErr.Message, "can no longer get changes")) {
			return 0, 0, fmt.Errorf("%w: %s", ErrSlotLost, pgErr.Message)
		}
		return 0, 0, fmt.Errorf("start replication on slot %q: %w", s.cfg.Slot, err)
	}
	return start, version, nil
}

// streamsInProgress says whether large transactions reach cdcd while in
// progress (protocol version 2, PostgreSQL 14 and later).
func (s *Source) streamsInProgress(version int) bool {
	return version >= 140000 && !s.cfg.DisableStreaming
}

// pluginArgs are pgoutput's options. Protocol version 2 with streaming sends
// large transactions while they are still in progress, so the server does
// not spill them to its disk and their changes reach cdcd early; cdcd still
// hands a transaction over only once it commits.
func pluginArgs(publication string, streaming bool) []string {
	args := []string{"proto_version '1'"}
	if streaming {
		args = []string{"proto_version '2'", "streaming 'on'"}
	}
	return append(args, "publication_names '"+strings.ReplaceAll(publication, "'", "''")+"'", "messages 'true'")
}

// checkSlot turns a slot that disappeared, lost its WAL or was advanced
// past the checkpoint into ErrSlotLost before START_REPLICATION could
// silently start elsewhere.
func (s *Source) checkSlot(ctx context.Context, catalog *pgx.Conn, checkpoint uint64) error {
	slot, found, err := s.slotState(ctx, catalog)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: slot %q was dropped while the stream used it; delete the stream and create it again", ErrSlotLost, s.cfg.Slot)
	}
	if slot.walStatus == "lost" {
		return fmt.Errorf("%w: slot %q has wal_status lost: PostgreSQL removed WAL it had not delivered (max_slot_wal_keep_size); delete the stream and create it again", ErrSlotLost, s.cfg.Slot)
	}
	return s.checkAdvanced(slot, checkpoint)
}

// checkAdvanced refuses a slot whose confirmed position is past the
// stream's checkpoint. cdcd confirms only what it has checkpointed, so
// something else moved the slot (pg_replication_slot_advance, or another
// client reading it), and PostgreSQL would start from the slot's position,
// skipping the changes in between. A checkpoint of 0 means nothing was
// delivered yet: the stream starts where its new slot does.
func (s *Source) checkAdvanced(slot slotRow, checkpoint uint64) error {
	if checkpoint == 0 || slot.confirmed <= checkpoint {
		return nil
	}
	return unmet("slot", s.cfg.Slot, "%w: slot %q has confirmed_flush_lsn %s, past the stream's checkpoint %s: something other than cdcd advanced it (pg_replication_slot_advance, or another client reading the slot), so the changes between the two are gone from it; delete the stream and create it again",
		ErrSlotLost, s.cfg.Slot, pglogrepl.LSN(slot.confirmed), pglogrepl.LSN(checkpoint))
}

// session is one replication connection's receive loop. Only its goroutine
// touches conn; a worker goroutine hands transactions to the Handler so that
// a blocked Handler never stops status reports.
type session struct {
	src  *Source
	conn *pgconn.PgConn
	h    Handler
	asm  *assembler

	confirmed uint64 // last flush position sent
	start     uint64 // where the session started
	began     time.Time
	// worked is set once the session confirmed a position past start or
	// ran for ImpairAfter: the source works (trouble.go).
	worked    bool
	queued    uint64 // end LSN of the last transaction given to the worker
	serverEnd uint64 // WAL position of the last keepalive
	lastRecv  time.Time
}

func (ss *session) run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ss.src.setSessionEnd(cancel)
	defer ss.src.setSessionEnd(nil)
	txns := make(chan *record.Txn)
	workErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ss.work(ctx, txns, workErr)
	}()

	err := ss.receive(ctx, txns, workErr)
	if ctx.Err() != nil {
		// Whatever failed, failed because the session was ended.
		err = context.Cause(ctx)
	}
	close(txns)
	cancel(nil)
	// The connection goes before the worker is waited for: the worker may
	// be blocked in Handle for backpressure, and a walsender holds its
	// server's shutdown until its client either confirms everything sent
	// or leaves.
	ss.conn.Close(context.WithoutCancel(ctx))
	if errors.Is(err, errSourceShutdown) {
		ss.released(err)
	}
	wg.Wait()
	return err
}

// work hands transactions to the Handler until txns is closed or Handle
// fails.
func (ss *session) work(ctx context.Context, txns <-chan *record.Txn, workErr chan<- error) {
	for t := range txns {
		if err := ss.h.Handle(ctx, t); err != nil {
			workErr <- err
			return
		}
	}
}

// receive reads the replication stream, handing committed transactions to
// the worker, until the session fails.
func (ss *session) receive(ctx context.Context, txns chan<- *record.Txn, workErr <-chan error) error {
	interval := ss.src.cfg.StatusInterval
	// Every status report asks for a reply, so a server that says nothing
	// for several intervals is gone even if the socket does not know yet
	// (a network partition can leave writes buffered for many minutes).
	silence := max(6*interval, 30*time.Second)
	nextStatus := time.Now().Add(interval)
	ss.lastRecv = time.Now()
	dl := newReadDeadline(ctx, ss.conn.Conn())
	defer dl.stop()
	for {
		if !time.Now().Before(nextStatus) {
			// Asking for a reply makes the server send its position now
			// instead of every wal_sender_timeout/2, so a slot whose
			// tables are idle advances once per interval.
			if err := ss.sendStatus(ctx, true); err != nil {
				return err
			}
			nextStatus = time.Now().Add(interval)
		}
		select {
		case err := <-workErr:
			return fmt.Errorf("handle transaction: %w", handlerError{err})
		default:
		}
		if err := dl.until(ctx, nextStatus); err != nil {
			return err
		}
		raw, err := ss.conn.ReceiveMessage(context.Background())
		if err != nil {
			if pgconn.Timeout(err) && ctx.Err() == nil {
				if time.Since(ss.lastRecv) > silence {
					return fmt.Errorf("%w: nothing from the server for %v", errConnLost, time.Since(ss.lastRecv).Round(time.Second))
				}
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %w", errConnLost, err)
		}
		ss.lastRecv = time.Now()
		switch msg := raw.(type) {
		case *pgproto3.ErrorResponse:
			return replicationError(pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyData:
			if err := ss.copyData(ctx, msg.Data, txns, workErr); err != nil {
				return err
			}
		case *pgproto3.CopyDone, *pgproto3.CommandComplete, *pgproto3.ReadyForQuery:
			// Only a server shutting down ends the stream by itself.
			return fmt.Errorf("%w: the server ended the replication stream", errSourceShutdown)
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			return fmt.Errorf("%w: unexpected message %T", errConnLost, raw)
		}
	}
}

// readDeadline ends the receive loop's reads when the next status report
// is due, or at once when the session ends, through the connection's read
// deadline. Handing ReceiveMessage a cancellable context instead makes
// pgconn register and unregister a context.AfterFunc on every message,
// which on single-row transactions (three messages each) was a tenth of
// cdcd's CPU (BENCHMARKS.md#optimisations). A read that times out loses
// nothing: pgproto3 keeps a partial message for the next call, and pgconn
// closes the connection only on errors that are not timeouts.
type readDeadline struct {
	conn net.Conn
	at   time.Time
	stop func() bool
}

func newReadDeadline(ctx context.Context, conn net.Conn) *readDeadline {
	d := &readDeadline{conn: conn}
	d.stop = context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	return d
}

// until sets the deadline to t and reports whether ctx has ended. ctx is
// checked after the deadline is set: a cancellation whose AfterFunc ran
// before that set, and so was undone by it, is seen here.
func (d *readDeadline) until(ctx context.Context, t time.Time) error {
	if !t.Equal(d.at) {
		if err := d.conn.SetReadDeadline(t); err != nil {
			return fmt.Errorf("%w: set read deadline: %w", errConnLost, err)
		}
		d.at = t
	}
	return ctx.Err()
}

func (ss *session) copyData(ctx context.Context, data []byte, txns chan<- *record.Txn, workErr <-chan error) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("parse keepalive: %w", err)
		}
		ss.serverEnd = max(ss.serverEnd, uint64(ka.ServerWALEnd))
		if ka.ReplyRequested {
			return ss.sendStatus(ctx, false)
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("parse XLogData: %w", err)
		}
		// WALData aliases the connection's read buffer; that is safe
		// because the decoders copy tuple data and names out of it.
		msg, err := parseMessage(xld.WALData, ss.asm.inStream)
		if err != nil {
			return fmt.Errorf("parse pgoutput message at %s: %w", xld.WALStart, err)
		}
		txn, err := ss.asm.handle(msg)
		if err != nil {
			if _, ok := errors.AsType[*TableChangedError](err); ok {
				// The refused transaction ends after everything handed
				// over so far (XLogData inside a transaction carries no
				// position of its own).
				ss.src.refusedAt = max(ss.queued, ss.h.Delivered(), 1)
			}
			return fmt.Errorf("pgoutput at %s: %w", xld.WALStart, err)
		}
		if txn != nil {
			if at := ss.src.refusedAt; at != 0 && txn.EndLSN > at {
				// The change refused before is delivered now (its table
				// got its primary key back, say).
				ss.src.refusedAt = 0
				ss.src.cfg.Report("", nil)
			}
			ss.src.log.Debug("transaction received", "xid", txn.Xid, "end_lsn", pglogrepl.LSN(txn.EndLSN), "changes", len(txn.Changes))
			ss.src.met.transactions.Inc()
			ss.src.met.changes.Add(float64(len(txn.Changes)))
			return ss.hand(ctx, txn, txns, workErr)
		}
	}
	return nil
}

// hand gives a committed transaction to the worker, reporting status while
// the worker is busy so the server never times the session out.
func (ss *session) hand(ctx context.Context, txn *record.Txn, txns chan<- *record.Txn, workErr <-chan error) (err error) {
	defer func() {
		if err != nil && txn.Spilled != nil {
			_ = txn.Spilled.Close() // not handed over: delete its spill
		}
	}()
	select {
	case txns <- txn: // the worker was idle: no ticker needed
		ss.queued = txn.EndLSN
		return nil
	default:
	}
	tick := time.NewTicker(ss.src.cfg.StatusInterval)
	defer tick.Stop()
	for {
		select {
		case txns <- txn:
			ss.queued = txn.EndLSN
			// Time spent here, not reading, is no silence of the server.
			ss.lastRecv = time.Now()
			return nil
		case err := <-workErr:
			return fmt.Errorf("handle transaction: %w", handlerError{err})
		case <-tick.C:
			// No reply requested: nothing reads the connection until the
			// worker takes the transaction.
			if err := ss.sendStatus(ctx, false); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sendStatus reports the delivered position. When every transaction handed
// over is delivered and none is open, the last keepalive's position is safe
// too: that lets the slot advance while the published tables are idle.
//
// Why a keepalive's position never skips a change: the server sends a
// transaction only after decoding its commit, and a keepalive carries the
// position decoded so far, so every transaction received after a keepalive
// commits at or after its position and is sent again from there. Transactions
// streamed in progress (protocol 2) that have not committed are decoded
// again from the slot's restart_lsn, which their first change holds back.
func (ss *session) sendStatus(ctx context.Context, reply bool) error {
	pos := ss.h.Delivered()
	if pos >= ss.queued && !ss.asm.inTxn && ss.serverEnd > pos {
		pos = ss.serverEnd
	}
	pos = max(pos, ss.confirmed)
	if pos > ss.confirmed || ss.h.Persisted() < pos {
		if err := ss.h.Persist(ctx, pos); err != nil {
			return fmt.Errorf("persist checkpoint: %w", err)
		}
	}
	// A zero position (nothing confirmed yet) is still sent, for the reply:
	// the server ignores a zero flush position.
	err := pglogrepl.SendStandbyStatusUpdate(ctx, ss.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(pos),
		WALFlushPosition: pglogrepl.LSN(pos),
		WALApplyPosition: pglogrepl.LSN(pos),
		ReplyRequested:   reply,
	})
	if err != nil {
		return fmt.Errorf("%w: send standby status: %w", errConnLost, err)
	}
	ss.confirmed = pos
	if !ss.worked && (pos > ss.start || time.Since(ss.began) >= ss.src.cfg.ImpairAfter) {
		ss.worked = true
		ss.src.works()
	}
	return nil
}

// replicationError is an error the walsender sent. SQLSTATE 22021 is text
// that is not valid UTF-8, which only a SQL_ASCII database can hold: the
// walsender cannot convert it for cdcd's client_encoding and stops at the
// transaction that holds it, every time (docs/bad-input.md#sql_ascii).
func replicationError(e *pgconn.PgError) error {
	if e.Code == "22021" {
		return fmt.Errorf("replication: %w: a text value in the source is not UTF-8 (a SQL_ASCII database stores any bytes) and PostgreSQL cannot send it, so the stream stops before that transaction: correct the value, then delete the stream and create it again with snapshot = true, or convert the database to UTF8", e)
	}
	return fmt.Errorf("replication: %w", e)
}
