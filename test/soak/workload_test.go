package soak

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/retry"
)

// stmt is one statement of a transaction.
type stmt struct {
	sql  string
	args []any
}

// txn is what a writer commits (or rolls back) in one go.
type txn struct {
	stmts    []stmt
	rollback bool
}

// workload drives the source: a writer for each stream's tables, large
// transactions now and then, an ADD COLUMN and TRUNCATEs. Every choice
// comes from the seed; what PostgreSQL commits depends on the faults too,
// so the checks compare with the source's final state, not with a replay.
type workload struct {
	s *soak

	commits   atomic.Int64 // transactions committed (or rolled back as planned)
	failures  atomic.Int64 // transactions lost to a fault (outcome unknown)
	bigs      atomic.Int64 // large transactions committed
	bigFailed atomic.Int64
	truncates atomic.Int64
	nextBig   atomic.Int64 // numbers the large transactions' id ranges

	addColumnAt time.Duration // when in the run accounts gains addedColumn
	mu          sync.Mutex
	addedAt     time.Time // when ADD COLUMN returned; zero before

	bigWG sync.WaitGroup
}

func newWorkload(s *soak) *workload {
	return &workload{s: s, addColumnAt: s.opt.duration * 2 / 5}
}

// run starts the writers until ctx ends; wait waits for them and for the
// large transactions.
func (w *workload) run(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	seed := uint64(w.s.opt.seed)
	rows := &rowsGen{w: w}
	spread := &spreadGen{w: w, lastTruncate: time.Now()}
	wg.Go(func() { w.writer(ctx, rand.New(rand.NewPCG(seed, 1)), rows.next) })
	wg.Go(func() { w.writer(ctx, rand.New(rand.NewPCG(seed, 2)), spread.next) })
	wg.Go(func() { w.bigSchedule(ctx) })
	return func() {
		wg.Wait()
		w.bigWG.Wait()
	}
}

// writer commits the transactions next makes until ctx ends, reconnecting
// after any failure (PostgreSQL restarts under it).
func (w *workload) writer(ctx context.Context, r *rand.Rand, next func(context.Context, *pgx.Conn, *rand.Rand) (txn, error)) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for ctx.Err() == nil {
		if conn == nil {
			c, err := pgx.Connect(ctx, w.s.dsn)
			if err != nil {
				_ = retry.Sleep(ctx, 250*time.Millisecond)
				continue
			}
			conn = c
		}
		tx, err := next(ctx, conn, r)
		if err == nil {
			err = execTxn(ctx, conn, tx)
		}
		if err != nil {
			if ctx.Err() == nil {
				w.failures.Add(1)
			}
			conn.Close(context.Background())
			conn = nil
			_ = retry.Sleep(ctx, 100*time.Millisecond)
			continue
		}
		w.commits.Add(1)
		_ = retry.Sleep(ctx, time.Duration(5+r.IntN(30))*time.Millisecond)
	}
}

func execTxn(ctx context.Context, conn *pgx.Conn, t txn) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, s := range t.stmts {
		if _, err := tx.Exec(ctx, s.sql, s.args...); err != nil {
			return fmt.Errorf("%s: %w", s.sql, err)
		}
	}
	if t.rollback {
		return tx.Rollback(ctx)
	}
	return tx.Commit(ctx)
}

// added reports whether accounts has addedColumn yet.
func (w *workload) added() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.addedAt.IsZero()
}

// addColumn runs ADD COLUMN once the run is addColumnAt along.
func (w *workload) addColumn(ctx context.Context, conn *pgx.Conn) error {
	if w.added() || time.Since(w.s.began) < w.addColumnAt {
		return nil
	}
	if _, err := conn.Exec(ctx, `ALTER TABLE accounts ADD COLUMN `+addedColumn+` text`); err != nil {
		return err
	}
	w.mu.Lock()
	w.addedAt = time.Now()
	w.mu.Unlock()
	w.s.log.event("workload", "ALTER TABLE accounts ADD COLUMN %s text", addedColumn)
	return nil
}

