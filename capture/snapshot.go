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

// initialSnapshot creates the slot with an exported snapshot on rconn, reads
// every table at the slot's consistent point through catalog while rconn
// keeps the snapshot alive, hands the rows to h and returns the consistent
// point, from which streaming continues: rows committed before it are in
// the snapshot, changes committed after it come from the slot, so there is
// neither a gap nor an overlap. A slot left by an interrupted snapshot is
// dropped first: its snapshot cannot be imported any more.
func (s *Source) initialSnapshot(ctx context.Context, catalog *pgx.Conn, rconn *pgconn.PgConn, version int, h SnapshotHandler) (uint64, error) {
	s.slotReady.Store(false)
	slot, found, err := s.slotState(ctx, catalog)
	if err != nil {
		return 0, err
	}
	if found {
		var db string
		if err := catalog.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
			return 0, fmt.Errorf("read database name: %w", err)
		}
		if err := s.checkSlotOwner(slot, db); err != nil {
			return 0, err
		}
		s.log.Warn("dropping the replication slot of an unfinished initial snapshot; the snapshot starts over", "slot", s.cfg.Slot)
		// WAIT: the walsender of an earlier session may still hold it for
		// a moment. The timeout bounds a slot that someone else holds.
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := pglogrepl.DropReplicationSlot(dctx, rconn, s.cfg.Slot, pglogrepl.DropReplicationSlotOptions{Wait: true})
		cancel()
		if err != nil {
			return 0, fmt.Errorf("drop replication slot %q of the unfinished snapshot: %w", s.cfg.Slot, err)
		}
	}

	// The server's clock before the slot exists is no later than the
	// commit of any transaction the slot will stream, so snapshot rows
	// order before every change that follows them.
	var at time.Time
	if err := catalog.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&at); err != nil {
		return 0, fmt.Errorf("read server clock: %w", err)
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, rconn, s.cfg.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return 0, slotCreateError(s.cfg.Slot, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, fmt.Errorf("parse consistent point %q: %w", res.ConsistentPoint, err)
	}
	s.log.Info("created replication slot for the initial snapshot", "slot", s.cfg.Slot, "lsn", res.ConsistentPoint, "snapshot", res.SnapshotName)

	start := time.Now()
	prog, err := s.readSnapshot(ctx, catalog, version, snapshotRead{name: res.SnapshotName, lsn: uint64(lsn), at: at}, h)
	if err != nil {
		return 0, err
	}
	// Nothing is persisted before every row is delivered: a nonzero
	// checkpoint is the mark that the snapshot finished.
	if err := h.SnapshotDone(ctx); err != nil {
		return 0, fmt.Errorf("finish initial snapshot: %w", err)
	}
	if err := h.Persist(ctx, uint64(lsn)); err != nil {
		return 0, fmt.Errorf("persist initial snapshot checkpoint: %w", err)
	}
	prog.done()
	s.log.Info("initial snapshot done", "rows", prog.prog.Rows, "tables", len(s.cfg.Tables), "duration", time.Since(start).Round(time.Millisecond), "lsn", res.ConsistentPoint)
	return uint64(lsn), nil
}

// snapshotRead is one snapshot: its exported name, consistent point and
// commit time.
type snapshotRead struct {
	name string
	lsn  uint64
	at   time.Time
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
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(snap.name, "'", "''")+"'"); err != nil {
		return nil, fmt.Errorf("import snapshot %s: %w", snap.name, err)
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
