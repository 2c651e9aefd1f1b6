package capture

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/capture/pgauth"
	"github.com/cdcd-dev/cdcd/retry"
)

// ErrSlotLost means the slot can no longer supply the changes cdcd has not
// delivered: it was dropped underneath cdcd or PostgreSQL removed the WAL it
// needed (wal_status = lost). Creating a new slot would silently skip
// changes, so the stream fails instead (SOURCE_SLOT_LOST).
var ErrSlotLost = errors.New("replication slot lost")

// Info is what Prepare learned about the source.
type Info struct {
	SystemID uint64
	Database string
	// SlotCreated is true when Prepare created the slot.
	SlotCreated bool
	// SnapshotPending is true when the stream's initial snapshot has not
	// finished: Run then creates the slot (or keeps the one an interrupted
	// snapshot left) and reads the tables before streaming.
	SnapshotPending bool
	// ConfirmedFlush is the slot's confirmed_flush_lsn (0 while a snapshot
	// is pending).
	ConfirmedFlush uint64
}

// Unmet is a prerequisite of the source that is not met, as Check and
// Prepare report it. Check names it: server_version, wal_level,
// replication, table, replica_identity, slot, max_replication_slots or
// max_wal_senders; Object is the role, table or slot concerned. Where
// pgauth.CheckGrants checks the same ("replication" with the role, "table"
// with the table as configured), the names are its Finding's, so that a
// report listing both shows each problem once.
type Unmet struct {
	Check  string
	Object string
	Err    error
}

func (e *Unmet) Error() string { return e.Err.Error() }
func (e *Unmet) Unwrap() error { return e.Err }

// unmet builds an *Unmet whose message is format's.
func unmet(check, object, format string, args ...any) error {
	return &Unmet{Check: check, Object: object, Err: fmt.Errorf(format, args...)}
}

// Check connects and runs the prerequisite checks Prepare starts with, for
// a stream that has delivered nothing yet, and changes nothing: the server
// (version, wal_level, the role's REPLICATION), each table (it exists, and
// its replica identity carries its keys and, unless
// Config.SetReplicaIdentityFull lets Prepare set it, its TOASTed values),
// a slot of the same name (plugin, database, retained WAL) and, when the
// slot would be created, room for it. It returns the first problem, an
// *Unmet, as Prepare would.
func (s *Source) Check(ctx context.Context) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = s.prerequisites(ctx, conn, 0, false)
	return err
}

// prereqs is what the prerequisite checks learned of the source.
type prereqs struct {
	version  int // server_version_num
	tables   []table
	slot     slotRow
	hasSlot  bool
	snapshot bool // Run reads the tables before streaming
}

// prerequisites runs Check's checks on conn; resume is as for Prepare.
// With apply, it also sets REPLICA IDENTITY FULL where a table needs it and
// the stream allows it (Prepare); without, it only checks (Check).
func (s *Source) prerequisites(ctx context.Context, conn *pgx.Conn, resume uint64, apply bool) (prereqs, error) {
	version, err := checkServer(ctx, conn)
	if err != nil {
		return prereqs{}, err
	}
	tables, err := s.checkTables(ctx, conn, version, apply)
	if err != nil {
		return prereqs{}, err
	}
	if err := s.warnEncoding(ctx, conn); err != nil {
		return prereqs{}, err
	}
	slot, hasSlot, err := s.slotState(ctx, conn)
	if err != nil {
		return prereqs{}, err
	}
	if hasSlot {
		var db string
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
			return prereqs{}, fmt.Errorf("read database name: %w", err)
		}
		if err := s.checkSlotOwner(slot, db); err != nil {
			return prereqs{}, err
		}
		if err := s.checkSlotFree(slot, apply); err != nil {
			return prereqs{}, err
		}
	}
	f := prereqs{version: version, tables: tables, slot: slot, hasSlot: hasSlot, snapshot: s.cfg.Snapshot && resume == 0}
	switch {
	case hasSlot && slot.walStatus == "lost":
		// Also for a pending snapshot: the slot it left must replay the
		// deletes of rows an earlier attempt sent (snapshot.go).
		return prereqs{}, unmet("slot", s.cfg.Slot, "%w: slot %q has wal_status lost: PostgreSQL removed WAL it had not delivered (max_slot_wal_keep_size); delete the stream and create it again", ErrSlotLost, s.cfg.Slot)
	case !hasSlot && resume > 0:
		return prereqs{}, unmet("slot", s.cfg.Slot, "%w: slot %q does not exist but the stream had delivered up to %s; changes after that may be gone, so delete the stream and create it again", ErrSlotLost, s.cfg.Slot, pglogrepl.LSN(resume))
	case hasSlot && !f.snapshot:
		if err := s.checkAdvanced(slot, resume); err != nil {
			return prereqs{}, err
		}
	case !hasSlot || f.snapshot:
		// The slot will be created, or a snapshot's leftover reused, and
		// a replication connection opened.
		if err := checkHeadroom(ctx, conn, !hasSlot); err != nil {
			return prereqs{}, err
		}
	}
	return f, nil
}

