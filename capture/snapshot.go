package capture

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/record"
)

// snapshotCursor names the cursor that reads one table.
const snapshotCursor = "cdcd_snapshot"

// progressEvery paces the snapshot's progress log lines.
const progressEvery = 10 * time.Second

// initialSnapshot reads every table and hands the rows to h, then returns
// the position streaming continues from: the consistent point of the
// stream's slot. Nothing before the last batch is delivered is persisted
// (a nonzero checkpoint is the mark that the snapshot finished), so a
// snapshot cut short by an error or a crash runs again.
//
// The first attempt creates the slot with an exported snapshot and reads
// the tables in it: rows committed before the consistent point are in the
// snapshot, changes committed after it come from the slot, with neither a
// gap nor an overlap. A later attempt keeps the slot the first one created
// (docs/records.md#snapshot-retries): it reads the tables afresh, in a
// transaction that starts after the slot exists, and streaming still starts
// at the slot's consistent point. Every change since the first attempt is
// therefore replayed after the fresh rows, deletes of rows an earlier
// attempt already sent included; dropping the slot instead would skip
// those deletes and leave consumers with rows the source no longer has.
func (s *Source) initialSnapshot(ctx context.Context, catalog *pgx.Conn, rconn *pgconn.PgConn, version int, h SnapshotHandler) (uint64, error) {
	slot, found, err := s.slotState(ctx, catalog)
	if err != nil {
		return 0, err
	}
	var snap snapshotRead
	var start uint64
	switch {
	case found:
		if start, err = s.resumeSlot(ctx, catalog, slot); err != nil {
			return 0, err
		}
		// A slot that existed before is lost if it goes (health.go). One
		// created just now is not marked so until streaming starts: the
		// health check may have read the slot's absence a moment before.
		s.slotReady.Store(true)
	case s.snapshotSlot || h.SnapshotStarted():
		// Gone since an earlier attempt, of this Source or of a run
		// before a restart, created or found it: rows that attempt sent
		// may have been deleted since, and only that slot could replay
		// the deletes.
		return 0, fmt.Errorf("%w: slot %q was dropped while the initial snapshot was unfinished; delete the stream and create it again", ErrSlotLost, s.cfg.Slot)
	default:
		if snap, err = s.createSnapshotSlot(ctx, catalog, rconn); err != nil {
			return 0, err
		}
		// Durable before any row leaves: a restart that finds the slot
		// gone must not take it for a first start.
		if err := h.MarkSnapshotStarted(ctx); err != nil {
			return 0, fmt.Errorf("record the initial snapshot's start: %w", err)
		}
		start = snap.lsn
	}
	s.snapshotSlot = true

	began := time.Now()
	prog, err := s.readSnapshot(ctx, catalog, version, snap, h)
	if err != nil {
		return 0, err
	}
	if err := h.SnapshotDone(ctx); err != nil {
		return 0, fmt.Errorf("finish initial snapshot: %w", err)
	}
	if err := h.Persist(ctx, start); err != nil {
		return 0, fmt.Errorf("persist initial snapshot checkpoint: %w", err)
	}
	prog.done()
	s.log.Info("initial snapshot done", "rows", prog.prog.Rows, "tables", len(s.cfg.Tables), "duration", time.Since(began).Round(time.Millisecond), "lsn", pglogrepl.LSN(start))
	return start, nil
}

// createSnapshotSlot creates the stream's slot on rconn with an exported
// snapshot, which rconn keeps alive until its next command, and returns that
// snapshot.
func (s *Source) createSnapshotSlot(ctx context.Context, catalog *pgx.Conn, rconn *pgconn.PgConn) (snapshotRead, error) {
	// The server's clock before the slot exists is no later than the
	// commit of any transaction the slot will stream, so snapshot rows
	// order before every change that follows them.
	var at time.Time
	if err := catalog.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&at); err != nil {
		return snapshotRead{}, fmt.Errorf("read server clock: %w", err)
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, rconn, s.cfg.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return snapshotRead{}, slotCreateError(s.cfg.Slot, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return snapshotRead{}, fmt.Errorf("parse consistent point %q: %w", res.ConsistentPoint, err)
	}
	s.log.Info("created replication slot for the initial snapshot", "slot", s.cfg.Slot, "lsn", res.ConsistentPoint, "snapshot", res.SnapshotName)
	return snapshotRead{name: res.SnapshotName, lsn: uint64(lsn), at: at}, nil
}

