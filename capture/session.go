package capture

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/cdcd-dev/cdcd/record"
)

// stream runs one replication session. streamed reports whether it got as
// far as receiving data, which resets the reconnect backoff.
func (s *Source) stream(ctx context.Context, h Handler) (streamed bool, err error) {
	catalog, conn, err := s.connectBoth(ctx)
	if err != nil {
		return false, err
	}
	defer catalog.Close(context.WithoutCancel(ctx))
	defer conn.Close(context.WithoutCancel(ctx))

	var version int
	if err := catalog.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return false, fmt.Errorf("read server version: %w", err)
	}
	var start uint64
	if sh, ok := h.(SnapshotHandler); ok && s.cfg.Snapshot && h.Persisted() == 0 {
		if start, err = s.initialSnapshot(ctx, catalog, conn, version, sh); err != nil {
			return false, err
		}
	} else {
		if err := s.checkSlot(ctx, catalog); err != nil {
			return false, err
		}
		start = h.Persisted()
	}
	s.slotReady.Store(true)

	streaming := version >= 140000 && !s.cfg.DisableStreaming
	err = pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, pglogrepl.LSN(start), pglogrepl.StartReplicationOptions{
		PluginArgs: pluginArgs(s.cfg.Publication, streaming),
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "42704" || pgErr.Code == "55000" && strings.Contains(pgErr.Message, "can no longer get changes")) {
			return false, fmt.Errorf("%w: %s", ErrSlotLost, pgErr.Message)
		}
		return false, fmt.Errorf("start replication on slot %q: %w", s.cfg.Slot, err)
	}
	s.log.Info("replication started", "slot", s.cfg.Slot, "from", pglogrepl.LSN(start), "streaming", streaming)
	if s.unavailable || !s.streamed {
		s.unavailable, s.streamed = false, true
		s.cfg.Report("", nil)
	}

	ss := &session{
		src: s, conn: conn, h: h, confirmed: start,
		asm: newAssembler(
			func(relID uint32) ([]string, error) { return primaryKey(ctx, catalog, relID) },
			func(oid uint32, refresh bool) error { return s.types.resolve(ctx, catalog, oid, refresh) },
			s.met, s.log),
	}
	ss.asm.store, ss.asm.budget = s.spill, s.cfg.MemoryBudget
	// After run, whose worker is done with what it was handed: the spills
	// of transactions still open are received again next session.
	defer ss.asm.discard()
	return true, ss.run(ctx)
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

// checkSlot turns a slot that disappeared or lost its WAL into ErrSlotLost
// before START_REPLICATION could silently start elsewhere.
func (s *Source) checkSlot(ctx context.Context, catalog *pgx.Conn) error {
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
	return nil
}

func primaryKey(ctx context.Context, conn *pgx.Conn, relID uint32) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT a.attname FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = $1 AND i.indisprimary`, relID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
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
	dl := deadline{parent: ctx}
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
			return fmt.Errorf("handle transaction: %w", err)
		default:
		}
		raw, err := ss.conn.ReceiveMessage(dl.until(nextStatus))
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
			return fmt.Errorf("replication: %w", pgconn.ErrorResponseToPgError(msg))
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

// deadline is a context with a deadline that is made anew only when the
// deadline moves: the receive loop waits for each message until the next
// status report is due, and a context with a deadline costs a timer and
// four allocations, which at 100k messages a second showed in profiles.
type deadline struct {
	parent context.Context
	at     time.Time
	ctx    context.Context
	cancel context.CancelFunc
}

func (d *deadline) until(t time.Time) context.Context {
	if d.ctx == nil || !t.Equal(d.at) {
		d.stop()
		d.ctx, d.cancel = context.WithDeadline(d.parent, t)
		d.at = t
	}
	return d.ctx
}

func (d *deadline) stop() {
	if d.cancel != nil {
		d.cancel()
	}
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
			return fmt.Errorf("pgoutput at %s: %w", xld.WALStart, err)
		}
		if txn != nil {
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
			return fmt.Errorf("handle transaction: %w", err)
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
	return nil
}
