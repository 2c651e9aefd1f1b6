// Package pgapply applies CDC records to a PostgreSQL replica that has the
// source's tables: the engine behind `cdcd tail --apply DSN`.
//
// Records arrive at least once and, on UNORDERED streams, out of order.
// The replica still converges because every change is applied
// last-writer-wins by source.ts_ns, which increases in commit order and is
// stable on replay (docs/records.md#identity). The version of every row the applier has
// touched, deletes included, lives in a bookkeeping table in the replica,
// updated in the same transaction as the row:
//
//	cdcd_apply_versions(schema text, tbl text, key text, ts_ns bigint,
//	                    PRIMARY KEY (schema, tbl, key))
//
// key is record.RowImage.Key of the primary key columns; the empty key holds the
// table's last truncate. Rows of deleted keys stay as tombstones, so a late
// older upsert cannot bring a row back; a truncate clears its table's
// older tombstones. The table therefore grows with the number of distinct
// keys ever changed through the applier, like the replica itself plus its
// deleted keys.
//
// The package lives outside record so that the record package stays pure
// and free of database code.
package pgapply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/record"
)

// DB is what Applier needs from a connection; *pgx.Conn and *pgxpool.Pool
// both have it.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Config configures an Applier.
type Config struct {
	// VersionsSchema is the schema of cdcd_apply_versions (default
	// "public"). It is created if missing.
	VersionsSchema string
}

// Applier applies full record.Messages to a replica. It is safe for
// concurrent use when DB is a pool; every Apply is one transaction, and
// row locks on the bookkeeping table serialize changes to one row.
type Applier struct {
	db       DB
	versions string // quoted "schema"."cdcd_apply_versions"

	mu     sync.Mutex
	tables map[[2]string]*table
	types  map[uint32]*pgType
}

// New creates the bookkeeping table if needed and returns an Applier.
func New(ctx context.Context, db DB, cfg Config) (*Applier, error) {
	if cfg.VersionsSchema == "" {
		cfg.VersionsSchema = "public"
	}
	a := &Applier{
		db:       db,
		versions: pgx.Identifier{cfg.VersionsSchema, "cdcd_apply_versions"}.Sanitize(),
		tables:   map[[2]string]*table{},
		types:    map[uint32]*pgType{},
	}
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{cfg.VersionsSchema}.Sanitize()+`;
CREATE TABLE IF NOT EXISTS `+a.versions+` (
	schema text NOT NULL,
	tbl    text NOT NULL,
	key    text NOT NULL,
	ts_ns  bigint NOT NULL,
	PRIMARY KEY (schema, tbl, key)
)`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", a.versions, err)
	}
	return a, nil
}

// Forget drops what the Applier cached about a table's columns and types;
// call it after DDL on the replica.
func (a *Applier) Forget() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.tables)
	clear(a.types)
}

// Apply applies m in one transaction and reports whether it changed the
// replica (false: the replica already holds this change or a newer one).
// m must be a full message: reassemble chunked records first
// (record.Reassembler).
func (a *Applier) Apply(ctx context.Context, m *record.Message) (bool, error) {
	if m.Type != record.MessageFull {
		return false, fmt.Errorf("apply %s.%s: %s message: %w", m.Source.Schema, m.Source.Table, m.Type, record.ErrNotReassembled)
	}
	var applied bool
	err := pgx.BeginFunc(ctx, a.db, func(tx pgx.Tx) error {
		t, err := a.table(ctx, tx, m.Source.Schema, m.Source.Table)
		if err != nil {
			return err
		}
		if m.Effect() == record.EffectTruncate {
			applied, err = a.truncate(ctx, tx, t, m.Source.TsNs)
		} else {
			applied, err = a.change(ctx, tx, t, m)
		}
		return err
	})
	if err != nil {
		var pgErr interface{ SQLState() string }
		if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.SQLState(), "42") {
			// Undefined or changed column or table: the cache may be
			// stale after DDL on the replica; reload next time.
			a.Forget()
		}
		return false, fmt.Errorf("apply %s.%s op %q at source.ts_ns %d: %w", m.Source.Schema, m.Source.Table, m.Op, m.Source.TsNs, redactDataException(err))
	}
	return applied, nil
}