// Prepare checks the source's prerequisites (Check) and creates the
// publication and the slot when they are missing; an existing slot is
// reused, never dropped. resume is the last position cdcd persisted for
// the stream (0 for a stream that never delivered anything); a missing
// slot with resume > 0 is ErrSlotLost, never a new slot. With
// Config.Snapshot and resume == 0 the slot is left to Run, which must
// create it on the connection that reads the snapshot.
//
// Every failure but ErrSlotLost is reported (Config.Report) as the code
// Classify gives it, with Describe's words; the next success clears it.
func (s *Source) Prepare(ctx context.Context, resume uint64) (Info, error) {
	info, err := s.prepare(ctx, resume)
	s.prepared(err)
	return info, err
}

func (s *Source) prepare(ctx context.Context, resume uint64) (Info, error) {
	conn, err := s.connect(ctx)
	if err != nil {
		return Info{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	f, err := s.prerequisites(ctx, conn, resume, true)
	if err != nil {
		return Info{}, s.tableRefused(err, resume)
	}
	s.setTables(f.tables)
	if err := s.ensurePublication(ctx, conn, f.version, f.tables); err != nil {
		return Info{}, err
	}
	rconn, err := s.connectReplication(ctx)
	if err != nil {
		return Info{}, err
	}
	defer rconn.Close(context.WithoutCancel(ctx))
	sys, err := pglogrepl.IdentifySystem(ctx, rconn)
	if err != nil {
		return Info{}, fmt.Errorf("identify system: %w", err)
	}
	info := Info{Database: sys.DBName}
	if _, err := fmt.Sscan(sys.SystemID, &info.SystemID); err != nil {
		return Info{}, fmt.Errorf("parse system identifier %q: %w", sys.SystemID, err)
	}
	switch {
	case f.snapshot:
		info.SnapshotPending = true
	case f.hasSlot:
		info.ConfirmedFlush = f.slot.confirmed
	default:
		return s.createSlot(ctx, rconn, info)
	}
	return info, nil
}

// createSlot creates the stream's slot and notes where it starts in info.
func (s *Source) createSlot(ctx context.Context, rconn *pgconn.PgConn, info Info) (Info, error) {
	res, err := pglogrepl.CreateReplicationSlot(ctx, rconn, s.cfg.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
	if err != nil {
		return Info{}, slotCreateError(s.cfg.Slot, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return Info{}, fmt.Errorf("parse consistent point %q: %w", res.ConsistentPoint, err)
	}
	info.SlotCreated, info.ConfirmedFlush = true, uint64(lsn)
	s.log.Info("created replication slot", "slot", s.cfg.Slot, "lsn", res.ConsistentPoint)
	return info, nil
}

// checkSlotOwner refuses a slot of the same name that cdcd cannot have
// created for this stream; reusing it would read the wrong changes.
func (s *Source) checkSlotOwner(slot slotRow, database string) error {
	if slot.plugin != "pgoutput" {
		return unmet("slot", s.cfg.Slot, "replication slot %q uses plugin %q, not pgoutput: choose another slot name or drop it with SELECT pg_drop_replication_slot('%s')", s.cfg.Slot, slot.plugin, s.cfg.Slot)
	}
	if slot.database != database {
		return unmet("slot", s.cfg.Slot, "replication slot %q belongs to database %q, not %q: choose another slot name", s.cfg.Slot, slot.database, database)
	}
	return nil
}

// warnEncoding warns of a SQL_ASCII database: PostgreSQL stores its text
// unchecked, and a value that is not UTF-8 stops replication at its
// transaction (replicationError). Pure ASCII streams, so it is no refusal.
func (s *Source) warnEncoding(ctx context.Context, conn *pgx.Conn) error {
	var enc, db string
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_encoding'), current_database()").Scan(&enc, &db); err != nil {
		return fmt.Errorf("read server_encoding: %w", err)
	}
	if enc == "SQL_ASCII" {
		s.log.Warn("the source database has server_encoding SQL_ASCII: a text value that is not UTF-8 will stop the stream before its transaction; convert the database to UTF8 to stream it safely",
			"database", db)
	}
	return nil
}

// checkSlotFree refuses, when preparing (apply), a slot another session
// streams from: START_REPLICATION would fail with PostgreSQL's "is active
// for PID" after the stream had been made ACTIVE. Check leaves it out, as
// the session is this cdcd's own while it runs. A walsender of an earlier
// run of this stream that has not ended yet fails one attempt, which is
// retried.
func (s *Source) checkSlotFree(slot slotRow, apply bool) error {
	if !apply || slot.activePID == 0 {
		return nil
	}
	return unmet("slot", s.cfg.Slot, "replication slot %q is in use by another client (pid %d, application_name %q): stop that client, or end its session with SELECT pg_terminate_backend(%d), or choose another slot name; cdcd retries until the slot is free", s.cfg.Slot, slot.activePID, slot.activeApp, slot.activePID)
}

// checkHeadroom makes sure the server can take one more slot (newSlot) and
// one more replication connection, so that a full server is a clear error
// naming the setting rather than a failure halfway through creation.
func checkHeadroom(ctx context.Context, conn *pgx.Conn, newSlot bool) error {
	var maxSlots, slots, maxSenders, senders int
	err := conn.QueryRow(ctx, `SELECT current_setting('max_replication_slots')::int,
			(SELECT count(*) FROM pg_replication_slots)::int,
			current_setting('max_wal_senders')::int,
			(SELECT count(*) FROM pg_stat_replication)::int`).Scan(&maxSlots, &slots, &maxSenders, &senders)
	if err != nil {
		return fmt.Errorf("read replication limits: %w", err)
	}
	if newSlot && slots >= maxSlots {
		return unmet("max_replication_slots", "", "max_replication_slots is %d and %d slots exist, so cdcd cannot create another: raise max_replication_slots in postgresql.conf and restart PostgreSQL, or drop a slot nothing uses (SELECT slot_name, active FROM pg_replication_slots; SELECT pg_drop_replication_slot('<name>'))", maxSlots, slots)
	}
	if senders >= maxSenders {
		return unmet("max_wal_senders", "", "max_wal_senders is %d and %d replication connections are open, so cdcd cannot open one: raise max_wal_senders in postgresql.conf and restart PostgreSQL, or stop a replication client (SELECT pid, application_name FROM pg_stat_replication)", maxSenders, senders)
	}
	return nil
}

// slotCreateError adds the fix to PostgreSQL's errors for a full server.
func slotCreateError(slot string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "53400" {
		return fmt.Errorf("create replication slot %q: %w: raise max_replication_slots in postgresql.conf and restart PostgreSQL, or drop a slot nothing uses", slot, err)
	}
	return fmt.Errorf("create replication slot %q: %w", slot, err)
}

// minVersion is the oldest PostgreSQL cdcd reads: 13 added
// pg_replication_slots.wal_status, which tells a lost slot apart.
const minVersion = 130000

func checkServer(ctx context.Context, conn *pgx.Conn) (int, error) {
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return 0, fmt.Errorf("read server version: %w", err)
	}
	if version < minVersion {
		return 0, unmet("server_version", "", "the source runs PostgreSQL with server_version_num %d; cdcd needs 13 or later (14 or later to stream large transactions in progress)", version)
	}
	var walLevel string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		return 0, fmt.Errorf("read wal_level: %w", err)
	}
	if walLevel != "logical" {
		return 0, unmet("wal_level", "", "source wal_level is %q, cdcd needs logical: set wal_level = logical in postgresql.conf (rds.logical_replication = 1 on RDS) and restart PostgreSQL", walLevel)
	}
	var role string
	var canReplicate bool
	err := conn.QueryRow(ctx, `SELECT current_user, rolsuper OR rolreplication
		OR EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'rds_replication' AND pg_has_role(current_user, r.oid, 'MEMBER'))
		FROM pg_roles WHERE rolname = current_user`).Scan(&role, &canReplicate)
	if err != nil {
		return 0, fmt.Errorf("read role attributes: %w", err)
	}
	if !canReplicate {
		r := pgx.Identifier{role}.Sanitize()
		return 0, unmet("replication", role, "the source role %s lacks REPLICATION: run ALTER ROLE %s REPLICATION (GRANT rds_replication TO %s on RDS)", r, r, r)
	}
	return version, nil
}

type slotRow struct {
	plugin, database, walStatus string
	confirmed                   uint64
	// activePID is the session streaming from the slot (0 for none), and
	// activeApp its application_name.
	activePID int
	activeApp string
}

func (s *Source) slotState(ctx context.Context, conn *pgx.Conn) (slotRow, bool, error) {
	var r slotRow
	var confirmed *string
	var walStatus *string
	err := conn.QueryRow(ctx, `SELECT plugin, database, confirmed_flush_lsn::text, wal_status, COALESCE(active_pid, 0),
			COALESCE((SELECT application_name FROM pg_stat_activity a WHERE a.pid = s.active_pid), '')
		FROM pg_replication_slots s WHERE slot_name = $1`, s.cfg.Slot).Scan(&r.plugin, &r.database, &confirmed, &walStatus, &r.activePID, &r.activeApp)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("read replication slot %q: %w", s.cfg.Slot, err)
	}
	if walStatus != nil {
		r.walStatus = *walStatus
	}
	if confirmed != nil {
		lsn, err := pglogrepl.ParseLSN(*confirmed)
		if err != nil {
			return r, false, fmt.Errorf("parse confirmed_flush_lsn %q: %w", *confirmed, err)
		}
		r.confirmed = uint64(lsn)
	}
	return r, true, nil
}