// resumeSlot checks the slot an interrupted snapshot left (or one that
// existed before the stream's first start) and returns its consistent
// point, from which streaming will replay. Nothing confirms a position on
// the slot before the snapshot finishes, so its confirmed_flush_lsn is
// still the consistent point its creation reported.
func (s *Source) resumeSlot(ctx context.Context, catalog *pgx.Conn, slot slotRow) (uint64, error) {
	var db string
	var pid *int32
	err := catalog.QueryRow(ctx, `SELECT current_database(), (SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1)`, s.cfg.Slot).Scan(&db, &pid)
	if err != nil {
		return 0, fmt.Errorf("read replication slot %q: %w", s.cfg.Slot, err)
	}
	if err := s.checkSlotOwner(slot, db); err != nil {
		return 0, err
	}
	switch {
	case slot.walStatus == "lost":
		return 0, fmt.Errorf("%w: slot %q of the unfinished initial snapshot has wal_status lost: PostgreSQL removed WAL it had not delivered (max_slot_wal_keep_size), so deletes of rows already sent cannot be replayed; delete the stream and create it again", ErrSlotLost, s.cfg.Slot)
	case pid != nil:
		// Checked before reading, so that a slot held elsewhere does
		// not send every row again on each retry.
		return 0, fmt.Errorf("replication slot %q is in use by process %d: stop whatever else reads it", s.cfg.Slot, *pid)
	case slot.confirmed == 0:
		return 0, fmt.Errorf("replication slot %q has no confirmed_flush_lsn", s.cfg.Slot)
	}
	s.log.Warn("resuming an unfinished initial snapshot: reading every table again on the existing slot, then replaying its changes from the slot's consistent point",
		"slot", s.cfg.Slot, "lsn", pglogrepl.LSN(slot.confirmed))
	return slot.confirmed, nil
}

// snapshotRead is what one snapshot attempt's batches carry: the exported
// snapshot to read (empty: read the database as it is now) and the LSN
// and commit time its batches are stamped with.
type snapshotRead struct {
	name string
	lsn  uint64
	at   time.Time
}

// begin makes tx read snap. Without an exported snapshot, tx's own
// snapshot, taken by its first statement, is read, and the batches are
// stamped with the WAL position and the server's clock of that moment:
// a txId apart from every earlier attempt's, so that chunk ids and
// partition keys never pair a row of one attempt with another's
// (docs/records.md#snapshot-retries).
func (snap *snapshotRead) begin(ctx context.Context, tx pgx.Tx) error {
	if snap.name != "" {
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(snap.name, "'", "''")+"'"); err != nil {
			return fmt.Errorf("import snapshot %s: %w", snap.name, err)
		}
		return nil
	}
	var lsn string
	if err := tx.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text, clock_timestamp()").Scan(&lsn, &snap.at); err != nil {
		return fmt.Errorf("read WAL position and server clock: %w", err)
	}
	pos, err := pglogrepl.ParseLSN(lsn)
	if err != nil {
		return fmt.Errorf("parse WAL position %q: %w", lsn, err)
	}
	snap.lsn = uint64(pos)
	return nil
}

// snapTable is a table to read and the relation its rows are described by.
type snapTable struct {
	rel      *record.Relation
	from     string // quoted name, with ONLY unless partitioned
	estimate int64
}