// redactDataException keeps the value out of a PostgreSQL data exception
// (SQLSTATE class 22), whose message quotes the input the replica refused
// (`invalid input syntax for type integer: "…"`, `value "…" is out of
// range`): the message is cut before its first quote or colon, and the
// column and type are named where the server gives them.
func redactDataException(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || !strings.HasPrefix(pgErr.Code, "22") {
		return err
	}
	msg := pgErr.Message
	if i := strings.IndexAny(msg, `":`); i >= 0 {
		msg = strings.TrimSpace(msg[:i]) + " …"
	}
	if pgErr.ColumnName != "" {
		msg += " (column " + pgErr.ColumnName + ")"
	}
	if pgErr.DataTypeName != "" {
		msg += " (type " + pgErr.DataTypeName + ")"
	}
	return fmt.Errorf("%s: %s (SQLSTATE %s; the value is left out)", pgErr.Severity, msg, pgErr.Code)
}

func (a *Applier) table(ctx context.Context, q querier, schema, name string) (*table, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := [2]string{schema, name}
	if t := a.tables[k]; t != nil {
		return t, nil
	}
	t, err := loadTable(ctx, q, a.types, schema, name)
	if err != nil {
		return nil, err
	}
	a.tables[k] = t
	return t, nil
}

// claim records tsNs as the version of (table, key) if it is newer than
// the one stored, and reports whether it was.
func (a *Applier) claim(ctx context.Context, tx pgx.Tx, t *table, key string, tsNs int64) (bool, error) {
	rows, err := tx.Query(ctx, `INSERT INTO `+a.versions+` AS v (schema, tbl, key, ts_ns) VALUES ($1, $2, $3, $4)
ON CONFLICT (schema, tbl, key) DO UPDATE SET ts_ns = EXCLUDED.ts_ns WHERE v.ts_ns < EXCLUDED.ts_ns
RETURNING 1`, t.schema, t.name, key, tsNs)
	if err != nil {
		return false, err
	}
	won := rows.Next()
	rows.Close()
	return won, rows.Err()
}

// change applies an upsert or a remove.
func (a *Applier) change(ctx context.Context, tx pgx.Tx, t *table, m *record.Message) (bool, error) {
	if len(t.pk) == 0 {
		return false, fmt.Errorf("%s: %w", t.ident, ErrNoPrimaryKey)
	}
	// ROW EXCLUSIVE conflicts with a concurrent truncate's ACCESS
	// EXCLUSIVE, so the truncate version read below cannot go stale
	// before this transaction commits.
	if _, err := tx.Exec(ctx, `LOCK TABLE `+t.ident+` IN ROW EXCLUSIVE MODE`); err != nil {
		return false, err
	}
	var floor int64
	err := tx.QueryRow(ctx, `SELECT ts_ns FROM `+a.versions+` WHERE schema = $1 AND tbl = $2 AND key = ''`, t.schema, t.name).Scan(&floor)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return false, err
	case m.Source.TsNs < floor:
		// Equal is the truncating transaction itself: its row records
		// describe rows after the truncate (see record.Applier).
		return false, nil
	}
	key, err := record.RowKey(m, func(string, string) []string { return t.pk })
	if err != nil {
		return false, err
	}
	if won, err := a.claim(ctx, tx, t, key, m.Source.TsNs); err != nil || !won {
		return false, err
	}
	if m.Effect() == record.EffectRemove {
		return true, a.delete(ctx, tx, t, m.Before)
	}
	return true, a.upsert(ctx, tx, t, m.After)
}

func (a *Applier) upsert(ctx context.Context, tx pgx.Tx, t *table, row record.RowImage) error {
	var names, values, sets []string
	var args []any
	for _, cv := range row {
		c := t.cols[cv.Name]
		if c == nil {
			return fmt.Errorf("column %q of %s is not in the replica", cv.Name, t.ident)
		}
		if c.generated {
			continue // the replica computes it
		}
		arg, err := value(c, cv)
		if err != nil {
			return err
		}
		args = append(args, arg)
		names = append(names, c.ident)
		values = append(values, fmt.Sprintf("$%d::text::%s", len(args), c.sqlType))
		if !isKey(t, c.name) {
			sets = append(sets, c.ident+" = EXCLUDED."+c.ident)
		}
	}
	var sql strings.Builder
	fmt.Fprintf(&sql, "INSERT INTO %s (%s)", t.ident, strings.Join(names, ", "))
	if t.overriding {
		sql.WriteString(" OVERRIDING SYSTEM VALUE")
	}
	fmt.Fprintf(&sql, " VALUES (%s) ON CONFLICT (%s) DO ", strings.Join(values, ", "), strings.Join(quoted(t.pk), ", "))
	if len(sets) == 0 {
		sql.WriteString("NOTHING")
	} else {
		sql.WriteString("UPDATE SET " + strings.Join(sets, ", "))
	}
	_, err := tx.Exec(ctx, sql.String(), args...)
	return err
}

