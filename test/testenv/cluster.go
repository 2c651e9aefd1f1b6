package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Cluster is a private PostgreSQL server for one test: tests that restart
// the server, change wal_level or shorten wal_sender_timeout, or fill the
// slots, must not do that to the shared one. initdb and start take about a
// second.
type Cluster struct {
	t    testing.TB
	bin  string
	dir  string
	Data string // the data directory
	Port int
}

// StartCluster initialises and starts a server on a free port with logical
// replication and the test-speed settings of test/infra/up.sh, plus conf
// lines (later lines win). The superuser is cdcd with trust
// authentication. Cleanup stops it and removes its files. A package that
// uses it calls RemoveClusterTemplate from TestMain.
func StartCluster(t testing.TB, env Env, conf ...string) *Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "cdcd-test-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, bin: env.PGBin, dir: dir, Data: filepath.Join(dir, "data"), Port: freePort(t)}
	t.Cleanup(func() {
		_ = c.PG("pg_ctl", "-D", c.Data, "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	})
	if err := chownPostgres(dir); err != nil {
		t.Fatal(err)
	}
	tmpl, err := templateCluster(env)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", tmpl, c.Data).CombinedOutput(); err != nil {
		t.Fatalf("copy template cluster: %v\n%s", err, out)
	}
	settings := append([]string{
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("port = %d", c.Port),
		fmt.Sprintf("unix_socket_directories = '%s'", dir),
		"wal_level = logical", "max_replication_slots = 10", "max_wal_senders = 10",
		"fsync = off", "synchronous_commit = off", "full_page_writes = off",
	}, conf...)
	f, err := os.OpenFile(filepath.Join(c.Data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\n" + strings.Join(settings, "\n") + "\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	return c
}

// template is a data directory fresh from initdb, made once per test
// process and copied for each private cluster: initdb takes seconds on a
// busy machine, a copy a fraction of that. RemoveClusterTemplate removes it.
var template struct {
	once sync.Once
	dir  string
	err  error
}

func templateCluster(env Env) (string, error) {
	template.once.Do(func() {
		dir, err := os.MkdirTemp("", "cdcd-test-pg-tmpl-")
		if err != nil {
			template.err = err
			return
		}
		template.dir = dir
		if err := chownPostgres(dir); err != nil {
			template.err = err
			return
		}
		template.err = RunPG(env.PGBin, "initdb", "-D", filepath.Join(dir, "data"), "-U", "cdcd", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions")
	})
	return filepath.Join(template.dir, "data"), template.err
}

// RemoveClusterTemplate removes the template StartCluster made, if any;
// call it from TestMain after the tests.
func RemoveClusterTemplate() {
	if template.dir != "" {
		os.RemoveAll(template.dir)
	}
}

// chownPostgres gives dir to the postgres user when running as root, since
// initdb and postgres refuse to run as root.
func chownPostgres(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root needs a postgres user for initdb: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(dir, uid, gid)
}

// PG runs a server program as the postgres user when running as root.
func (c *Cluster) PG(prog string, args ...string) error {
	return RunPG(c.bin, prog, args...)
}

// Start starts the server (again, after Stop).
func (c *Cluster) Start() {
	c.t.Helper()
	if err := c.PG("pg_ctl", "-D", c.Data, "-l", filepath.Join(c.dir, "log"), "-w", "-t", "30", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		c.t.Fatalf("start PostgreSQL: %v\n%s", err, log)
	}
}

// Stop stops the server with a fast shutdown.
func (c *Cluster) Stop() {
	c.t.Helper()
	if err := c.PG("pg_ctl", "-D", c.Data, "-m", "fast", "-w", "stop"); err != nil {
		c.t.Fatalf("stop PostgreSQL: %v", err)
	}
}

// DSN connects to database db as the superuser cdcd.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://cdcd@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// CreateDB creates a database on the private cluster and returns its DSN;
// the cluster's cleanup removes it with everything else.
func (c *Cluster) CreateDB(name string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		c.t.Fatal(err)
	}
	return c.DSN(name)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