func (s *Source) readSnapshot(ctx context.Context, conn *pgx.Conn, version int, snap snapshotRead, h SnapshotHandler) (*snapshotTracker, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin snapshot transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // a no-op after Commit
	if err := snap.begin(ctx, tx); err != nil {
		return nil, err
	}
	configured, err := configuredOIDs(ctx, tx, s.cfg.Tables)
	if err != nil {
		return nil, err
	}
	var tables []snapTable
	for _, name := range s.cfg.Tables {
		t, err := s.snapshotTable(ctx, tx, version, name)
		if err != nil {
			return nil, err
		}
		// A partition whose root is configured too is read with the root.
		if root, err := coveredBy(ctx, tx, t.rel.ID, configured); err != nil || root != "" {
			if err != nil {
				return nil, fmt.Errorf("snapshot of %s: %w", name, err)
			}
			continue
		}
		tables = append(tables, t)
	}
	prog := s.trackSnapshot(tables)
	s.log.Info("initial snapshot started", "tables", len(tables), "estimated_rows", prog.prog.EstimatedRows)
	for _, t := range tables {
		name := t.rel.Schema + "." + t.rel.Table
		prog.table(name)
		n, err := s.readTable(ctx, tx, t, snap, h, prog.rows)
		if err != nil {
			return nil, fmt.Errorf("snapshot of %s: %w", name, err)
		}
		s.log.Info("initial snapshot read table", append(progressAttrs(prog.prog), "table_rows", n)...)
		prog.tableDone()
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("end snapshot transaction: %w", err)
	}
	return prog, nil
}

// progressAttrs describe snapshot progress for a log line; the percentage
// only when the tables were analyzed, so that reltuples estimates them.
func progressAttrs(p SnapshotProgress) []any {
	attrs := []any{"table", p.Table, "rows", p.Rows}
	if p.EstimatedRows > 0 {
		attrs = append(attrs, "estimated_rows", p.EstimatedRows, "percent", min(100*p.Rows/p.EstimatedRows, 99))
	}
	return attrs
}

// snapshotTable describes table as pgoutput's Relation message would, so
// snapshot rows and streamed changes of a table share one shape: columns
// in attnum order without dropped or unpublished generated ones, limited to the
// publication's column list (PostgreSQL 15+), keyed like KeyLookup.
func (s *Source) snapshotTable(ctx context.Context, tx pgx.Tx, version int, name string) (snapTable, error) {
	var t snapTable
	var oid uint32
	var schema, table, ident, kind string
	err := tx.QueryRow(ctx, `SELECT c.oid, n.nspname, c.relname, c.relreplident::text, c.relkind::text, GREATEST(c.reltuples, 0)::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)`, name).
		Scan(&oid, &schema, &table, &ident, &kind, &t.estimate)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("table %s does not exist in the source database: create it or remove it from the stream's tables", name)
	}
	if err != nil {
		return t, fmt.Errorf("inspect table %s: %w", name, err)
	}
	var published []string
	if version >= 150000 {
		err := tx.QueryRow(ctx, `SELECT attnames FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3`,
			s.cfg.Publication, schema, table).Scan(&published)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return t, fmt.Errorf("read publication columns of %s: %w", name, err)
		}
	}
	generated, err := s.publishesGenerated(ctx, tx, version)
	if err != nil {
		return t, err
	}
	rows, err := tx.Query(ctx, `SELECT a.attname, a.atttypid, a.atttypmod, COALESCE(a.attnum = ANY(pk.indkey), false)
		FROM pg_attribute a
		LEFT JOIN pg_index pk ON pk.indrelid = a.attrelid AND pk.indisprimary
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND (a.attgenerated = '' OR a.attgenerated = 's' AND $2)
		ORDER BY a.attnum`, oid, generated)
	if err != nil {
		return t, fmt.Errorf("read columns of %s: %w", name, err)
	}
	rel := &record.Relation{ID: oid, Schema: schema, Table: table, ReplicaIdentity: ident[0]}
	var keys []bool
	keep := map[string]bool{}
	for _, c := range published {
		keep[c] = true
	}
	for rows.Next() {
		var c record.Column
		var inPK bool
		if err := rows.Scan(&c.Name, &c.TypeOID, &c.TypMod, &inPK); err != nil {
			return t, fmt.Errorf("read columns of %s: %w", name, err)
		}
		if len(published) > 0 && !keep[c.Name] {
			continue
		}
		rel.Columns = append(rel.Columns, c)
		keys = append(keys, inPK)
	}
	if err := rows.Err(); err != nil {
		return t, fmt.Errorf("read columns of %s: %w", name, err)
	}
	// The same rule as the assembler's: the primary key is the key.
	var quoted []string
	for i := range rel.Columns {
		rel.Columns[i].Key = keys[i]
		rel.HasKey = rel.HasKey || keys[i]
		quoted = append(quoted, pgx.Identifier{rel.Columns[i].Name}.Sanitize())
		if err := s.types.resolve(ctx, tx, rel.Columns[i].TypeOID, false); err != nil {
			return t, fmt.Errorf("look up type of %s.%s: %w", name, rel.Columns[i].Name, err)
		}
	}
	t.rel = rel
	t.from = "SELECT " + strings.Join(quoted, ", ") + " FROM "
	if kind != "p" {
		// Changes are published per table, so an inheritance parent's
		// snapshot must not include its children's rows. A partitioned
		// table's changes are published as its own (publish_via_partition_root),
		// so it reads every partition's rows, each once, under its name.
		t.from += "ONLY "
	}
	t.from += pgx.Identifier{schema, table}.Sanitize()
	return t, nil
}

