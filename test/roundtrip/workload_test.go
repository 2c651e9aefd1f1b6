package roundtrip

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Sizes of the large bodies of public.docs. bigBody fits one Kinesis record
// (1 MiB) as JSON only just, or not, depending on escapes; hugeBody never
// does, so its records must arrive chunked.
const (
	bigBody  = 1_000_000
	hugeBody = 1_500_000
)

// workload drives the source. Every choice comes from r, and every query
// it reads keys from is ordered, so a seed replays the same transactions.
type workload struct {
	r    *rand.Rand
	seed int64

	nextTyped int64
	nextAcct  int32
	nextDoc   int32
	large     int // operations so far that emit a row with a large body
	counts    map[string]int
	// beforeMarker is a WAL position before the marker transaction's
	// commit: a slot confirmed past it has every change in Kinesis
	// (docs/delivery.md).
	beforeMarker string
}

func newWorkload(seed int64) *workload {
	return &workload{r: rand.New(rand.NewSource(seed)), seed: seed, nextTyped: 1, nextAcct: 1, nextDoc: 1,
		counts: map[string]int{}}
}

// op is one statement (or a few) inside a transaction.
type op func(ctx context.Context, tx pgx.Tx) error

// run executes txns transactions of mixed kinds and then the marker
// transaction. The session's time zone is not UTC, so timestamptz literals
// without an offset exercise it.
func (w *workload) run(ctx context.Context, conn *pgx.Conn, txns int) error {
	if _, err := conn.Exec(ctx, "SET TimeZone = 'America/St_Johns'"); err != nil {
		return err
	}
	// A start that the random part builds on: rows in every table, two
	// 1 MB documents and one 1.5 MB document.
	setup := []op{w.insertDoc(bigBody), w.insertDoc(bigBody), w.insertDoc(hugeBody)}
	for range 12 {
		setup = append(setup, w.insertTyped())
	}
	for range 6 {
		setup = append(setup, w.insertAccount(), w.insertEvent())
	}
	if err := w.commit(ctx, conn, "setup", setup...); err != nil {
		return err
	}
	for i := range txns {
		var err error
		switch i {
		// Features that must appear whatever the seed.
		case 3:
			err = w.commit(ctx, conn, "toast-update", w.docTitle(true))
		case 7:
			err = w.commit(ctx, conn, "pk-change-big", w.docPK())
		case 11:
			err = w.commit(ctx, conn, "huge-update", w.docHuge())
		default:
			err = w.randomTxn(ctx, conn)
		}
		if err != nil {
			return fmt.Errorf("transaction %d: %w", i, err)
		}
	}
	w.counts["marker"]++
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&w.beforeMarker); err != nil {
		return err
	}
	_, err := conn.Exec(ctx, "INSERT INTO public.marker VALUES (1, $1, $2)", w.seed, txns)
	return err
}

func (w *workload) randomTxn(ctx context.Context, conn *pgx.Conn) error {
	r := w.r
	switch x := r.Intn(100); {
	case x < 30:
		return w.commit(ctx, conn, "single", w.randomOp())
	case x < 58:
		return w.commit(ctx, conn, "multi", w.randomOps(2+r.Intn(6))...)
	case x < 70:
		return w.savepointTxn(ctx, conn)
	case x < 78:
		return w.rollbackTxn(ctx, conn)
	case x < 95:
		return w.churnTxn(ctx, conn)
	default:
		return w.commit(ctx, conn, "doc", w.docOp(), w.randomOp())
	}
}

func (w *workload) randomOps(n int) []op {
	ops := make([]op, n)
	for i := range ops {
		ops[i] = w.randomOp()
	}
	return ops
}

// commit runs ops in one transaction and commits it.
func (w *workload) commit(ctx context.Context, conn *pgx.Conn, kind string, ops ...op) error {
	w.counts["txn:"+kind]++
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		return runOps(ctx, tx, ops)
	})
}

func runOps(ctx context.Context, tx pgx.Tx, ops []op) error {
	for _, o := range ops {
		if err := o(ctx, tx); err != nil {
			return err
		}
	}
	return nil
}

// savepointTxn does work, a savepoint, more work, ROLLBACK TO the
// savepoint (sometimes twice, nested), and more work, then commits: only
// the work outside the rolled-back parts may reach the stream.
func (w *workload) savepointTxn(ctx context.Context, conn *pgx.Conn) error {
	w.counts["txn:savepoint"]++
	r := w.r
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		steps := [][]op{
			w.randomOps(1 + r.Intn(3)),
			{sqlOp("SAVEPOINT a")},
			w.randomOps(1 + r.Intn(4)),
		}
		if r.Intn(2) == 0 {
			steps = append(steps, []op{sqlOp("SAVEPOINT b")}, w.randomOps(1+r.Intn(2)), []op{sqlOp("RELEASE SAVEPOINT b")})
		}
		steps = append(steps, []op{sqlOp("ROLLBACK TO SAVEPOINT a")}, w.randomOps(r.Intn(3)))
		if r.Intn(3) == 0 {
			steps = append(steps, []op{sqlOp("SAVEPOINT c")}, w.randomOps(1), []op{sqlOp("ROLLBACK TO SAVEPOINT c"), sqlOp("RELEASE SAVEPOINT c")})
		}
		for _, s := range steps {
			if err := runOps(ctx, tx, s); err != nil {
				return err
			}
		}
		return nil
	})
}

