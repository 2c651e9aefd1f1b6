package capture

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The replica identity rules (docs/records.md#keys). PostgreSQL logs of an
// updated or deleted row only what the table's replica identity names, and
// pgoutput publishes only that. Every record is keyed by the primary key, and
// every after image holds the whole row, so a table is accepted only when its
// replica identity puts both in the WAL; otherwise cdcd sets REPLICA IDENTITY
// FULL (set_replica_identity_full) or refuses the table with that statement.
// A table without a primary key is refused unless the stream opts in
// (keyless_tables = "full"); it then needs REPLICA IDENTITY FULL, whose old
// row is the only thing that tells which row changed.

// table is a configured table as the catalog describes it.
type table struct {
	configured string // as the stream's tables key names it
	name       string // schema-qualified, quoted for SQL
	schema     string
	rel        string
	oid        uint32
	hasPK      bool
	// pk are its primary key columns.
	pk []string
	// partitioned is a partitioned table, published through its root.
	partitioned bool
	// generated lists its stored generated columns.
	generated []string
}

// pgPublishesGenerated is the first server_version_num whose pgoutput can
// publish stored generated columns (publish_generated_columns).
const pgPublishesGenerated = 180000

// identity is what one relation's replica identity logs of a row.
type identity struct {
	name      string // schema-qualified, quoted for SQL
	replIdent byte
	// index is the REPLICA IDENTITY USING INDEX index; coversPK says it
	// holds every primary key column.
	index     string
	coversPK  bool
	toastable bool
}

// checkTables reads each configured table from the catalog and applies the
// replica identity rules; with apply it sets REPLICA IDENTITY FULL where a
// table needs it and the stream allows it, without it changes nothing.
func (s *Source) checkTables(ctx context.Context, conn *pgx.Conn, version int, apply bool) ([]table, error) {
	if len(s.cfg.Tables) == 0 {
		return nil, errors.New("no tables configured: list the tables to publish in the stream's tables key")
	}
	configured, err := configuredOIDs(ctx, conn, s.cfg.Tables)
	if err != nil {
		return nil, err
	}
	var out []table
	for _, name := range s.cfg.Tables {
		t, err := inspectTable(ctx, conn, name)
		if err != nil {
			return nil, err
		}
		root, err := coveredBy(ctx, conn, t.oid, configured)
		if err != nil {
			return nil, fmt.Errorf("inspect table %s: %w", name, err)
		}
		if root != "" {
			s.log.Info("table is a partition of another of the stream's tables, whose records cover it", "table", t.name, "root", root)
			continue
		}
		if err := s.checkPartitionTree(ctx, conn, t, apply); err != nil {
			return nil, err
		}
		if len(t.generated) > 0 && version < pgPublishesGenerated {
			s.log.Warn("PostgreSQL before 18 does not publish stored generated columns: they are absent from after",
				"table", t.name, "columns", strings.Join(t.generated, ","), "server_version_num", version)
		}
		out = append(out, t)
	}
	return out, nil
}

// checkPartitionTree applies the replica identity rules to t and, for a
// partitioned table, to each of its partitions: PostgreSQL logs a row
// changed in a partition as the partition's replica identity says, and
// ALTER TABLE … REPLICA IDENTITY on the root does not reach them.
func (s *Source) checkPartitionTree(ctx context.Context, conn *pgx.Conn, t table, apply bool) error {
	rows, err := conn.Query(ctx, `SELECT $1::oid UNION SELECT relid::oid FROM pg_partition_tree($1) ORDER BY 1`, t.oid)
	if err != nil {
		return fmt.Errorf("inspect table %s: %w", t.name, err)
	}
	rels, err := pgx.CollectRows(rows, pgx.RowTo[uint32])
	if err != nil {
		return fmt.Errorf("inspect table %s: %w", t.name, err)
	}
	for _, oid := range rels {
		id, err := readIdentity(ctx, conn, oid)
		if err != nil {
			return fmt.Errorf("inspect table %s: %w", t.name, err)
		}
		if err := s.checkIdentity(ctx, conn, t, id, apply); err != nil {
			return err
		}
	}
	return nil
}

// configuredOIDs resolves the configured table names (0 for a name that
// names nothing).
func configuredOIDs(ctx context.Context, q querier, names []string) ([]uint32, error) {
	var oids []uint32
	err := q.QueryRow(ctx, `SELECT array_agg(COALESCE(to_regclass(n)::oid, 0)) FROM unnest($1::text[]) n`, names).Scan(&oids)
	if err != nil {
		return nil, fmt.Errorf("look up the stream's tables: %w", err)
	}
	return oids, nil
}

// coveredBy returns the configured ancestor (one of configured) of the
// partition oid, or "": with publish_via_partition_root its changes are
// published as the ancestor's, and the ancestor's snapshot reads its rows,
// so listing both must not publish or read them twice.
func coveredBy(ctx context.Context, q querier, oid uint32, configured []uint32) (string, error) {
	var root string
	err := q.QueryRow(ctx, `SELECT COALESCE((SELECT a.relid::regclass::text FROM pg_partition_ancestors($1) a
		WHERE a.relid <> $1 AND a.relid = ANY($2::oid[]) LIMIT 1), '')`, oid, configured).Scan(&root)
	return root, err
}

// inspectTable finds a configured table in the catalog.
func inspectTable(ctx context.Context, conn *pgx.Conn, name string) (table, error) {
	var t table
	err := conn.QueryRow(ctx, `SELECT c.oid, n.nspname, c.relname,
			ARRAY(SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
				WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY a.attnum), c.relkind = 'p',
			ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
				AND NOT a.attisdropped AND a.attgenerated = 's' ORDER BY a.attnum)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = to_regclass($1)`, name).Scan(&t.oid, &t.schema, &t.rel, &t.pk, &t.partitioned, &t.generated)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, unmet("table", name, "table %s does not exist in the source database: create it or remove it from the stream's tables", name)
	}
	if err != nil {
		return t, fmt.Errorf("inspect table %s: %w", name, err)
	}
	t.configured, t.name, t.hasPK = name, pgx.Identifier{t.schema, t.rel}.Sanitize(), len(t.pk) > 0
	return t, nil
}

