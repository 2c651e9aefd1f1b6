package pgapply

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrNoTable marks a record for a table the replica does not have.
var ErrNoTable = errors.New("table not in the replica")

// ErrNoPrimaryKey marks a replica table without a primary key: rows cannot
// be matched, so upserts and deletes cannot be applied.
var ErrNoPrimaryKey = errors.New("replica table has no primary key")

// table is what the applier needs to know about one replica table.
type table struct {
	schema, name string
	ident        string // quoted "schema"."table"
	cols         map[string]*column
	pk           []string // primary key columns in index order
	// overriding is set when a column is GENERATED ALWAYS AS IDENTITY:
	// the replica must take the source's values as they are.
	overriding bool
}

type column struct {
	name  string
	ident string // quoted
	// sqlType is format_type(atttypid, atttypmod), the cast target.
	sqlType   string
	typ       *pgType
	generated bool
}

// querier is the part of pgx.Tx that catalog lookups use.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const columnsSQL = `
SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod),
       a.attgenerated <> '', a.attidentity = 'a',
       coalesce((SELECT k.n FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) WHERE k.attnum = a.attnum), 0)::int
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
ORDER BY a.attnum`

// loadTable reads a table's columns, types and primary key.
func loadTable(ctx context.Context, q querier, types map[uint32]*pgType, schema, name string) (*table, error) {
	t, oids, pk, err := readColumns(ctx, q, schema, name)
	if err != nil {
		return nil, fmt.Errorf("read catalog of %s.%s: %w", schema, name, err)
	}
	if len(t.cols) == 0 {
		return nil, fmt.Errorf("%s.%s: %w", schema, name, ErrNoTable)
	}
	// Types resolve after the column rows are closed: a connection runs
	// one query at a time.
	for colName, oid := range oids {
		if t.cols[colName].typ, err = resolveType(ctx, q, types, oid, 0); err != nil {
			return nil, fmt.Errorf("read catalog of %s.%s: column %s: %w", schema, name, colName, err)
		}
	}
	t.pk = pk
	return t, nil
}

func readColumns(ctx context.Context, q querier, schema, name string) (*table, map[string]uint32, []string, error) {
	rows, err := q.Query(ctx, columnsSQL, schema, name)
	if err != nil {
		return nil, nil, nil, err
	}
	defer rows.Close()
	t := &table{schema: schema, name: name, ident: pgx.Identifier{schema, name}.Sanitize(), cols: map[string]*column{}}
	oids := map[string]uint32{}
	pkAt := map[int]string{}
	for rows.Next() {
		c := &column{}
		var oid uint32
		var identity bool
		var pos int
		if err := rows.Scan(&c.name, &oid, &c.sqlType, &c.generated, &identity, &pos); err != nil {
			return nil, nil, nil, err
		}
		c.ident = pgx.Identifier{c.name}.Sanitize()
		t.cols[c.name] = c
		t.overriding = t.overriding || identity
		oids[c.name] = oid
		if pos > 0 {
			pkAt[pos] = c.name
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, err
	}
	pk := make([]string, len(pkAt))
	for pos, n := range pkAt {
		pk[pos-1] = n
	}
	return t, oids, pk, nil
}

// Builtin types whose record encoding is not their text output.
var builtinKinds = map[uint32]kind{
	17:   kindBytea,
	1082: kindDate,
	1083: kindTime,
	1266: kindTimetz,
	1114: kindTimestamp,
	1184: kindTimestamptz,
	1186: kindInterval,
}

const typeSQL = `
SELECT t.typtype::text, t.typbasetype, t.typelem, coalesce(e.typarray = t.oid, false), coalesce(e.typdelim, ',')::text
FROM pg_catalog.pg_type t
LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem
WHERE t.oid = $1`

// resolveType follows domains to their base type and arrays to their
// element, caching by OID.
func resolveType(ctx context.Context, q querier, cache map[uint32]*pgType, oid uint32, depth int) (*pgType, error) {
	if t, ok := cache[oid]; ok {
		return t, nil
	}
	if depth > 16 {
		return nil, fmt.Errorf("type %d: domains or arrays nested too deep", oid)
	}
	t := &pgType{kind: kindText}
	if k, ok := builtinKinds[oid]; ok {
		t.kind = k
		cache[oid] = t
		return t, nil
	}
	var typtype, delim string
	var base, elem uint32
	var isArray bool
	if err := q.QueryRow(ctx, typeSQL, oid).Scan(&typtype, &base, &elem, &isArray, &delim); err != nil {
		return nil, fmt.Errorf("type %d: %w", oid, err)
	}
	var err error
	switch {
	case typtype == "d":
		t, err = resolveType(ctx, q, cache, base, depth+1)
	case isArray:
		t.kind = kindArray
		t.delim = delim[0]
		t.elem, err = resolveType(ctx, q, cache, elem, depth+1)
	}
	if err != nil {
		return nil, err
	}
	cache[oid] = t
	return t, nil
}