// connect opens a regular connection for catalog queries.
func (s *Source) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(s.cfg.DSN)
	if err != nil {
		return nil, pgauth.DSNError(err)
	}
	if err := s.configure(ctx, &cfg.Config); err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		s.connectFailed(err)
		return nil, &connectError{what: "connect to source", err: err}
	}
	return conn, nil
}

// sessionSettings are the settings the value decoders in record assume for
// PostgreSQL's text output, forced on every session cdcd opens: the
// walsender formats pgoutput's text values with its own session's
// settings, and snapshot reads use the regular connection's.
var sessionSettings = map[string]string{
	"DateStyle":          "ISO, MDY",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"client_encoding":    "UTF8",
	"TimeZone":           "UTC",
}

// configure applies the session settings and the credentials of a new
// connection; Config.Configure runs for every connection so that rotated
// passwords, secrets and IAM tokens take effect on the next reconnect.
func (s *Source) configure(ctx context.Context, cfg *pgconn.Config) error {
	for k, v := range sessionSettings {
		cfg.RuntimeParams[k] = v
	}
	if s.cfg.Configure == nil {
		return nil
	}
	if err := s.cfg.Configure(ctx, cfg); err != nil {
		return fmt.Errorf("source credentials: %w", err)
	}
	return nil
}

