// Package roundtrip proves docs/records.md#envelope end to end: a seeded random workload on a
// source database goes through cdcd into Kinesis and back out through
// `cdcd tail --apply` into a replica, which must then equal the source row
// for row; and a consumer that knows only DSQL's preview contract (c, d,
// anything else is an upsert) must reach the same state from the same
// records.
package roundtrip

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// binary is the cdcd executable built once for the package, with the race
// detector like the e2e tests' build, so a data race in the daemon or in
// tail's reassembly fails the run too.
var binary string

// TestMain also fails the suite if a process logged a value of the workload
// (it writes testenv's markers) or a secret.
func TestMain(m *testing.M) { os.Exit(testenv.RunCheckingLogs(m, &binary)) }

// harness is one run's source and replica databases, Kinesis stream and
// config file.
type harness struct {
	t          *testing.T
	env        testenv.Env
	src        *pgx.Conn // the source, for the workload
	srcDSN     string    // with password, for extra connections
	replicaDSN string    // with password: tail --apply connects with it
	kinesis    string    // Kinesis stream name
	stream     string    // cdcd stream name; its slot is cdcd_<stream>
	config     string    // path of the config file
	password   string
}

func newHarness(t *testing.T, ordering, aggregation string, shards int32, tables []string) *harness {
	t.Helper()
	env := testenv.Require(t)
	// Slot names are global to the server, and other packages' tests (or
	// another run of this one) may share it: the stream name is unique.
	h := &harness{t: t, env: env, kinesis: testenv.StreamName(t), stream: strings.ReplaceAll(testenv.UniqueName(t, 40), "__", "_")}
	h.srcDSN = testenv.CreateDB(t, env)
	h.replicaDSN = testenv.CreateDB(t, env)
	h.src = h.connect(h.srcDSN)
	testenv.CreateStream(t, testenv.KinesisClient(t, env, ""), h.kinesis, shards)

	u, err := url.Parse(h.srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	h.password, _ = u.User.Password()
	u.User = url.User(u.User.Username())
	quoted := make([]string, len(tables))
	for i, tb := range tables {
		quoted[i] = fmt.Sprintf("%q", tb)
	}
	cfg := fmt.Sprintf(`
state_dir = %q
listen = "127.0.0.1:0"
[log]
level = "info"
[aws]
region = %q
# The stand-ins' account; without it cdcd would ask STS.
account = "000000000000"
kinesis_endpoint = %q
[[cluster]]
name = "src"
dsn = %q
password_env = "CDCD_ROUNDTRIP_PG_PASSWORD"
[[stream]]
name = %q
cluster = "src"
tables = [%s]
ordering = %q
aggregation = %q
set_replica_identity_full = true
[stream.target]
kinesis_stream = %q
[stream.delivery]
status_interval = "1s"
linger = "5ms"
`, filepath.Join(t.TempDir(), "state"), env.Region, env.KinesisEndpoint, u.String(), h.stream,
		strings.Join(quoted, ", "), ordering, aggregation, h.kinesis)
	h.config = filepath.Join(t.TempDir(), "cdcd.toml")
	if err := os.WriteFile(h.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// connect opens a connection closed at cleanup, with the session settings
// that make text output comparable between source and replica.
func (h *harness) connect(dsn string) *pgx.Conn {
	h.t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range map[string]string{
		"TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres", "extra_float_digits": "1",
	} {
		cfg.RuntimeParams[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	// Registered after CreateDB's cleanup, so it runs before the drop.
	h.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// daemon is a running `cdcd run`.
type daemon struct{ *testenv.Process }

// start runs the daemon and waits until it streams from its slot. Cleanup
// stops it (before the databases are dropped: cleanups run last-in
// first-out).
func (h *harness) start() *daemon {
	h.t.Helper()
	d := &daemon{testenv.Start(h.t, binary, []string{"CDCD_ROUNDTRIP_PG_PASSWORD=" + h.password}, "run", "--config", h.config)}
	h.waitSlotActive(d)
	return d
}

// waitSlotActive waits until the daemon streams from its slot, created:
// a slot being created is active before it has a confirmed_flush_lsn, and
// a change committed before that (its consistent point) is not streamed.
func (h *harness) waitSlotActive(d *daemon) {
	h.t.Helper()
	slot := "cdcd_" + h.stream
	err := poll(60*time.Second, func() (bool, error) {
		if exited, err := d.Exited(); exited {
			return false, fmt.Errorf("cdcd run exited during startup: %v\n%s", err, d.Logs())
		}
		var active bool
		err := h.src.QueryRow(context.Background(),
			`SELECT active AND confirmed_flush_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`, slot).Scan(&active)
		return err == nil && active, nil
	})
	if err != nil {
		h.t.Fatalf("slot %s: %v", slot, err)
	}
}

// delivered reports whether the daemon's slot is confirmed past lsn, which
// it may only be once Kinesis has accepted every change before (docs/delivery.md).
func (h *harness) delivered(ctx context.Context, lsn string) (bool, error) {
	var ok bool
	err := h.src.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn > $1::pg_lsn, false) FROM pg_replication_slots
		WHERE slot_name = $2 AND database = current_database()`, lsn, "cdcd_"+h.stream).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("read the slot's confirmed position: %w", err)
	}
	return ok, nil
}

// tailProc is a running `cdcd tail --apply`.
type tailProc struct {
	cmd    *exec.Cmd
	stderr *testenv.SyncBuffer
	done   chan error
}

// startTail reads the whole Kinesis stream from the start and applies every
// record to the replica, exiting after idle without records.
func (h *harness) startTail(idle time.Duration) *tailProc {
	h.t.Helper()
	cmd := exec.Command(binary, "tail", "--config", h.config, "--stream", h.stream,
		"--from-start", "--apply", h.replicaDSN, "--idle-exit", idle.String(), "--poll", "50ms")
	p := &tailProc{cmd: cmd, stderr: &testenv.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = io.MultiWriter(p.stderr, testenv.LogFile(h.t, "tail")) // stdout (the printed records) goes to /dev/null
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	h.t.Cleanup(func() { p.stop(h.t) })
	return p
}

// exited reports the exit of the tail if it has ended.
func (p *tailProc) exited() (error, bool) {
	select {
	case err := <-p.done:
		p.done <- err
		return err, true
	default:
		return nil, false
	}
}

// stop ends the tail with SIGTERM, which it treats as a normal end.
func (p *tailProc) stop(t *testing.T) {
	t.Helper()
	if err, ok := p.exited(); ok {
		if err != nil {
			t.Errorf("cdcd tail exited with %v:\n%s", err, p.stderr.String())
		}
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("cdcd tail exited with %v after SIGTERM:\n%s", err, p.stderr.String())
		}
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		p.done <- <-p.done
		t.Errorf("cdcd tail did not stop within 30s of SIGTERM")
	}
}

// poll calls f every 100ms until it reports done or an error, or timeout
// passes.
func poll(timeout time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		done, err := f()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done within %s", timeout)
		}
		<-tick.C
	}
}

func tailOf(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
