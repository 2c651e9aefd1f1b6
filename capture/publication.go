package capture

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The stream's publication (docs/config.md, own_publication). pgoutput
// publishes only what the publication says: an operation it leaves out never
// arrives, a column list leaves columns out of every after image, a row
// filter drops changes, and a table it holds beyond the stream's is streamed
// unchecked. So the publication must be exactly the stream's: cdcd makes it
// so when it owns the publication, and otherwise refuses to start with the
// statements that would.

// allOps is the publish option of a publication cdcd makes.
const allOps = "insert, update, delete, truncate"

// storedGenerated puts stored generated columns in every record, on
// PostgreSQL 18 and later; earlier servers cannot publish them.
const storedGenerated = "publish_generated_columns = stored"

// viaRoot names a partitioned table's changes after the table, not after
// the partition that holds the row, and covers partitions attached later.
const viaRoot = "publish_via_partition_root = true"

// pubState is a publication as the catalog describes it.
type pubState struct {
	exists, allTables                        bool
	insert, update, delete, truncate, schema bool
	viaRoot                                  bool
	// generated says it publishes stored generated columns (PostgreSQL
	// 18+, publish_generated_columns = stored).
	generated bool
	// rels are the tables named in the publication (quoted), with
	// whether each has a column list or a row filter (PostgreSQL 15+).
	rels map[string]pubRel
}

type pubRel struct{ columnList, rowFilter bool }

// pubPlan is what a publication lacks for the stream: problems in words,
// and the statements that fix them.
type pubPlan struct {
	problems   []string
	statements []string
}

// ensurePublication makes the publication the stream's, or, for a
// publication cdcd does not own, checks that it is.
func (s *Source) ensurePublication(ctx context.Context, conn *pgx.Conn, version int, tables []table) error {
	pub := pgx.Identifier{s.cfg.Publication}.Sanitize()
	p, err := readPublication(ctx, conn, s.cfg.Publication, version)
	if err != nil {
		return fmt.Errorf("read publication %s: %w", s.cfg.Publication, err)
	}
	if !p.exists {
		create := "CREATE PUBLICATION " + pub + " FOR TABLE " + tableList(tables) + " WITH (" + viaRoot
		if version >= pgPublishesGenerated {
			create += ", " + storedGenerated
		}
		create += ")"
		if s.cfg.ExternalPublication {
			return fmt.Errorf("publication %s does not exist, and own_publication = false keeps cdcd from creating it: run %s, or set own_publication = true", pub, create)
		}
		if _, err := conn.Exec(ctx, create); err != nil {
			return fmt.Errorf("create publication %s: %w (cdcd needs CREATE on the database, or create the publication yourself)", pub, err)
		}
		s.log.Info("created publication", "publication", s.cfg.Publication, "tables", len(tables))
		return nil
	}
	if p.allTables {
		return fmt.Errorf("publication %s is FOR ALL TABLES, so it publishes tables the stream does not list: run DROP PUBLICATION %s (cdcd then creates its own), or name another publication in the stream's publication key", pub, pub)
	}
	plan := s.planPublication(p, tables, version)
	if len(plan.statements) == 0 {
		return nil
	}
	if s.cfg.ExternalPublication {
		return fmt.Errorf("publication %s %s: run %s, or set own_publication = true to let cdcd manage it", pub,
			strings.Join(plan.problems, "; "), strings.Join(plan.statements, "; "))
	}
	for _, stmt := range plan.statements {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w (cdcd must own the publication, or set own_publication = false and fix it yourself)", stmt, err)
		}
	}
	s.log.Warn("changed publication to publish what the stream needs", "publication", s.cfg.Publication,
		"was", strings.Join(plan.problems, "; "), "sql", strings.Join(plan.statements, "; "))
	return nil
}