func (s *Source) connectFailed(err error) {
	if s.cfg.OnConnectError != nil {
		s.cfg.OnConnectError(err)
	}
}

// connectBoth opens a regular and a replication connection at the same
// time, for a session: each costs several round trips and, with SCRAM, a
// key derivation at both ends, and opened one after the other they were a
// good part of a session's start. (Prepare opens its replication
// connection only after the checks, whose count of walsenders must not
// include its own.) On error neither is left open.
func (s *Source) connectBoth(ctx context.Context) (*pgx.Conn, *pgconn.PgConn, error) {
	type result struct {
		conn *pgconn.PgConn
		err  error
	}
	repl := make(chan result, 1)
	go func() {
		c, err := s.connectReplication(ctx)
		repl <- result{c, err}
	}()
	conn, err := s.connect(ctx)
	r := <-repl
	if err == nil && r.err == nil {
		return conn, r.conn, nil
	}
	if conn != nil {
		conn.Close(context.WithoutCancel(ctx))
	}
	if r.conn != nil {
		r.conn.Close(context.WithoutCancel(ctx))
	}
	return nil, nil, cmp.Or(err, r.err)
}

func (s *Source) connectReplication(ctx context.Context) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(s.cfg.DSN)
	if err != nil {
		return nil, pgauth.DSNError(err)
	}
	if err := s.configure(ctx, cfg); err != nil {
		return nil, err
	}
	cfg.RuntimeParams["replication"] = "database"
	if cfg.RuntimeParams["application_name"] == "" {
		// Names the walsender in pg_stat_replication.
		cfg.RuntimeParams["application_name"] = "cdcd"
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		s.connectFailed(err)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "53300" {
			return nil, fmt.Errorf("open replication connection: %w: raise max_wal_senders (or max_connections) in postgresql.conf and restart PostgreSQL, or stop a replication client (SELECT pid, application_name FROM pg_stat_replication)", err)
		}
		return nil, &connectError{what: "open replication connection", err: err}
	}
	return conn, nil
}

