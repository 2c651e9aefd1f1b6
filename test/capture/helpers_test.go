// Package capture_test runs capture against a real PostgreSQL: the shared
// server of test/infra/up.sh, or a private one for tests that restart it or
// change server settings. Each test has its own database and slot.
//
// Tests on the shared server call t.Parallel() first. Tests on a private
// server do not: they restart it or bound it by its own timers (a 1 s
// wal_sender_timeout, a 10 s shutdown), which CPU contention from parallel
// tests could break, so they run first, before the parallel ones (see
// package testenv).
package capture_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cdcd-dev/cdcd/atrest"
	"github.com/cdcd-dev/cdcd/capture"
	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// recorder is a Handler that keeps every transaction and acknowledges it at
// once: Delivered is the end of the last one handled. block, when set, runs
// first and may hold Handle for backpressure.
type recorder struct {
	block func(ctx context.Context, txn *record.Txn) error

	mu        sync.Mutex
	txns      []*record.Txn
	snapshot  []*record.Txn
	snapDone  bool
	delivered atomic.Uint64
	persisted atomic.Uint64
	started   atomic.Bool // MarkSnapshotStarted was called: the state file's mark
	// snapshotHook runs for each snapshot batch before it is recorded.
	snapshotHook func(ctx context.Context, batch *record.Txn) error
}

var _ capture.SnapshotHandler = (*recorder)(nil)

func (r *recorder) Handle(ctx context.Context, txn *record.Txn) error {
	if r.block != nil {
		if err := r.block(ctx, txn); err != nil {
			return err
		}
	}
	// A reconnect hands delivered transactions again; keep each once.
	if txn.EndLSN <= r.delivered.Load() {
		return nil
	}
	r.mu.Lock()
	r.txns = append(r.txns, txn)
	r.mu.Unlock()
	r.delivered.Store(txn.EndLSN)
	return nil
}

func (r *recorder) Delivered() uint64 { return r.delivered.Load() }

func (r *recorder) Persist(_ context.Context, lsn uint64) error {
	for {
		old := r.persisted.Load()
		if lsn <= old || r.persisted.CompareAndSwap(old, lsn) {
			return nil
		}
	}
}

func (r *recorder) Persisted() uint64 { return r.persisted.Load() }

func (r *recorder) HandleSnapshot(ctx context.Context, batch *record.Txn) error {
	if r.snapshotHook != nil {
		if err := r.snapshotHook(ctx, batch); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.snapshot = append(r.snapshot, batch)
	r.mu.Unlock()
	return nil
}

func (r *recorder) MarkSnapshotStarted(context.Context) error {
	r.started.Store(true)
	return nil
}

func (r *recorder) SnapshotStarted() bool { return r.started.Load() }

func (r *recorder) SnapshotDone(context.Context) error {
	r.mu.Lock()
	r.snapDone = true
	r.mu.Unlock()
	return nil
}

// handled returns the transactions kept so far.
func (r *recorder) handled() []*record.Txn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.txns)
}

// changes returns the changes kept so far, in commit order.
func (r *recorder) changes() []record.Change {
	var out []record.Change
	for _, t := range r.handled() {
		out = append(out, t.Changes...)
	}
	return out
}

// harness is one test's database, source and running capture.
type harness struct {
	t    *testing.T
	ctx  context.Context
	dsn  string
	db   *pgx.Conn
	slot string
	cfg  capture.Config
	reg  *prometheus.Registry
	src  *capture.Source
	rec  *recorder

	reportMu   sync.Mutex
	reports    []codes.Code
	reportErrs []error

	cancel context.CancelFunc
	done   chan error
}

