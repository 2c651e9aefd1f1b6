package pgauth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// These tests run against the local PostgreSQL that test/infra/up.sh starts
// (. .cache/env); testenv.Require skips them without it, or fails under CI.

func pgCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func secretWord(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

func adminConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(pgCtx(t), dsn)
	if err != nil {
		t.Fatalf("connect as the test superuser: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// newRole creates a login role with password and drops it when the test
// ends. Call it before testenv.CreateDB, so that the database (and whatever
// the role owns in it) is dropped first.
func newRole(t *testing.T, env testenv.Env, password string) string {
	t.Helper()
	role := testenv.UniqueName(t, 63)
	admin := adminConn(t, env.PGDSN)
	if _, err := admin.Exec(pgCtx(t), fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", pgx.Identifier{role}.Sanitize(), password)); err != nil {
		t.Fatalf("create role: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, env.PGDSN)
		if err != nil {
			t.Errorf("drop role %s: %v", role, err)
			return
		}
		defer conn.Close(ctx)
		conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role)
		if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize()); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	return role
}

func setPassword(t *testing.T, env testenv.Env, role, password string) {
	t.Helper()
	admin := adminConn(t, env.PGDSN)
	if _, err := admin.Exec(pgCtx(t), fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", pgx.Identifier{role}.Sanitize(), password)); err != nil {
		t.Fatalf("alter role: %v", err)
	}
}

// roleDSN is dsn with role as the user and no password.
func roleDSN(t *testing.T, dsn, role string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	return u.String()
}

// connectWith opens and closes one connection the way capture does: parse
// the DSN, let the Provider fill in the login, connect.
func connectWith(t *testing.T, p *Provider, dsn string) error {
	t.Helper()
	ctx := pgCtx(t)
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Configure(ctx, cfg); err != nil {
		return err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// assertNoSecret fails when any of secrets appears in any of texts.
func assertNoSecret(t *testing.T, secrets []string, texts ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, text := range texts {
			if strings.Contains(text, s) {
				t.Errorf("a secret leaked into %q", text)
			}
		}
	}
}

func TestPasswordFileRotationAgainstPostgres(t *testing.T) {
	env := testenv.Require(t)
	pw1, pw2 := secretWord("first"), secretWord("second")
	role := newRole(t, env, pw1)
	dsn := roleDSN(t, env.PGDSN, role)
	path := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(path, []byte(pw1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	p, err := New(Source{PasswordFile: path}, Options{Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := connectWith(t, p, dsn); err != nil {
		t.Fatalf("first connection: %v", err)
	}

	// The password rotates in the database before the mounted file
	// catches up: the login is refused and described without the password.
	setPassword(t, env, role, pw2)
	authErr := connectWith(t, p, dsn)
	if authErr == nil {
		t.Fatal("connected with the old password")
	}
	if !IsAuthFailure(authErr) {
		t.Errorf("IsAuthFailure(%v) = false", authErr)
	}
	cause, msg := Describe(authErr)
	if cause != CauseAuthentication || !strings.Contains(msg, role) {
		t.Errorf("Describe = %q, %q; want authentication naming the role", cause, msg)
	}

	// The file is updated: the next new connection uses it, no restart.
	if err := os.WriteFile(path, []byte(pw2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := connectWith(t, p, dsn); err != nil {
		t.Fatalf("after the file was updated: %v", err)
	}

	// pgx.ConnConfig embeds the pgconn.Config capture's catalog
	// connection uses; Configure works on it the same way.
	pcfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Configure(pgCtx(t), &pcfg.Config); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(pgCtx(t), pcfg)
	if err != nil {
		t.Fatalf("pgx connection: %v", err)
	}
	conn.Close(context.Background())

	assertNoSecret(t, []string{pw1, pw2}, authErr.Error(), msg, logs.String())
}

func TestWrongPasswordIsNeverPrinted(t *testing.T) {
	env := testenv.Require(t)
	role := newRole(t, env, secretWord("right"))
	wrong := secretWord("wrong")
	var logs logBuffer
	p, err := New(Source{PasswordEnv: "CDCD_TEST_WRONG"}, Options{
		Logger:    logs.logger(),
		LookupEnv: func(string) (string, bool) { return wrong, true },
	})
	if err != nil {
		t.Fatal(err)
	}
	err = connectWith(t, p, roleDSN(t, env.PGDSN, role))
	cause, msg := Describe(err)
	if cause != CauseAuthentication {
		t.Errorf("Describe = %q, %q (err %v)", cause, msg, err)
	}
	// Log the error as the daemon would, then look everywhere.
	p.log.Error("source unavailable", "err", err, "cause", cause, "msg", msg)
	assertNoSecret(t, []string{wrong}, err.Error(), fmt.Sprintf("%v %+v", err, err), msg, logs.String())
}

func TestSecretRotationAgainstPostgres(t *testing.T) {
	env := testenv.Require(t)
	pw1, pw2 := secretWord("first"), secretWord("second")
	role := newRole(t, env, pw1)
	dsn := roleDSN(t, env.PGDSN, "someone_else") // the secret's username wins
	fake, client := newSecretsManager(t)
	secret := func(pw string) string {
		return fmt.Sprintf(`{"engine":"postgres","username":%q,"password":%q}`, role, pw)
	}
	fake.set("prod/cdcd", secret(pw1))
	var logs logBuffer
	// A TTL far longer than the test: only AuthFailed can make the
	// Provider fetch again.
	p, err := New(Source{SecretID: "prod/cdcd"}, Options{Secrets: client, SecretTTL: time.Hour, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := connectWith(t, p, dsn); err != nil {
		t.Fatalf("first connection: %v", err)
	}

	// Rotation: the database and the secret change together.
	setPassword(t, env, role, pw2)
	fake.set("prod/cdcd", secret(pw2))
	authErr := connectWith(t, p, dsn)
	if !IsAuthFailure(authErr) {
		t.Fatalf("with the cached password: err = %v, want an authentication failure", authErr)
	}
	cause, msg := Describe(authErr)
	if cause != CauseAuthentication {
		t.Errorf("Describe = %q, %q", cause, msg)
	}
	p.AuthFailed()
	if err := connectWith(t, p, dsn); err != nil {
		t.Fatalf("after AuthFailed: %v", err)
	}
	if n := fake.count(); n != 2 {
		t.Errorf("%d GetSecretValue calls, want 2 (one at start, one after the refused login)", n)
	}
	assertNoSecret(t, []string{pw1, pw2}, authErr.Error(), msg, logs.String())
}
