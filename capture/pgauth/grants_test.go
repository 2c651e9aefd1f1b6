package pgauth

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

func checks(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Check+" "+f.Object)
	}
	sort.Strings(out)
	return out
}

// applyFixes runs every finding's fix as the superuser, which proves the
// SQL cdcd prints is valid and sufficient.
func applyFixes(t *testing.T, admin *pgx.Conn, fs []Finding) {
	t.Helper()
	for _, f := range fs {
		if f.Fix == "" {
			continue
		}
		if _, err := admin.Exec(pgCtx(t), f.Fix); err != nil {
			t.Fatalf("fix for %s %s: %q: %v", f.Check, f.Object, f.Fix, err)
		}
	}
}

func TestCheckGrants(t *testing.T) {
	env := testenv.Require(t)
	pw := secretWord("pw")
	role := newRole(t, env, pw)
	dbDSN := testenv.CreateDB(t, env)
	admin := adminConn(t, dbDSN)
	ctx := pgCtx(t)
	for _, q := range []string{
		`CREATE SCHEMA sales`,
		`CREATE TABLE sales.orders (id int PRIMARY KEY)`,
		`CREATE TABLE public."Line Items" (id int PRIMARY KEY)`,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	p, err := New(Source{PasswordEnv: "X"}, Options{LookupEnv: func(string) (string, bool) { return pw, true }})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(roleDSN(t, dbDSN, role))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Configure(ctx, &cfg.Config); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	db := cfg.Database
	tables := []string{"sales.orders", `public."Line Items"`}
	got := CheckGrants(ctx, conn, append(tables, "public.missing"), "cdcd_pub")
	want := []string{
		"create_publication " + db,
		"replication " + role,
		`select "public"."Line Items"`,
		`select "sales"."orders"`,
		"schema_usage sales",
		"table public.missing",
		"table_owner cdcd_pub",
	}
	sort.Strings(want)
	if g := checks(got); strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Fatalf("findings:\n%s\nwant:\n%s\n\n%v", strings.Join(g, "\n"), strings.Join(want, "\n"), got)
	}
	for _, f := range got {
		if f.Check != "table" && !strings.Contains(f.Fix, pgx.Identifier{role}.Sanitize()) {
			t.Errorf("%s: fix %q does not name the role", f.Check, f.Fix)
		}
	}
	applyFixes(t, admin, got)
	if got := CheckGrants(ctx, conn, tables, "cdcd_pub"); len(got) != 0 {
		t.Fatalf("after the fixes: %v", got)
	}
	// What capture does next succeeds with exactly these grants.
	if _, err := conn.Exec(ctx, `CREATE PUBLICATION cdcd_pub FOR TABLE sales.orders, public."Line Items"`); err != nil {
		t.Fatalf("create publication as the role: %v", err)
	}
	if got := CheckGrants(ctx, conn, tables, "cdcd_pub"); len(got) != 0 {
		t.Fatalf("with the publication: %v", got)
	}

	// A publication someone else owns that lacks a table: cdcd cannot add it.
	if _, err := admin.Exec(ctx, `CREATE PUBLICATION theirs FOR TABLE sales.orders`); err != nil {
		t.Fatal(err)
	}
	got = CheckGrants(ctx, conn, tables, "theirs")
	if g := checks(got); len(g) != 1 || g[0] != "publication_owner theirs" || !strings.Contains(got[0].Fix, `ADD TABLE "public"."Line Items"`) {
		t.Fatalf("findings %v", got)
	}
	applyFixes(t, admin, got)
	if got := CheckGrants(ctx, conn, tables, "theirs"); len(got) != 0 {
		t.Fatalf("after ALTER PUBLICATION OWNER: %v", got)
	}
	// …and one that already holds every table needs nothing.
	if _, err := admin.Exec(ctx, `CREATE PUBLICATION complete FOR TABLE sales.orders, public."Line Items"`); err != nil {
		t.Fatal(err)
	}
	if got := CheckGrants(ctx, conn, tables, "complete"); len(got) != 0 {
		t.Fatalf("complete publication owned by another role: %v", got)
	}
}

func TestCheckGrantsLogin(t *testing.T) {
	env := testenv.Require(t)
	role := testenv.UniqueName(t, 63)
	admin := adminConn(t, env.PGDSN)
	ctx := pgCtx(t)
	ident := pgx.Identifier{role}.Sanitize()
	if _, err := admin.Exec(ctx, "CREATE ROLE "+ident+" NOLOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(context.Background(), "RESET ROLE; DROP ROLE IF EXISTS "+ident) })
	// SET ROLE makes current_user a role that could never log in itself.
	if _, err := admin.Exec(ctx, "SET ROLE "+ident); err != nil {
		t.Fatal(err)
	}
	got := CheckGrants(ctx, admin, nil, "p")
	if len(got) == 0 || got[0].Check != "login" || got[0].Fix != fmt.Sprintf("ALTER ROLE %s WITH LOGIN;", ident) {
		t.Fatalf("findings %v", got)
	}
	if _, err := admin.Exec(ctx, "RESET ROLE"); err != nil {
		t.Fatal(err)
	}
	if got := CheckGrants(ctx, admin, nil, "p"); len(got) != 0 {
		t.Errorf("superuser: %v", got)
	}
}
