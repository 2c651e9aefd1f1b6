package testenv

import (
	"context"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/retry"
)

// maxIdentLen is PostgreSQL's identifier limit (NAMEDATALEN - 1).
const maxIdentLen = 63

// DSN returns env.PGDSN pointed at another database.
func (e Env) DSN(database string) string {
	u, err := url.Parse(e.PGDSN)
	if err != nil {
		// Require only hands out what up.sh wrote; a broken DSN is a bug there.
		panic("testenv: parse " + VarPGDSN + ": " + err.Error())
	}
	u.Path = "/" + database
	return u.String()
}

// CreateDB creates an empty database named after the test and returns its
// DSN (the cdcd superuser, password auth over TCP). Cleanup ends its
// sessions, drops its replication slots, so that no abandoned slot retains
// WAL, and drops it.
func CreateDB(t testing.TB, env Env) string {
	t.Helper()
	return CreateDBWith(t, env, "")
}

// CreateDBWith is CreateDB with options for CREATE DATABASE ("ENCODING
// 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0").
func CreateDBWith(t testing.TB, env Env, with string) string {
	t.Helper()
	name := UniqueName(t, maxIdentLen)
	admin := connect(t, env.PGDSN)
	defer admin.Close(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" "+with); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() { DropDB(t, env, name) })
	return env.DSN(name)
}

// DropDB removes database name and every replication slot in it, ending the
// sessions that use them. It is CreateDB's cleanup; tests call it to drop a
// database early.
func DropDB(t testing.TB, env Env, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	admin, err := pgx.Connect(ctx, env.PGDSN)
	if err != nil {
		t.Errorf("testenv: drop database %s: connect: %v", name, err)
		return
	}
	defer admin.Close(context.Background())

	// Walsenders are not ended by DROP DATABASE ... WITH (FORCE), and an
	// active slot cannot be dropped: end them first.
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(active_pid)
		FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, name); err != nil {
		t.Errorf("testenv: drop database %s: end slot sessions: %v", name, err)
	}
	// A terminated walsender releases its slot a moment later: retry briefly.
	var lastErr error
	for range 50 {
		_, lastErr = admin.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name)
			FROM pg_replication_slots WHERE database = $1`, name)
		if lastErr == nil {
			break
		}
		if retry.Sleep(ctx, pollInterval) != nil {
			break
		}
	}
	if lastErr != nil {
		t.Errorf("testenv: drop database %s: drop replication slots: %v", name, lastErr)
	}
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("testenv: drop database %s: %v", name, err)
	}
}

// NewDB creates a database for the test (see CreateDB) and returns a
// connection to it, closed before the database is dropped. The database's
// name is conn.Config().Database; its DSN is env.DSN of that name.
func NewDB(t testing.TB, env Env) *pgx.Conn {
	t.Helper()
	return NewDBWith(t, env, "")
}

// NewDBWith is NewDB with options for CREATE DATABASE (CreateDBWith).
func NewDBWith(t testing.TB, env Env, with string) *pgx.Conn {
	t.Helper()
	dsn := CreateDBWith(t, env, with)
	conn := connect(t, dsn)
	// Registered after CreateDB's cleanup, so it runs first.
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("testenv: connect to PostgreSQL: %v", err)
	}
	return conn
}