// newHarness connects to dsn (a database of the test's own) and fills a
// capture configuration with short intervals; tests adjust h.cfg before
// start. With dsn empty it creates a database on the shared server.
func newHarness(t *testing.T, dsn string, tables ...string) *harness {
	t.Helper()
	if dsn == "" {
		dsn = testenv.CreateDB(t, testenv.Require(t))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	db := connectDB(t, ctx, dsn)
	h := &harness{t: t, ctx: ctx, dsn: dsn, db: db, slot: testenv.UniqueName(t, 63), reg: prometheus.NewRegistry(), rec: &recorder{}}
	h.cfg = capture.Config{
		DSN: dsn, Slot: h.slot, Publication: "cdcd_pub", Tables: tables, SetReplicaIdentityFull: true,
		StatusInterval: 200 * time.Millisecond, HealthInterval: 200 * time.Millisecond,
		Report: func(code codes.Code, err error) {
			h.reportMu.Lock()
			h.reports = append(h.reports, code)
			h.reportErrs = append(h.reportErrs, err)
			h.reportMu.Unlock()
		},
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	spill, err := atrest.NewSpillStore(t.TempDir(), nil, atrest.SpillOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.cfg.Spill = spill
	return h
}

// connectDB opens a connection closed when the test ends.
func connectDB(t *testing.T, ctx context.Context, dsn string) *pgx.Conn {
	t.Helper()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return db
}

func (h *harness) exec(sql string, args ...any) {
	h.t.Helper()
	if _, err := h.db.Exec(h.ctx, sql, args...); err != nil {
		h.t.Fatalf("%s: %v", sql, err)
	}
}

// source builds the Source from h.cfg with metrics on h.reg.
func (h *harness) source() *capture.Source {
	h.t.Helper()
	if h.cfg.Metrics == nil {
		m, err := capture.NewMetrics(h.reg)
		if err != nil {
			h.t.Fatal(err)
		}
		h.cfg.Metrics = m.Stream("test")
	}
	src, err := capture.New(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.src = src
	return src
}

// start prepares the source and runs it in the background until the test
// ends (or stop), returning what Prepare found.
func (h *harness) start() capture.Info {
	h.t.Helper()
	src := h.source()
	info, err := src.Prepare(h.ctx, h.rec.Persisted())
	if err != nil {
		h.t.Fatalf("prepare: %v", err)
	}
	h.run()
	return info
}

// run starts Run on the current source.
func (h *harness) run() {
	ctx, cancel := context.WithCancel(h.ctx)
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.src.Run(ctx, h.rec) }()
	h.t.Cleanup(func() { h.stop() })
}

// stop ends Run and returns its error (nil for a clean stop).
func (h *harness) stop() error {
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	case <-time.After(30 * time.Second):
		h.t.Fatal("Run did not return within 30s of its context ending")
		return nil
	}
}

// runErr waits for Run to end by itself.
func (h *harness) runErr(timeout time.Duration) error {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.cancel()
		h.cancel = nil
		return err
	case <-time.After(timeout):
		h.t.Fatalf("Run still running after %v", timeout)
		return nil
	}
}

// waitFor polls cond until it holds or timeout passes.
func (h *harness) waitFor(timeout time.Duration, what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitChanges waits until at least n changes were handled.
func (h *harness) waitChanges(n int) []record.Change {
	h.t.Helper()
	h.waitFor(30*time.Second, fmt.Sprintf("%d changes", n), func() bool { return len(h.rec.changes()) >= n })
	return h.rec.changes()
}

// slotRow reads the slot's walsender pid (0 when inactive) and confirmed
// flush position.
func (h *harness) slotRow() (pid int, confirmed uint64) {
	h.t.Helper()
	var p *int32
	var lsn *string
	err := h.db.QueryRow(h.ctx, `SELECT active_pid, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, h.slot).Scan(&p, &lsn)
	if err != nil {
		h.t.Fatalf("read slot %s: %v", h.slot, err)
	}
	if p != nil {
		pid = int(*p)
	}
	if lsn != nil {
		l, err := pglogrepl.ParseLSN(*lsn)
		if err != nil {
			h.t.Fatal(err)
		}
		confirmed = uint64(l)
	}
	return pid, confirmed
}

// insertLSN is the end of the WAL written so far.
func (h *harness) insertLSN() uint64 {
	h.t.Helper()
	var lsn pglogrepl.LSN
	if err := h.db.QueryRow(h.ctx, `SELECT pg_current_wal_insert_lsn()`).Scan(&lsn); err != nil {
		h.t.Fatal(err)
	}
	return uint64(lsn)
}

// walsender waits for the slot to be in use and returns the pid.
func (h *harness) walsender() int {
	h.t.Helper()
	var pid int
	h.waitFor(30*time.Second, "an active walsender", func() bool {
		pid, _ = h.slotRow()
		return pid != 0
	})
	return pid
}

// metric returns the value of a counter or gauge family (summed over its
// series) from h.reg.
func (h *harness) metric(name string) float64 {
	h.t.Helper()
	fams, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += value(m)
		}
	}
	return sum
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

func (h *harness) reported() []codes.Code {
	h.reportMu.Lock()
	defer h.reportMu.Unlock()
	return slices.Clone(h.reports)
}

// text returns column col of a tuple as a string ("<null>" for NULL).
func text(rel *record.Relation, t record.Tuple, col string) string {
	for i, c := range rel.Columns {
		if c.Name == col {
			if t[i].Kind == record.DatumNull {
				return "<null>"
			}
			return string(t[i].Data)
		}
	}
	return "<no column " + col + ">"
}

func columnNames(rel *record.Relation) []string {
	var out []string
	for _, c := range rel.Columns {
		out = append(out, c.Name)
	}
	return out
}
