// Package e2e runs the cdcd binary against a real PostgreSQL and a real
// Kinesis implementation (see test/infra/up.sh), reading the results back
// with cdcd tail.
//
// Every test has its own database, slot, Kinesis stream, state directory
// and daemon, and calls t.Parallel() first; the one that stops the shared
// PostgreSQL (TestSourceShutdownWhileImpaired) does not, so it runs before
// the others start (see package testenv for the rule).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// binary is the cdcd executable built once for the package.
var binary string

func TestMain(m *testing.M) { os.Exit(testenv.RunCheckingLogs(m, &binary, logForbidden...)) }

// harness is one test's database, Kinesis stream and config file.
type harness struct {
	t        *testing.T
	env      testenv.Env
	db       *pgx.Conn
	dsn      string // the test database, without the password
	password string
	kinesis  string // Kinesis stream name
	config   string // path of the config file
	stateDir string
	listen   string // the daemon's control plane address
	slot     string
}

type harnessOptions struct {
	tables   []string
	ordering string
	shards   int
	extra    string // appended to the [[stream]] table
	aws      string // appended to the [aws] table
	target   string // appended to the [stream.target] table
	cluster  string // appended to the [[cluster]] table
	// kinesisEndpoint replaces the Kinesis endpoint the daemon uses (a
	// fault proxy in front of it, say).
	kinesisEndpoint string
	// askAccount leaves aws.account out, so that cdcd asks STS (an
	// sts_endpoint in aws); otherwise it is the stand-ins' 000000000000.
	askAccount bool
}