// connectError is a connection that failed, in pgauth.Describe's words,
// which name the cause and the fix (the host and port, the role, the
// password source) and never a secret; it unwraps to pgx's error.
type connectError struct {
	what string
	err  error
}

func (e *connectError) Error() string {
	cause, msg := pgauth.Describe(e.err)
	return e.what + " (" + cause + "): " + msg
}

func (e *connectError) Unwrap() error { return e.err }

// Drop removes the stream's slot, and its publication unless that is
// managed outside cdcd, from the source, for a stream that is being deleted; a missing slot or publication is not an
// error. Run must have ended: an active slot is waited for a few seconds (a
// walsender releases its slot a moment after its client leaves) and then
// reported, never terminated, since its user may not be cdcd.
func (s *Source) Drop(ctx context.Context) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pid *int32
		err := conn.QueryRow(ctx, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) {
			break
		}
		if err != nil {
			return fmt.Errorf("read replication slot %q: %w", s.cfg.Slot, err)
		}
		if pid == nil {
			_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, s.cfg.Slot)
			var pgErr *pgconn.PgError
			switch {
			case err == nil:
				s.log.Info("dropped replication slot", "slot", s.cfg.Slot)
			case errors.As(err, &pgErr) && (pgErr.Code == "42704" || pgErr.Code == "55006"):
				continue // dropped meanwhile, or taken: look again
			default:
				return fmt.Errorf("drop replication slot %q: %w", s.cfg.Slot, err)
			}
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("drop replication slot %q: it is in use by process %d: stop the stream (or whatever else reads the slot) first", s.cfg.Slot, *pid)
		}
		if err := retry.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	s.slotReady.Store(false)
	if s.cfg.ExternalPublication {
		return nil // not cdcd's to drop
	}
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{s.cfg.Publication}.Sanitize()); err != nil {
		return fmt.Errorf("drop publication %s: %w", s.cfg.Publication, err)
	}
	s.log.Info("dropped publication", "publication", s.cfg.Publication)
	return nil
}
