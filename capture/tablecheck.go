package capture

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/codes"
)

// The stream's tables after DDL (docs/records.md#schema-changes). pgoutput
// says nothing when a published table is dropped or renamed: a dropped
// table's changes simply stop, a renamed one's carry the new name. So the
// health check asks whether each configured name still names the table
// Prepare found, and reports SOURCE_TABLE_CHANGED while one does not; and a
// stream that has delivered and whose table is gone when it starts again
// reports it too. Changes the stream refuses (TableChangedError) are
// reported by Run.

// setTables records the stream's tables as Prepare found them.
func (s *Source) setTables(tables []table) {
	s.mu.Lock()
	s.tables = tables
	s.mu.Unlock()
}

// checkConfigured reports each of the stream's tables that its configured name
// no longer names: dropped or renamed since Prepare.
func (s *Source) checkConfigured(ctx context.Context, q *pgx.Conn) error {
	s.mu.Lock()
	tables := s.tables
	s.mu.Unlock()
	if len(tables) == 0 || s.cfg.EveryTable {
		return nil
	}
	names, oids := make([]string, len(tables)), make([]uint32, len(tables))
	for i, t := range tables {
		names[i], oids[i] = t.configured, t.oid
	}
	rows, err := q.Query(ctx, `SELECT COALESCE(to_regclass(u.n)::oid, 0), COALESCE(ns.nspname::text, ''), COALESCE(c.relname::text, '')
		FROM unnest($1::text[], $2::oid[]) WITH ORDINALITY u(n, o, i)
		LEFT JOIN pg_class c ON c.oid = u.o LEFT JOIN pg_namespace ns ON ns.oid = c.relnamespace
		ORDER BY u.i`, names, oids)
	if err != nil {
		return fmt.Errorf("look up the stream's tables: %w", err)
	}
	var problems []string
	i := 0
	for rows.Next() {
		var oid uint32
		var schema, rel string
		if err := rows.Scan(&oid, &schema, &rel); err != nil {
			rows.Close()
			return fmt.Errorf("look up the stream's tables: %w", err)
		}
		if t := tables[i]; oid != t.oid {
			problems = append(problems, tableGone(t, schema, rel))
		}
		i++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("look up the stream's tables: %w", err)
	}
	if len(problems) > 0 {
		s.cfg.Report(codes.SourceTableChanged, errors.New(strings.Join(problems, "; ")))
	}
	return nil
}

// tableGone says what became of t, now named schema.rel ("" when dropped),
// and what to do.
func tableGone(t table, schema, rel string) string {
	if rel == "" {
		return fmt.Sprintf("table %s of the stream was dropped while the stream ran: remove it from the stream's tables (and drop it on consumers), or cdcd will not start the stream again", t.name)
	}
	now := pgx.Identifier{schema, rel}.Sanitize()
	return fmt.Sprintf("table %s of the stream was renamed to %s while the stream ran: its records carry the new name from the first change made after the rename; change the stream's tables to name %s (and rename the table on consumers), or cdcd will not start the stream again",
		t.name, now, now)
}

// tableRefused reports Prepare's refusal of a table, on a stream that has
// delivered (resume > 0), as SOURCE_TABLE_CHANGED: the table was dropped,
// renamed or lost its primary key while cdcd was stopped.
func (s *Source) tableRefused(err error, resume uint64) error {
	var u *Unmet
	if resume == 0 || !errors.As(err, &u) || u.Check != "table" && u.Check != "replica_identity" {
		return err
	}
	if u.Check == "table" {
		err = unmet(u.Check, u.Object, "table %s of the stream does not exist in the source database any more (dropped or renamed since the stream last ran): if it was renamed, change the stream's tables to its new name (and rename it on consumers); if it was dropped, remove it from the stream's tables (and drop it on consumers)", u.Object)
	}
	s.cfg.Report(codes.SourceTableChanged, err)
	return reportedError{err}
}

// refused reports a change the stream refuses (TableChangedError) and says
// whether err was one. Such a session does not count as streaming: the
// next one starts where it did and meets the same change, so reconnects
// back off.
func (s *Source) refused(err error) bool {
	var tce *TableChangedError
	if !errors.As(err, &tce) {
		return false
	}
	s.cfg.Report(codes.SourceTableChanged, tce)
	return true
}
