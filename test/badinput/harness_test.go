// Package badinput holds the bad-input table of docs/bad-input.md: one test
// per row, each giving cdcd one mistake (in its configuration, its source,
// its target or its state directory) and asserting what cdcd says, word
// for word, and that nothing already committed is lost. The daemon runs in
// process (pipeline.NewDaemon), against the real local servers.
package badinput

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/ident"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/state/api"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// waitTimeout bounds every wait; the cases reach their state in a second
// or two, so it only guards against a hang.
const waitTimeout = 30 * time.Second

// fixture is one case's database, Kinesis stream and configuration file.
type fixture struct {
	t        *testing.T
	env      testenv.Env
	db       *pgx.Conn // the superuser, on the case's database
	dsn      string    // the case's database, without the password
	kinesis  string
	slot     string
	stateDir string
	listen   string
	config   string // path of the configuration file
	// cluster and stream are the identifiers, fixed in the file so that
	// GetStream can be asked before the daemon has said anything.
	cluster, stream string
}

// options change the configuration file of a case.
type options struct {
	top       string   // top-level keys (failure_threshold, …)
	tables    []string // default public.t
	stream    string   // lines added to [[stream]]
	target    string   // lines added to [stream.target]
	cluster   string   // lines added to [[cluster]]
	aws       string   // lines added to [aws]
	delivery  string   // lines added to [stream.delivery]
	noKinesis bool     // no Kinesis stream is created
	// noFull leaves set_replica_identity_full false: cdcd refuses tables
	// that need REPLICA IDENTITY FULL instead of setting it.
	noFull bool
	// dbWith are options for the case's CREATE DATABASE on the shared
	// server; private is a private server's database to use instead.
	dbWith, private string
	// dsn replaces the DSN cdcd is given (another role, another server),
	// password the password; a DSN carries none: the password file does.
	dsn, password string
}

// newFixture creates the case's database and Kinesis stream, and writes
// its configuration.
func newFixture(t *testing.T, o options) *fixture {
	t.Helper()
	env := testenv.Require(t)
	var db *pgx.Conn
	if o.private == "" {
		db = testenv.NewDBWith(t, env, o.dbWith)
		o.private = env.DSN(db.Config().Database)
	} else {
		db = connect(t, o.private)
	}
	f := &fixture{t: t, env: env, db: db, kinesis: testenv.StreamName(t),
		slot: "cdcd_" + db.Config().Database, stateDir: filepath.Join(t.TempDir(), "state"),
		listen: testenv.FreeAddr(t), config: filepath.Join(t.TempDir(), "cdcd.toml")}
	f.cluster = ident.DeriveID("badinput-cluster", f.slot)
	f.stream = ident.DeriveID("badinput-stream", f.slot)
	u, err := url.Parse(o.private)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	f.dsn = u.String()
	if o.dsn != "" {
		f.dsn = o.dsn
	}
	if o.password != "" {
		password = o.password
	}
	if !o.noKinesis {
		testenv.CreateStream(t, testenv.KinesisClient(t, env, ""), f.kinesis, 1)
	}
	if len(o.tables) == 0 {
		o.tables = []string{"public.t"}
	}
	f.writeConfig(o, password)
	return f
}

// connect opens a connection closed when the test ends.
func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (f *fixture) writeConfig(o options, password string) {
	f.t.Helper()
	if password != "" {
		pwFile := filepath.Join(f.t.TempDir(), "pgpassword")
		if err := os.WriteFile(pwFile, []byte(password), 0o600); err != nil {
			f.t.Fatal(err)
		}
		o.cluster = fmt.Sprintf("password_file = %q\n", pwFile) + o.cluster
	}
	tables, _ := json.Marshal(o.tables)
	if o.top != "" {
		o.top += "\n" // no line without it, so that the cases' line numbers hold
	}
	f.write(fmt.Sprintf(`state_dir = %q
listen = %q
%s[aws]
region = %q
account = "000000000000"
kinesis_endpoint = %q
%s
[[cluster]]
name = "src"
identifier = %q
dsn = %q
%s
[[stream]]
name = "s"
cluster = "src"
identifier = %q
tables = %s
slot = %q
publication = "cdcd_pub"
set_replica_identity_full = %t
%s
[stream.target]
kinesis_stream = %q
%s
[stream.delivery]
status_interval = "200ms"
linger = "5ms"
%s
`, f.stateDir, f.listen, o.top, f.env.Region, f.env.KinesisEndpoint, o.aws, f.cluster, f.dsn, o.cluster,
		f.stream, tables, f.slot, !o.noFull, o.stream, f.kinesis, o.target, o.delivery))
}

