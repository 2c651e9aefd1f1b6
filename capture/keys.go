package capture

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// Keys of changes decoded after a schema change (docs/records.md#schema-changes).
// A Relation message describes a table as it was when the change was made:
// its columns, their types, and, for REPLICA IDENTITY DEFAULT, its primary
// key (pgoutput flags the replica identity's columns, which under DEFAULT
// are the primary key's). The catalog describes the table as it is now,
// which differs when cdcd decodes changes made before a DDL statement
// after it. So the key comes from the WAL wherever the WAL has it, and from
// today's catalog only under the other replica identities, matched to the
// message's columns by name or, after a column rename, by position.

// catalogRel is what the catalog says now of a relation that a Relation
// message names, and what Prepare learned of it.
type catalogRel struct {
	// gone says the relation is no longer in the catalog (dropped).
	gone bool
	// pk are its primary key columns today, in column order.
	pk []string
	// cols are its columns today as pgoutput would publish them, in
	// column order.
	cols []catalogCol
	// configured says it is one of the stream's tables as Prepare found
	// them, and configuredPK its primary key then.
	configured   bool
	configuredPK []string
}

type catalogCol struct {
	name string
	typ  uint32
}

// KeyLookup reads what the catalog says now of a relation (catalogRel).
type KeyLookup func(relID uint32) (catalogRel, error)

// TableChangedError is a change to one of the stream's tables that the
// stream cannot follow: a table that was dropped or renamed, or whose
// primary key went away, while cdcd had changes of it left to deliver. The
// stream reports SOURCE_TABLE_CHANGED with its message, which names the
// table and the fix (docs/runbook.md#source_table_changed).
type TableChangedError struct {
	Table string
	msg   string
}

func (e *TableChangedError) Error() string { return e.msg }

func tableChanged(table, format string, args ...any) *TableChangedError {
	return &TableChangedError{Table: table, msg: fmt.Sprintf(format, args...)}
}

// relationKey marks the key columns of m; skip says its changes are not
// emitted: the table was dropped and the stream no longer lists it, so
// nothing can say which of its columns were the key, and nobody asked for
// its records.
func relationKey(m *pglogrepl.RelationMessage, cat catalogRel) (key []bool, skip bool, err error) {
	key = make([]bool, len(m.Columns))
	if cat.gone && !cat.configured {
		return nil, true, nil
	}
	if m.ReplicaIdentity == 'd' {
		// The flags are the primary key as of the change: exact, whatever
		// was added or dropped since.
		for i, c := range m.Columns {
			key[i] = c.Flags&1 != 0
		}
		return key, false, nil
	}
	pk := cat.pk
	if cat.gone {
		pk = cat.configuredPK
	}
	if len(pk) == 0 {
		return key, false, nil
	}
	if byName(m, pk, key) || byPosition(m, cat, pk, key) {
		return key, false, nil
	}
	name := relName(m)
	return nil, false, tableChanged(name, "table %s: its primary key (%s) is not among the columns of its changes, which were made before the key or its columns changed; cdcd cannot key them: delete the stream and create it again",
		name, strings.Join(pk, ", "))
}

// byName marks the columns of m named in pk, and reports whether all were.
func byName(m *pglogrepl.RelationMessage, pk []string, key []bool) bool {
	clear(key)
	for _, col := range pk {
		i := slices.IndexFunc(m.Columns, func(c *pglogrepl.RelationMessageColumn) bool { return c.Name == col })
		if i < 0 {
			return false
		}
		key[i] = true
	}
	return true
}

// byPosition marks the columns of m at the positions of pk's columns
// today, when m has today's columns with the same types: a column was
// renamed after the change, and nothing else about the columns changed.
func byPosition(m *pglogrepl.RelationMessage, cat catalogRel, pk []string, key []bool) bool {
	clear(key)
	if cat.gone || len(cat.cols) != len(m.Columns) {
		return false
	}
	for i, c := range cat.cols {
		if m.Columns[i].DataType != c.typ {
			return false
		}
		key[i] = slices.Contains(pk, c.name)
	}
	return true
}

func relName(m *pglogrepl.RelationMessage) string {
	return pgx.Identifier{m.Namespace, m.RelationName}.Sanitize()
}

// lookupRel reads relation relID from the catalog now (KeyLookup).
// published says stored generated columns are published (PostgreSQL 18+).
func (s *Source) lookupRel(ctx context.Context, q querier, relID uint32, published bool) (catalogRel, error) {
	var cat catalogRel
	var exists bool
	var names []string
	var types []uint32
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class WHERE oid = $1),
			ARRAY(SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
				WHERE i.indrelid = $1 AND i.indisprimary ORDER BY a.attnum),
			ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
				AND (a.attgenerated = '' OR ($2 AND a.attgenerated = 's')) ORDER BY a.attnum),
			ARRAY(SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
				AND (a.attgenerated = '' OR ($2 AND a.attgenerated = 's')) ORDER BY a.attnum)`, relID, published).
		Scan(&exists, &cat.pk, &names, &types)
	if err != nil {
		return cat, err
	}
	cat.gone = !exists
	for i := range min(len(names), len(types)) {
		cat.cols = append(cat.cols, catalogCol{names[i], types[i]})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tables {
		if t.oid == relID {
			cat.configured, cat.configuredPK = true, t.pk
		}
	}
	return cat, nil
}