func (a *Applier) delete(ctx context.Context, tx pgx.Tx, t *table, before record.RowImage) error {
	key, err := before.Project(t.pk)
	if err != nil {
		return fmt.Errorf("delete from %s: %w", t.ident, err)
	}
	where, args, err := keyMatch(t, key)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `DELETE FROM `+t.ident+` WHERE `+where, args...)
	return err
}

// truncate empties the table except rows written by transactions at or
// after tsNs, which a truncate older than them must not remove.
func (a *Applier) truncate(ctx context.Context, tx pgx.Tx, t *table, tsNs int64) (bool, error) {
	if _, err := tx.Exec(ctx, `LOCK TABLE `+t.ident+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		return false, err
	}
	if won, err := a.claim(ctx, tx, t, "", tsNs); err != nil || !won {
		return false, err
	}
	rows, err := tx.Query(ctx, `SELECT key FROM `+a.versions+` WHERE schema = $1 AND tbl = $2 AND key <> '' AND ts_ns >= $3`, t.schema, t.name, tsNs)
	if err != nil {
		return false, err
	}
	keep, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return false, err
	}
	if len(keep) == 0 {
		_, err = tx.Exec(ctx, `TRUNCATE `+t.ident)
	} else {
		err = a.deleteAllBut(ctx, tx, t, keep)
	}
	if err != nil {
		return false, err
	}
	_, err = tx.Exec(ctx, `DELETE FROM `+a.versions+` WHERE schema = $1 AND tbl = $2 AND key <> '' AND ts_ns < $3`, t.schema, t.name, tsNs)
	return true, err
}

// deleteAllBut deletes every row whose key is not in keep (record keys),
// passing the keys as one text array per key column.
func (a *Applier) deleteAllBut(ctx context.Context, tx pgx.Tx, t *table, keep []string) error {
	if len(t.pk) == 0 {
		_, err := tx.Exec(ctx, `TRUNCATE `+t.ident)
		return err
	}
	cols := make([][]*string, len(t.pk))
	for _, k := range keep {
		img, err := record.ParseKey(k)
		if err != nil {
			return err
		}
		if img, err = img.Project(t.pk); err != nil {
			return fmt.Errorf("kept key of %s: %w", t.ident, err)
		}
		for i, cv := range img {
			arg, err := value(t.cols[cv.Name], cv)
			if err != nil {
				return err
			}
			s, _ := arg.(*string)
			cols[i] = append(cols[i], s)
		}
	}
	var sel, from []string
	args := make([]any, len(cols))
	for i, name := range t.pk {
		args[i] = cols[i]
		sel = append(sel, fmt.Sprintf("k%d::%s", i, t.cols[name].sqlType))
		from = append(from, fmt.Sprintf("$%d::text[]", i+1))
	}
	aliases := make([]string, len(t.pk))
	for i := range aliases {
		aliases[i] = fmt.Sprintf("k%d", i)
	}
	sql := fmt.Sprintf("DELETE FROM %s WHERE (%s) NOT IN (SELECT %s FROM unnest(%s) AS u(%s))",
		t.ident, strings.Join(quoted(t.pk), ", "), strings.Join(sel, ", "), strings.Join(from, ", "), strings.Join(aliases, ", "))
	_, err := tx.Exec(ctx, sql, args...)
	return err
}

// keyMatch builds "k1 = $1::text::type AND …" for a key image.
func keyMatch(t *table, key record.RowImage) (string, []any, error) {
	var conds []string
	var args []any
	for _, cv := range key {
		c := t.cols[cv.Name]
		arg, err := value(c, cv)
		if err != nil {
			return "", nil, err
		}
		args = append(args, arg)
		conds = append(conds, fmt.Sprintf("%s = $%d::text::%s", c.ident, len(args), c.sqlType))
	}
	return strings.Join(conds, " AND "), args, nil
}

// value converts one column value to a query argument: *string, nil for
// NULL.
func value(c *column, cv record.ColumnValue) (any, error) {
	text, ok, err := sqlText(c.typ, cv.Value)
	if err != nil {
		return nil, fmt.Errorf("column %q (%s): %w", c.name, c.sqlType, err)
	}
	if !ok {
		return (*string)(nil), nil
	}
	return &text, nil
}

func isKey(t *table, name string) bool {
	for _, k := range t.pk {
		if k == name {
			return true
		}
	}
	return false
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = pgx.Identifier{n}.Sanitize()
	}
	return out
}