// planPublication compares p with what the stream needs.
func (s *Source) planPublication(p pubState, tables []table, version int) pubPlan {
	pub := pgx.Identifier{s.cfg.Publication}.Sanitize()
	var plan pubPlan
	// A publication cdcd owns publishes every operation, truncate too:
	// without emit_truncate a truncate is still logged and counted.
	needTruncate := s.cfg.EmitTruncate || !s.cfg.ExternalPublication
	var ops []string
	for _, op := range []struct {
		name     string
		on, need bool
	}{{"insert", p.insert, true}, {"update", p.update, true}, {"delete", p.delete, true}, {"truncate", p.truncate, needTruncate}} {
		if op.need && !op.on {
			ops = append(ops, op.name)
		}
	}
	var opts []string
	if len(ops) > 0 {
		plan.problems = append(plan.problems, "does not publish "+strings.Join(ops, ", "))
		opts = append(opts, "publish = '"+allOps+"'")
	}
	if !p.viaRoot && (!s.cfg.ExternalPublication || slices.ContainsFunc(tables, func(t table) bool { return t.partitioned })) {
		plan.problems = append(plan.problems, "does not publish partitioned tables through their root, so records would be named after partitions")
		opts = append(opts, viaRoot)
	}
	if !p.generated && version >= pgPublishesGenerated &&
		(!s.cfg.ExternalPublication || slices.ContainsFunc(tables, func(t table) bool { return len(t.generated) > 0 })) {
		plan.problems = append(plan.problems, "does not publish stored generated columns, so records would lack them")
		opts = append(opts, storedGenerated)
	}
	if len(opts) > 0 {
		plan.statements = append(plan.statements, "ALTER PUBLICATION "+pub+" SET ("+strings.Join(opts, ", ")+")")
	}
	problems, onlyMissing := tableProblems(p, tables)
	if len(problems) > 0 {
		plan.problems = append(plan.problems, problems...)
		verb := " SET TABLE "
		if onlyMissing {
			verb = " ADD TABLE "
		}
		plan.statements = append(plan.statements, "ALTER PUBLICATION "+pub+verb+tableList(missingOrAll(p, tables, onlyMissing)))
	}
	return plan
}

// tableProblems lists how the publication's tables differ from the
// stream's; onlyMissing says that adding tables is all it takes.
func tableProblems(p pubState, tables []table) (problems []string, onlyMissing bool) {
	var missing, extra, lists, filters []string
	want := map[string]bool{}
	for _, t := range tables {
		want[t.name] = true
		if _, ok := p.rels[t.name]; !ok {
			missing = append(missing, t.name)
		}
	}
	for name, r := range p.rels {
		switch {
		case !want[name]:
			extra = append(extra, name)
		case r.columnList:
			lists = append(lists, name)
		case r.rowFilter:
			filters = append(filters, name)
		}
	}
	for _, d := range []struct {
		names []string
		what  string
	}{
		{missing, "lacks the stream's tables %s"},
		{extra, "has tables the stream does not list (%s), whose changes would be streamed unchecked"},
		{lists, "has a column list on %s, so records would lack columns"},
		{filters, "has a row filter on %s, so changes would be missing"},
	} {
		if len(d.names) > 0 {
			slices.Sort(d.names)
			problems = append(problems, fmt.Sprintf(d.what, strings.Join(d.names, ", ")))
		}
	}
	if p.schema {
		problems = append(problems, "publishes whole schemas (FOR TABLES IN SCHEMA), so tables the stream does not list would be streamed unchecked")
	}
	return problems, len(problems) == 1 && len(missing) > 0
}

func missingOrAll(p pubState, tables []table, onlyMissing bool) []table {
	if !onlyMissing {
		return tables
	}
	var out []table
	for _, t := range tables {
		if _, ok := p.rels[t.name]; !ok {
			out = append(out, t)
		}
	}
	return out
}

func tableList(tables []table) string {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.name
	}
	return strings.Join(names, ", ")
}

// readPublication reads publication name's settings and tables; column
// lists, row filters and schemas exist from PostgreSQL 15 on.
func readPublication(ctx context.Context, conn *pgx.Conn, name string, version int) (pubState, error) {
	var p pubState
	err := conn.QueryRow(ctx, `SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot
		FROM pg_publication WHERE pubname = $1`, name).Scan(&p.allTables, &p.insert, &p.update, &p.delete, &p.truncate, &p.viaRoot)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	p.exists = true
	if version >= pgPublishesGenerated {
		err := conn.QueryRow(ctx, `SELECT pubgencols::text = 's' FROM pg_publication WHERE pubname = $1`, name).Scan(&p.generated)
		if err != nil {
			return p, err
		}
	}
	filters := "false, false"
	if version >= 150000 {
		filters = "pr.prattrs IS NOT NULL, pr.prqual IS NOT NULL"
		err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication_namespace pn
			JOIN pg_publication p ON p.oid = pn.pnpubid WHERE p.pubname = $1)`, name).Scan(&p.schema)
		if err != nil {
			return p, err
		}
	}
	rows, err := conn.Query(ctx, `SELECT n.nspname, c.relname, `+filters+`
		FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
		JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE p.pubname = $1`, name)
	if err != nil {
		return p, err
	}
	defer rows.Close()
	p.rels = map[string]pubRel{}
	for rows.Next() {
		var schema, rel string
		var r pubRel
		if err := rows.Scan(&schema, &rel, &r.columnList, &r.rowFilter); err != nil {
			return p, err
		}
		p.rels[pgx.Identifier{schema, rel}.Sanitize()] = r
	}
	return p, rows.Err()
}