// publishesGenerated reports whether the publication puts stored generated
// columns in its changes (PostgreSQL 18+), so snapshot rows hold them too.
func (s *Source) publishesGenerated(ctx context.Context, tx pgx.Tx, version int) (bool, error) {
	if version < pgPublishesGenerated {
		return false, nil
	}
	var on bool
	err := tx.QueryRow(ctx, `SELECT COALESCE((SELECT pubgencols::text = 's' FROM pg_publication WHERE pubname = $1), false)`, s.cfg.Publication).Scan(&on)
	if err != nil {
		return false, fmt.Errorf("read publication %s: %w", s.cfg.Publication, err)
	}
	return on, nil
}

// readTable reads one table through a cursor in batches of
// SnapshotBatchRows and hands each batch over. The simple protocol returns
// every value in its type's text output, exactly as pgoutput sends it.
func (s *Source) readTable(ctx context.Context, tx pgx.Tx, t snapTable, snap snapshotRead, h SnapshotHandler, progress func(rows int)) (int64, error) {
	if _, err := tx.Exec(ctx, "DECLARE "+snapshotCursor+" NO SCROLL CURSOR FOR "+t.from); err != nil {
		return 0, fmt.Errorf("declare cursor: %w", err)
	}
	fetch := fmt.Sprintf("FETCH FORWARD %d FROM %s", s.cfg.SnapshotBatchRows, snapshotCursor)
	var total int64
	for {
		changes, err := fetchBatch(ctx, tx.Conn().PgConn(), fetch, t.rel)
		if err != nil {
			return total, err
		}
		if len(changes) == 0 {
			break
		}
		batch := &record.Txn{CommitLSN: snap.lsn, CommitTime: snap.at, Changes: changes}
		if err := h.HandleSnapshot(ctx, batch); err != nil {
			return total, fmt.Errorf("handle snapshot batch: %w", err)
		}
		total += int64(len(changes))
		progress(len(changes))
	}
	if _, err := tx.Exec(ctx, "CLOSE "+snapshotCursor); err != nil {
		return total, fmt.Errorf("close cursor: %w", err)
	}
	return total, nil
}

// fetchBatch runs one FETCH and turns its rows into Read changes. Each row's
// values share one allocation.
func fetchBatch(ctx context.Context, conn *pgconn.PgConn, fetch string, rel *record.Relation) ([]record.Change, error) {
	mrr := conn.Exec(ctx, fetch)
	var changes []record.Change
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		for rr.NextRow() {
			vals := rr.Values()
			if len(vals) != len(rel.Columns) {
				_ = mrr.Close()
				return nil, fmt.Errorf("fetched %d columns, want %d", len(vals), len(rel.Columns))
			}
			size := 0
			for _, v := range vals {
				size += len(v)
			}
			buf := make([]byte, 0, size)
			row := make(record.Tuple, len(vals))
			for i, v := range vals {
				if v == nil {
					row[i] = record.Datum{Kind: record.DatumNull}
					continue
				}
				buf = append(buf, v...)
				row[i] = record.Datum{Kind: record.DatumText, Data: buf[len(buf)-len(v) : len(buf) : len(buf)]}
			}
			changes = append(changes, record.Change{Kind: record.Read, Rel: rel, New: row})
		}
		if _, err := rr.Close(); err != nil {
			_ = mrr.Close()
			return nil, fmt.Errorf("fetch: %w", err)
		}
	}
	if err := mrr.Close(); err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	return changes, nil
}