func newHarness(t *testing.T, opt harnessOptions) *harness {
	t.Helper()
	env := testenv.Require(t)
	dsn := testenv.CreateDB(t, env)
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	h := &harness{t: t, env: env, db: db, kinesis: testenv.StreamName(t), stateDir: filepath.Join(t.TempDir(), "state")}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	h.password, _ = u.User.Password()
	u.User = url.User(u.User.Username())
	h.dsn = u.String()
	// Slot names are global to the server: one per test database.
	h.slot = "cdcd_" + db.Config().Database
	testenv.CreateStream(t, testenv.KinesisClient(t, env, env.KinesisEndpoint), h.kinesis, int32(max(opt.shards, 1)))
	if opt.ordering == "" {
		opt.ordering = "UNORDERED"
	}
	if opt.kinesisEndpoint == "" {
		opt.kinesisEndpoint = env.KinesisEndpoint
	}
	h.listen = testenv.FreeAddr(t)
	account := `account = "000000000000"`
	if opt.askAccount {
		account = ""
	}
	quoted := make([]string, len(opt.tables))
	for i, tb := range opt.tables {
		quoted[i] = fmt.Sprintf("%q", tb)
	}
	cfg := fmt.Sprintf(`
state_dir = %q
listen = %q
[log]
level = "debug"
[aws]
region = %q
kinesis_endpoint = %q
%s
%s
[[cluster]]
name = "src"
dsn = %q
password_env = "CDCD_E2E_PG_PASSWORD"
%s
[[stream]]
name = "e2e"
cluster = "src"
tables = [%s]
slot = %q
publication = "cdcd_e2e"
ordering = %q
set_replica_identity_full = true
%s
[stream.target]
kinesis_stream = %q
%s
[stream.delivery]
status_interval = "1s"
linger = "5ms"
`, h.stateDir, h.listen, env.Region, opt.kinesisEndpoint, account, opt.aws, h.dsn, opt.cluster, strings.Join(quoted, ", "), h.slot, opt.ordering, opt.extra, h.kinesis, opt.target)
	h.config = filepath.Join(t.TempDir(), "cdcd.toml")
	if err := os.WriteFile(h.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// dbName is the test database's name, which records carry in source.db.
func (h *harness) dbName() string { return h.db.Config().Database }

// conn opens another connection to the test database.
func (h *harness) conn() *pgx.Conn {
	h.t.Helper()
	c, err := pgx.Connect(context.Background(), h.db.Config().ConnString())
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) exec(sql string, args ...any) {
	h.t.Helper()
	if _, err := h.db.Exec(context.Background(), sql, args...); err != nil {
		h.t.Fatalf("%s: %v", sql, err)
	}
}

// daemon is a running cdcd run.
type daemon struct{ *testenv.Process }

func (h *harness) start() *daemon {
	h.t.Helper()
	d := h.startNoWait()
	h.waitSlotActive()
	return d
}

// startNoWait starts the daemon without waiting for it to stream.
func (h *harness) startNoWait() *daemon {
	h.t.Helper()
	return &daemon{testenv.Start(h.t, binary, []string{"CDCD_E2E_PG_PASSWORD=" + h.password}, "run", "--config", h.config)}
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop(t *testing.T) { d.Stop(t) }

// kill ends the daemon with SIGKILL: no drain, no final checkpoint.
func (d *daemon) kill() { d.Kill() }

// waitSlotActive waits until the daemon streams from its slot. A slot
// being created is active before it has a confirmed_flush_lsn, and a
// change committed before that (its consistent point) is not in the stream
// (nor, without snapshot, in Kinesis): the creation waits for transactions
// running anywhere on the server, so under parallel tests it takes seconds.
func (h *harness) waitSlotActive() {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if sl := h.slotState(); sl.active && sl.confirmed != 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.t.Fatalf("the daemon did not start streaming from slot %s within 60s", h.slot)
}

// slotInfo is the stream's row in pg_replication_slots.
type slotInfo struct {
	exists    bool
	active    bool   // a walsender streams from it
	confirmed uint64 // confirmed_flush_lsn; 0 when none
}

func (h *harness) slotState() slotInfo {
	h.t.Helper()
	var sl slotInfo
	var confirmed int64
	err := h.db.QueryRow(context.Background(),
		`SELECT active, COALESCE((confirmed_flush_lsn - '0/0')::int8, 0) FROM pg_replication_slots WHERE slot_name = $1`,
		h.slot).Scan(&sl.active, &confirmed)
	if errors.Is(err, pgx.ErrNoRows) {
		return sl
	}
	if err != nil {
		h.t.Fatalf("read slot %s: %v", h.slot, err)
	}
	sl.exists, sl.confirmed = true, uint64(confirmed)
	return sl
}

// cdcRecord is the DSQL envelope as a consumer sees it, and the line
// cdcd tail printed for it.
type cdcRecord struct {
	testenv.Record
	raw string
}

// tail reads the whole Kinesis stream with cdcd tail until it is idle.
func (h *harness) tail(idle time.Duration) []cdcRecord {
	h.t.Helper()
	return h.tailArgs(idle, "--config", h.config, "--stream", "e2e")
}

// tailArgs runs cdcd tail from the start with extra arguments naming the
// stream to read.
func (h *harness) tailArgs(idle time.Duration, args ...string) []cdcRecord {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append([]string{"tail", "--from-start", "--idle-exit", idle.String(), "--poll", "50ms"}, args...)
	cmd := exec.CommandContext(ctx, binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = io.MultiWriter(&stderr, testenv.LogFile(h.t, "tail"))
	out, err := cmd.Output()
	if err != nil {
		h.t.Fatalf("cdcd tail: %v\n%s", err, stderr.String())
	}
	var recs []cdcRecord
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r cdcRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			h.t.Fatalf("tail printed a line that is not a record: %v: %q", err, sc.Text())
		}
		r.raw = sc.Text()
		recs = append(recs, r)
	}
	return recs
}

// waitRecords tails until ok accepts the records or the deadline passes.
func (h *harness) waitRecords(timeout time.Duration, ok func([]cdcRecord) bool) []cdcRecord {
	h.t.Helper()
	recs, done := h.pollRecords(timeout, ok)
	if !done {
		h.t.Fatalf("records did not arrive within %s; got %d", timeout, len(recs))
	}
	return recs
}

// pollRecords tails until ok accepts the records or the deadline passes,
// and returns the last records read and whether ok accepted them.
func (h *harness) pollRecords(timeout time.Duration, ok func([]cdcRecord) bool) ([]cdcRecord, bool) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		recs := h.tail(time.Second)
		if ok(recs) {
			return recs, true
		}
		if time.Now().After(deadline) {
			return recs, false
		}
	}
}