// bigSchedule starts a large transaction every bigEvery, alternating
// between the streams' tables.
func (w *workload) bigSchedule(ctx context.Context) {
	every := max(w.s.opt.duration/8, 30*time.Second)
	first := min(every, w.s.opt.duration/4)
	for wait := first; retry.Sleep(ctx, wait) == nil; wait = every {
		w.startBig(ctx, "scheduled")
	}
}

// startBig runs one large transaction in the background: several MB, far
// past the streams' memory budget, so it spills. Each replaces the rows
// the previous one of its table inserted, so spilled deletes go through too.
// startBig starts the next large transaction and returns the table it
// writes (bigTable).
func (w *workload) startBig(ctx context.Context, why string) string {
	k := w.nextBig.Add(1)
	w.bigWG.Go(func() {
		r := rand.New(rand.NewPCG(uint64(w.s.opt.seed), uint64(1000+k)))
		size := 2 << 20
		if w.s.opt.duration >= longRun {
			size = (3 + r.IntN(3)) << 20
		}
		t, what := bigTxn(k, size)
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		err := w.s.withConn(ctx, func(c *pgx.Conn) error { return execTxn(ctx, c, t) })
		if err != nil {
			w.bigFailed.Add(1)
			w.s.log.event("workload", "large transaction %d (%s, %s) failed: %v", k, what, why, err)
			return
		}
		w.bigs.Add(1)
		w.s.log.event("workload", "large transaction %d committed: %s, %s", k, what, why)
	})
	return bigTable(k)
}

// bigTable is the table large transaction k writes, as bigTxn chooses.
func bigTable(k int64) string {
	if k%2 == 1 {
		return "public.events"
	}
	return "public.docs"
}

// bigTxn is large transaction k of about size bytes of records: on events
// when k is odd, on docs when even; ids from a range of its own.
func bigTxn(k int64, size int) (txn, string) {
	base := int64(1_000_000_000) + k*1_000_000
	if k%2 == 1 {
		n := int64(size / 1100)
		return txn{stmts: []stmt{
			{`DELETE FROM events WHERE id >= $1 AND id < $2`, []any{base - 2_000_000, base - 1_000_000}},
			{`INSERT INTO events (id, kind, payload, amount, at, ok) SELECT g, 'bulk',
				jsonb_build_object('g', g, 'pad', repeat(md5(g::text), 16)), (g % 100000) * 0.125,
				timestamptz '2020-01-01 00:00:00+00' + g * interval '1 microsecond', g % 2 = 0
				FROM generate_series($1::int8, $2::int8) g`, []any{base, base + n - 1}},
		}}, fmt.Sprintf("%d events", n)
	}
	n := int64(size / 2400)
	return txn{stmts: []stmt{
		{`DELETE FROM docs WHERE id >= $1 AND id < $2`, []any{base - 2_000_000, base - 1_000_000}},
		{`INSERT INTO docs (id, title, body, rev) SELECT g, 'bulk ' || g, repeat(md5(g::text), 64), 0
			FROM generate_series($1::int8, $2::int8) g`, []any{base, base + n - 1}},
	}}, fmt.Sprintf("%d docs", n)
}

// finalTxn writes one row to a table of each stream after the writers
// stopped and returns the WAL position after its commit: once both slots
// are confirmed past it, Kinesis holds every change (docs/delivery.md#confirmation).
func (w *workload) finalTxn(ctx context.Context) (string, error) {
	var lsn string
	err := w.s.withConn(ctx, func(c *pgx.Conn) error {
		err := execTxn(ctx, c, txn{stmts: []stmt{
			{`INSERT INTO scratch (id, v, n) VALUES (-1, 'final', 0) ON CONFLICT (id) DO UPDATE SET n = scratch.n + 1`, nil},
			{`INSERT INTO accounts (id, owner) VALUES (-1, 'final') ON CONFLICT (id) DO UPDATE SET owner = 'final again'`, nil},
		}})
		if err != nil {
			return err
		}
		return c.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn)
	})
	if errors.Is(err, context.DeadlineExceeded) {
		return "", fmt.Errorf("the final transaction: PostgreSQL unreachable: %w", err)
	}
	return lsn, err
}