// write replaces the configuration file with text.
func (f *fixture) write(text string) {
	f.t.Helper()
	if err := os.WriteFile(f.config, []byte(text), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.db.Exec(context.Background(), sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

// daemon is cdcd run, in process, with its log.
type daemon struct {
	f      *fixture
	log    testenv.SyncBuffer
	cancel context.CancelFunc
	done   chan error
}

// streaming creates the table, starts the daemon, and returns it once the
// rows ids have reached Kinesis: the stream as it is before a case breaks
// something.
func (f *fixture) streaming(ids ...int) *daemon {
	f.t.Helper()
	f.createTable()
	d := f.start()
	f.waitStatus("ACTIVE")
	f.insert(ids...)
	f.waitRecords(len(ids))
	return d
}

// start loads the configuration and runs the daemon until stop or the end
// of the test, as cdcd run does; it fails the test if either step fails.
func (f *fixture) start() *daemon {
	f.t.Helper()
	d, err := f.run()
	if err != nil {
		f.t.Fatalf("cdcd run: %v", err)
	}
	return d
}

// run is start returning the error that cdcd run would print (after
// "cdcd: ") when the configuration or the daemon cannot start.
func (f *fixture) run() (*daemon, error) {
	f.t.Helper()
	cfg, err := config.Load(f.config)
	if err != nil {
		return nil, err
	}
	d := &daemon{f: f, done: make(chan error, 1)}
	log := slog.New(slog.NewJSONHandler(&d.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	dm, err := pipeline.NewDaemon(ctx, cfg, "test", log)
	if err != nil {
		cancel()
		return nil, err
	}
	d.cancel = cancel
	go func() { d.done <- dm.Run(ctx) }()
	f.t.Cleanup(func() {
		if err := d.stop(); err != nil {
			f.t.Errorf("cdcd run: %v", err)
		}
		if f.t.Failed() {
			f.t.Logf("cdcd log:\n%s", d.log.String())
		}
	})
	return d, nil
}

// stop ends the daemon as SIGTERM does and returns Run's error; stopping a
// stopped daemon returns nil.
func (d *daemon) stop() error {
	if d.cancel == nil {
		return nil
	}
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		return err
	case <-time.After(waitTimeout):
		return errors.New("did not stop within 30s")
	}
}

// exited waits for Run to return by itself and returns its error.
func (d *daemon) exited() error {
	d.f.t.Helper()
	select {
	case err := <-d.done:
		d.cancel()
		d.cancel = nil
		return err
	case <-time.After(waitTimeout):
		d.f.t.Fatal("cdcd run still running")
		return nil
	}
}

// logLine is one line of the daemon's JSON log.
type logLine map[string]any

func (l logLine) str(key string) string { s, _ := l[key].(string); return s }

// waitLog waits for a log line whose msg is msg and whose err attribute is
// err, and returns it.
func (d *daemon) waitLog(msg, err string) logLine {
	d.f.t.Helper()
	var seen []string
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		seen = seen[:0]
		for line := range strings.Lines(d.log.String()) {
			var l logLine
			if json.Unmarshal([]byte(line), &l) != nil {
				continue
			}
			if l.str("msg") == msg {
				if l.str("err") == err {
					return l
				}
				seen = append(seen, l.str("err"))
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.f.t.Fatalf("no log line %q with err\n  %q\ngot errs: %q", msg, err, seen)
	return nil
}

// waitLogMsg waits for a log line whose msg is msg and returns it.
func (d *daemon) waitLogMsg(msg string) logLine {
	d.f.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		for line := range strings.Lines(d.log.String()) {
			var l logLine
			if json.Unmarshal([]byte(line), &l) == nil && l.str("msg") == msg {
				return l
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.f.t.Fatalf("no log line %q", msg)
	return nil
}

// view is what GetStream shows of the stream.
type view struct {
	status, code, message string
}

func (f *fixture) getStream() (view, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := api.GetStream(ctx, testenv.ControlPlane(f.env, f.listen), f.cluster, f.stream)
	if err != nil {
		return view{}, err
	}
	v := view{status: out.Status}
	if r := out.StatusReason; r != nil {
		v.code, v.message = r.Code, r.Message
	}
	return v, nil
}

// waitStatus waits until GetStream shows status and returns the view.
func (f *fixture) waitStatus(status string) view {
	f.t.Helper()
	var last view
	var lastErr error
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		last, lastErr = f.getStream()
		if lastErr == nil && last.status == status {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.t.Fatalf("stream not %s: last %+v, %v", status, last, lastErr)
	return view{}
}

// wantReason fails the test unless v has code and exactly message.
func wantReason(t *testing.T, v view, code, message string) {
	t.Helper()
	if v.code != code || v.message != message {
		t.Errorf("statusReason:\n  got  %s %q\n  want %s %q", v.code, v.message, code, message)
	}
}

// rawRecords reads every record of the case's Kinesis stream, shard by
// shard.
func (f *fixture) rawRecords() [][]byte {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	shards, err := testenv.ReadStream(ctx, testenv.KinesisClient(f.t, f.env, ""), f.kinesis)
	if err != nil {
		f.t.Fatalf("read Kinesis stream %s: %v", f.kinesis, err)
	}
	return slices.Concat(shards...)
}

// records reads every record of the case's Kinesis stream.
func (f *fixture) records() []testenv.Record {
	f.t.Helper()
	var out []testenv.Record
	for _, data := range f.rawRecords() {
		var r testenv.Record
		if err := json.Unmarshal(data, &r); err != nil {
			f.t.Fatalf("a record that is not JSON: %v", err)
		}
		out = append(out, r)
	}
	return out
}

// waitFor polls cond until it holds, or fails the test naming what.
func (f *fixture) waitFor(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("no %s within %v", what, waitTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitConfirmed waits until the slot's confirmed position reaches the end
// of the WAL written so far: cdcd has delivered every change before it.
func (f *fixture) waitConfirmed() {
	f.t.Helper()
	var end string
	if err := f.db.QueryRow(context.Background(), `SELECT pg_current_wal_insert_lsn()::text`).Scan(&end); err != nil {
		f.t.Fatal(err)
	}
	f.waitFor("the slot confirmed at "+end, func() bool {
		var done bool
		err := f.db.QueryRow(context.Background(), `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots
			WHERE slot_name = $2`, end, f.slot).Scan(&done)
		return err == nil && done
	})
}

// waitRecords waits until the Kinesis stream holds at least n records.
func (f *fixture) waitRecords(n int) []testenv.Record {
	f.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		recs := f.records()
		if got := distinct(recs); got >= n || time.Now().After(deadline) {
			if got < n {
				f.t.Fatalf("%d distinct records in Kinesis, want %d", got, n)
			}
			return recs
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// distinct counts recs with a redelivered record counted once: a replay
// after a restart repeats a change with the same op, source.ts_ns and
// images (docs/records.md#identity), though not the same top-level ts_ms.
func distinct(recs []testenv.Record) int {
	seen := map[string]bool{}
	for _, r := range recs {
		img, _ := json.Marshal([]any{r.Op, r.Source.TsNs, r.Before, r.After})
		seen[string(img)] = true
	}
	return len(seen)
}

// wantIDs fails the test unless recs are exactly the records of op with
// the ids want (the JSON text of each after's id), in any order;
// duplicates, which redelivery after a restart may bring, count once.
func wantIDs(t *testing.T, recs []testenv.Record, op string, want ...string) {
	t.Helper()
	var got []string
	for _, r := range recs {
		img := r.After
		if img == nil {
			img = r.Before
		}
		got = append(got, r.Op+":"+string(img["id"]))
	}
	var wantOps []string
	for _, id := range want {
		wantOps = append(wantOps, op+":"+id)
	}
	slices.Sort(got)
	got = slices.Compact(got)
	slices.Sort(wantOps)
	if !slices.Equal(got, wantOps) {
		t.Errorf("records %v, want %v", got, wantOps)
	}
}