// rollbackTxn does work and rolls it all back: nothing may reach the
// stream.
func (w *workload) rollbackTxn(ctx context.Context, conn *pgx.Conn) error {
	w.counts["txn:rollback"]++
	ops := w.randomOps(1 + w.r.Intn(5))
	if w.r.Intn(4) == 0 {
		ops = append(ops, w.docOp())
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	if err := runOps(ctx, tx, ops); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return tx.Rollback(ctx)
}

// churnTxn changes one row several times in one transaction, which
// write-set compaction (docs/records.md#compaction) must fold into at most one record.
func (w *workload) churnTxn(ctx context.Context, conn *pgx.Conn) error {
	switch w.r.Intn(4) {
	case 0: // inserted then deleted: no record at all
		id := w.nextTyped
		return w.commit(ctx, conn, "insert-delete", w.insertTyped(), sqlOp("DELETE FROM public.typed WHERE id = $1", id))
	case 1: // deleted then inserted again: an update
		return w.commit(ctx, conn, "delete-reinsert", func(ctx context.Context, tx pgx.Tx) error {
			id, ok, err := w.pickID(ctx, tx, "SELECT id FROM public.typed ORDER BY id")
			if err != nil || !ok {
				return err
			}
			if _, err := tx.Exec(ctx, "DELETE FROM public.typed WHERE id = $1", id); err != nil {
				return err
			}
			return w.insertTypedID(ctx, tx, id)
		})
	case 2: // updated several times, its key too
		return w.commit(ctx, conn, "update-chain", w.updateTyped(), w.updateTyped(), w.pkTyped(), w.updateTyped())
	default: // a key moved away and another row moved into it
		return w.commit(ctx, conn, "key-swap", func(ctx context.Context, tx pgx.Tx) error {
			ids, err := keys[int64](ctx, tx, "SELECT id FROM public.typed ORDER BY id")
			if err != nil || len(ids) < 2 {
				return err
			}
			a, b := ids[w.r.Intn(len(ids))], ids[w.r.Intn(len(ids))]
			if a == b {
				return nil
			}
			tmp := w.nextTyped
			w.nextTyped++
			for _, q := range [][2]int64{{tmp, a}, {a, b}, {b, tmp}} {
				if _, err := tx.Exec(ctx, "UPDATE public.typed SET id = $1 WHERE id = $2", q[0], q[1]); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

func (w *workload) randomOp() op {
	r := w.r
	switch x := r.Intn(100); {
	case x < 22:
		return w.insertTyped()
	case x < 44:
		return w.updateTyped()
	case x < 50:
		return w.deleteTyped()
	case x < 55:
		return w.pkTyped()
	case x < 58:
		return w.bulkTyped()
	case x < 66:
		return w.insertAccount()
	case x < 74:
		return w.updateAccount()
	case x < 78:
		return w.pkAccount()
	case x < 80:
		return w.deleteAccount()
	case x < 87:
		return w.insertEvent()
	case x < 93:
		return w.updateEvent()
	case x < 96:
		return w.pkEvent()
	default:
		return w.deleteEvent()
	}
}

func sqlOp(sql string, args ...any) op {
	return func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		return nil
	}
}

// keys reads the first column of an ordered query.
func keys[T any](ctx context.Context, tx pgx.Tx, sql string, args ...any) ([]T, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[T])
}

func (w *workload) pickID(ctx context.Context, tx pgx.Tx, sql string) (int64, bool, error) {
	ids, err := keys[int64](ctx, tx, sql)
	if err != nil || len(ids) == 0 {
		return 0, false, err
	}
	return ids[w.r.Intn(len(ids))], true, nil
}

// summary lists the counts of what the workload did.
func (w *workload) summary() string {
	names := make([]string, 0, len(w.counts))
	for k := range w.counts {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = k + "=" + strconv.Itoa(w.counts[k])
	}
	return strings.Join(parts, " ")
}

// describeArgs shows query arguments in an error, long ones cut.
func describeArgs(args []any) string {
	parts := make([]string, len(args))
	for i, a := range args {
		s := fmt.Sprint(a)
		if p, ok := a.(*string); ok {
			s = "NULL"
			if p != nil {
				s = strconv.Quote(*p)
			}
		}
		if len(s) > 80 {
			s = s[:80] + "…"
		}
		parts[i] = fmt.Sprintf("$%d=%s", i+1, s)
	}
	return strings.Join(parts, " ")
}
