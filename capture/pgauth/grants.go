package pgauth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Finding is one thing the source role cannot do that cdcd needs, with the
// SQL that fixes it.
type Finding struct {
	// Check names what was checked: login, replication, table, select,
	// schema_usage, publication_owner, create_publication, table_owner,
	// query.
	Check string
	// Object is the role, table, schema, publication or database concerned.
	Object string
	// Problem says what is missing and why cdcd needs it.
	Problem string
	// Fix is SQL to run as a superuser (rds_superuser on RDS) or the
	// object's owner; empty when no statement fixes it.
	Fix string
}

// String renders a finding for `cdcd check`.
func (f Finding) String() string {
	if f.Fix == "" {
		return f.Problem
	}
	return f.Problem + "\n  fix: " + f.Fix
}

// CheckGrants reports every privilege the connected role (current_user)
// lacks for a stream over tables (schema-qualified) and publication: LOGIN;
// REPLICATION, or on RDS membership in rds_replication; USAGE on each
// table's schema and SELECT on each table, which the initial snapshot
// reads; and, where cdcd must create the publication or add tables to it,
// CREATE on the database, ownership of the tables and of the publication.
// An empty result means cdcd can run. A failed catalog query is a finding
// too, so the caller always gets a list to print.
func CheckGrants(ctx context.Context, conn *pgx.Conn, tables []string, publication string) []Finding {
	var (
		role, db                               string
		super, login, repl, rdsRole, rdsMember bool
		out                                    []Finding
	)
	err := conn.QueryRow(ctx, `SELECT current_user, current_database(), r.rolsuper, r.rolcanlogin, r.rolreplication,
			EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_replication'),
			EXISTS (SELECT 1 FROM pg_roles x WHERE x.rolname = 'rds_replication' AND pg_has_role(current_user, x.oid, 'MEMBER'))
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&role, &db, &super, &login, &repl, &rdsRole, &rdsMember)
	if err != nil {
		return []Finding{queryFinding("read role attributes", err)}
	}
	r := pgx.Identifier{role}.Sanitize()
	if !login {
		out = append(out, Finding{Check: "login", Object: role,
			Problem: fmt.Sprintf("role %s cannot log in (NOLOGIN)", role),
			Fix:     fmt.Sprintf("ALTER ROLE %s WITH LOGIN;", r)})
	}
	if super {
		// A superuser passes every privilege check below.
		return out
	}
	switch {
	case repl || rdsMember:
	case rdsRole:
		out = append(out, Finding{Check: "replication", Object: role,
			Problem: fmt.Sprintf("role %s cannot open a replication connection: on RDS it must be a member of rds_replication", role),
			Fix:     fmt.Sprintf("GRANT rds_replication TO %s;", r)})
	default:
		out = append(out, Finding{Check: "replication", Object: role,
			Problem: fmt.Sprintf("role %s lacks REPLICATION, which logical replication connections need", role),
			Fix:     fmt.Sprintf("ALTER ROLE %s WITH REPLICATION;", r)})
	}

	var found []tableRef
	for _, name := range tables {
		t := tableRef{name: name}
		var usage, sel bool
		// Names are resolved in the catalog rather than with to_regclass,
		// which fails outright in a schema the role has no USAGE on: the
		// very case to report.
		err := conn.QueryRow(ctx, `SELECT n.nspname, c.relname,
				has_schema_privilege(current_user, n.oid, 'USAGE'),
				has_table_privilege(current_user, c.oid, 'SELECT'),
				pg_has_role(current_user, c.relowner, 'USAGE')
			FROM (SELECT parse_ident($1) AS i) p
			JOIN pg_namespace n ON n.nspname = CASE WHEN cardinality(p.i) = 2 THEN p.i[1] ELSE 'public' END
			JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.i[cardinality(p.i)] AND c.relkind IN ('r', 'p')
			WHERE cardinality(p.i) <= 2`, name).Scan(&t.schema, &t.rel, &usage, &sel, &t.owned)
		if errors.Is(err, pgx.ErrNoRows) {
			out = append(out, Finding{Check: "table", Object: name,
				Problem: fmt.Sprintf("table %s does not exist in database %s", name, db)})
			continue
		}
		if err != nil {
			out = append(out, queryFinding("inspect table "+name, err))
			continue
		}
		t.quoted = pgx.Identifier{t.schema, t.rel}.Sanitize()
		found = append(found, t)
		if !usage {
			out = append(out, Finding{Check: "schema_usage", Object: t.schema,
				Problem: fmt.Sprintf("role %s has no USAGE on schema %s, so it cannot reach %s", role, t.schema, t.quoted),
				Fix:     fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s;", pgx.Identifier{t.schema}.Sanitize(), r)})
		}
		if !sel {
			out = append(out, Finding{Check: "select", Object: t.quoted,
				Problem: fmt.Sprintf("role %s cannot SELECT from %s, which the initial snapshot reads", role, t.quoted),
				Fix:     fmt.Sprintf("GRANT SELECT ON TABLE %s TO %s;", t.quoted, r)})
		}
	}
	return append(out, checkPublication(ctx, conn, role, db, publication, found)...)
}

// tableRef is a configured table found in the catalog.
type tableRef struct {
	name        string // as configured
	schema, rel string
	quoted      string
	owned       bool // the role has its owner's privileges
}

// checkPublication reports what stops cdcd from creating the publication or
// adding the stream's tables to it (capture does one or the other at
// startup). A publication that already holds every table needs nothing
// from cdcd: it only reads it.
func checkPublication(ctx context.Context, conn *pgx.Conn, role, db, publication string, found []tableRef) []Finding {
	r := pgx.Identifier{role}.Sanitize()
	p := pgx.Identifier{publication}.Sanitize()
	var (
		exists, owner, all bool
		ownerName          string
	)
	err := conn.QueryRow(ctx, `SELECT true, pg_has_role(current_user, p.pubowner, 'USAGE'), p.puballtables, o.rolname
		FROM pg_publication p JOIN pg_roles o ON o.oid = p.pubowner WHERE p.pubname = $1`, publication).
		Scan(&exists, &owner, &all, &ownerName)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return []Finding{queryFinding("read publication "+publication, err)}
	}
	if all {
		return nil
	}
	in := map[[2]string]bool{}
	if exists {
		rows, err := conn.Query(ctx, `SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1`, publication)
		if err != nil {
			return []Finding{queryFinding("read publication "+publication, err)}
		}
		var sch, rel string
		_, err = pgx.ForEachRow(rows, []any{&sch, &rel}, func() error {
			in[[2]string{sch, rel}] = true
			return nil
		})
		if err != nil {
			return []Finding{queryFinding("read publication "+publication, err)}
		}
	}
	var absent []tableRef
	for _, t := range found {
		if !in[[2]string{t.schema, t.rel}] {
			absent = append(absent, t)
		}
	}
	if len(absent) == 0 {
		return nil // complete, or no configured table exists yet (reported above)
	}
	var add, ownerFixes []string
	for _, t := range absent {
		add = append(add, t.quoted)
		if !t.owned {
			ownerFixes = append(ownerFixes, fmt.Sprintf("ALTER TABLE %s OWNER TO %s;", t.quoted, r))
		}
	}
	// What an owner can run instead of granting cdcd more.
	yourself := fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s; -- as the tables' owner", p, strings.Join(add, ", "))
	if !exists {
		yourself = fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s; ALTER PUBLICATION %s OWNER TO %s; -- as the tables' owner", p, strings.Join(add, ", "), p, r)
	}

	var out []Finding
	if exists && !owner {
		out = append(out, Finding{Check: "publication_owner", Object: publication,
			Problem: fmt.Sprintf("publication %s lacks %d of the stream's tables and belongs to %s, so role %s cannot add them", publication, len(absent), ownerName, role),
			Fix:     fmt.Sprintf("ALTER PUBLICATION %s OWNER TO %s; -- or add them yourself: %s", p, r, yourself)})
	}
	if !exists {
		var create bool
		if err := conn.QueryRow(ctx, `SELECT has_database_privilege(current_user, current_database(), 'CREATE')`).Scan(&create); err != nil {
			return []Finding{queryFinding("read database privileges", err)}
		}
		if !create {
			out = append(out, Finding{Check: "create_publication", Object: db,
				Problem: fmt.Sprintf("publication %s does not exist and role %s has no CREATE on database %s to create it", publication, role, db),
				Fix:     fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s; -- or create it yourself: %s", pgx.Identifier{db}.Sanitize(), r, yourself)})
		}
	}
	if len(ownerFixes) > 0 {
		// PostgreSQL lets only a table's owner put it in a publication.
		out = append(out, Finding{Check: "table_owner", Object: publication,
			Problem: fmt.Sprintf("role %s must own the tables it puts in publication %s, and does not own %d of them", role, publication, len(ownerFixes)),
			Fix:     strings.Join(ownerFixes, " ") + " -- or do it yourself: " + yourself})
	}
	return out
}

func queryFinding(what string, err error) Finding {
	return Finding{Check: "query", Problem: fmt.Sprintf("%s: %v", what, err)}
}