// readIdentity reads relation oid's replica identity.
func readIdentity(ctx context.Context, conn *pgx.Conn, oid uint32) (identity, error) {
	var id identity
	var ident, schema, rel string
	err := conn.QueryRow(ctx, `SELECT n.nspname, c.relname, c.relreplident::text,
			COALESCE((SELECT ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
				WHERE i.indrelid = c.oid AND i.indisreplident), ''),
			COALESCE((SELECT pk.indkey::int2[] <@ ri.indkey::int2[] FROM pg_index pk, pg_index ri
				WHERE pk.indrelid = c.oid AND pk.indisprimary AND ri.indrelid = c.oid AND ri.indisreplident), false),
			EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
				AND NOT a.attisdropped AND a.attlen = -1 AND a.attstorage <> 'p')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1`, oid).
		Scan(&schema, &rel, &ident, &id.index, &id.coversPK, &id.toastable)
	if err != nil {
		return id, fmt.Errorf("read replica identity: %w", err)
	}
	id.name, id.replIdent = pgx.Identifier{schema, rel}.Sanitize(), ident[0]
	return id, nil
}

// checkIdentity applies the replica identity rules to t's relation id: it
// sets REPLICA IDENTITY FULL where the stream allows it (with apply; Check
// only notes that Prepare would), and otherwise returns an *Unmet naming
// the statement that fixes the table.
func (s *Source) checkIdentity(ctx context.Context, conn *pgx.Conn, t table, id identity, apply bool) error {
	if !t.hasPK && !s.cfg.KeylessTables {
		add := "ADD PRIMARY KEY (…)"
		if id.index != "" {
			add = "ADD PRIMARY KEY USING INDEX " + pgx.Identifier{id.index}.Sanitize()
		}
		return unmet("replica_identity", t.configured, "table %s has no primary key, so its records could not be keyed: run ALTER TABLE %s %s, or set keyless_tables = \"full\" on the stream to stream it without a key under REPLICA IDENTITY FULL", id.name, id.name, add)
	}
	why := needsFull(t.hasPK, id)
	if why == "" {
		return nil
	}
	if !s.cfg.SetReplicaIdentityFull {
		subject := "table " + id.name
		if id.name != t.name {
			subject = "partition " + id.name + " of table " + t.name
		}
		return unmet("replica_identity", t.configured, "%s %s: run ALTER TABLE %s REPLICA IDENTITY FULL, or set set_replica_identity_full = true on the stream", subject, why, id.name)
	}
	if !apply {
		return nil
	}
	if _, err := conn.Exec(ctx, "ALTER TABLE "+id.name+" REPLICA IDENTITY FULL"); err != nil {
		return fmt.Errorf("set replica identity full on %s: %w", id.name, err)
	}
	s.log.Info("set REPLICA IDENTITY FULL", "table", id.name, "because", strings.TrimPrefix(why, "has "))
	return nil
}

// needsFull says why a relation needs REPLICA IDENTITY FULL, or "" when its
// replica identity already logs what records need.
func needsFull(hasPK bool, id identity) string {
	switch {
	case id.replIdent == 'f':
		return ""
	case id.toastable:
		// Unchanged TOASTed values are not in the WAL; the old row logged
		// whole supplies them (docs/records.md#values).
		return fmt.Sprintf("has columns that PostgreSQL may TOAST and REPLICA IDENTITY %s, so an update could arrive without their values", identName(id.replIdent))
	case !hasPK:
		// Without a key, only the whole old row tells which row an
		// update or delete changed.
		return "has no primary key, and keyless_tables = \"full\" streams such a table only with REPLICA IDENTITY FULL, which logs the whole old row"
	case id.replIdent == 'n':
		return "has REPLICA IDENTITY NOTHING, so PostgreSQL would reject its UPDATEs and DELETEs once published"
	case id.replIdent == 'i' && !id.coversPK:
		return fmt.Sprintf("has REPLICA IDENTITY USING INDEX %s, which does not hold its whole primary key, so a deleted row would arrive without its primary key", pgx.Identifier{id.index}.Sanitize())
	}
	return ""
}

func identName(b byte) string {
	switch b {
	case 'd':
		return "DEFAULT"
	case 'n':
		return "NOTHING"
	case 'f':
		return "FULL"
	case 'i':
		return "USING INDEX"
	}
	return string(b)
}
