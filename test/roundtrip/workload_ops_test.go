package roundtrip

// The operations of the workload, one group per table.

import (
	"context"
	"fmt"
	"math/rand"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// --- public.typed ---

func (w *workload) insertTyped() op {
	id := w.nextTyped
	w.nextTyped++
	return func(ctx context.Context, tx pgx.Tx) error { return w.insertTypedID(ctx, tx, id) }
}

func (w *workload) insertTypedID(ctx context.Context, tx pgx.Tx, id int64) error {
	w.counts["typed:insert"]++
	names := []string{"id"}
	vals := []string{"$1"}
	args := []any{id}
	for _, c := range typedColumns {
		args = append(args, c.gen(w.r))
		names = append(names, c.name)
		vals = append(vals, fmt.Sprintf("$%d::text::%s", len(args), c.typ))
	}
	sql := fmt.Sprintf("INSERT INTO public.typed (%s) VALUES (%s)", strings.Join(names, ", "), strings.Join(vals, ", "))
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("insert typed %d (%s): %w", id, describeArgs(args), err)
	}
	return nil
}

// updateTyped sets a few random columns of a random row, leaving the rest
// (TOASTed text among them) as they are.
func (w *workload) updateTyped() op {
	return func(ctx context.Context, tx pgx.Tx) error {
		id, ok, err := w.pickID(ctx, tx, "SELECT id FROM public.typed ORDER BY id")
		if err != nil || !ok {
			return err
		}
		w.counts["typed:update"]++
		n := 1 + w.r.Intn(4)
		var sets []string
		args := []any{id}
		for _, i := range w.r.Perm(len(typedColumns))[:n] {
			c := typedColumns[i]
			args = append(args, c.gen(w.r))
			sets = append(sets, fmt.Sprintf("%s = $%d::text::%s", c.name, len(args), c.typ))
		}
		sql := "UPDATE public.typed SET " + strings.Join(sets, ", ") + " WHERE id = $1"
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return fmt.Errorf("%s (%s): %w", sql, describeArgs(args), err)
		}
		return nil
	}
}

func (w *workload) deleteTyped() op {
	return func(ctx context.Context, tx pgx.Tx) error {
		id, ok, err := w.pickID(ctx, tx, "SELECT id FROM public.typed ORDER BY id")
		if err != nil || !ok {
			return err
		}
		w.counts["typed:delete"]++
		return sqlOp("DELETE FROM public.typed WHERE id = $1", id)(ctx, tx)
	}
}

// pkTyped moves a row to a new key, sometimes changing another column too.
func (w *workload) pkTyped() op {
	return func(ctx context.Context, tx pgx.Tx) error {
		id, ok, err := w.pickID(ctx, tx, "SELECT id FROM public.typed ORDER BY id")
		if err != nil || !ok {
			return err
		}
		w.counts["typed:pk"]++
		to := w.nextTyped
		w.nextTyped++
		if w.r.Intn(2) == 0 {
			return sqlOp("UPDATE public.typed SET id = $1 WHERE id = $2", to, id)(ctx, tx)
		}
		return sqlOp("UPDATE public.typed SET id = $1, c_int4 = $3 WHERE id = $2", to, id, w.r.Int31())(ctx, tx)
	}
}

// bulkTyped changes many rows with one statement.
func (w *workload) bulkTyped() op {
	k := w.r.Intn(5)
	return func(ctx context.Context, tx pgx.Tx) error {
		w.counts["typed:bulk"]++
		if w.r.Intn(4) == 0 {
			return sqlOp("DELETE FROM public.typed WHERE id % 11 = $1", k)(ctx, tx)
		}
		return sqlOp("UPDATE public.typed SET c_int8 = coalesce(c_int8 / 2, 0) + 1, c_bool = NOT c_bool WHERE id % 5 = $1", k)(ctx, tx)
	}
}

// --- rt.accounts ---

// tenants are text keys; one holds the marker of the log scan, which
// partition keys are derived from.
var tenants = []string{"acme", "Zürich", "東京", "🚀 launch", "o'brien", `a"b\c`, "", " padded ", "NULL", testenv.MarkerText}

func (w *workload) insertAccount() op {
	tenant, n := pick(w.r, tenants), w.nextAcct
	w.nextAcct++
	label, balance, opened := text(w.r, 60), genNumericScaled(w.r), genTimestamptz(w.r)
	return func(ctx context.Context, tx pgx.Tx) error {
		w.counts["accounts:insert"]++
		return sqlOp("INSERT INTO rt.accounts VALUES ($1, $2, $3, $4::text::numeric / 1e10, $5::text::timestamptz)",
			tenant, n, label, balance, opened)(ctx, tx)
	}
}

type acctKey struct {
	Tenant string
	N      int32
}

func (w *workload) pickAccount(ctx context.Context, tx pgx.Tx) (acctKey, bool, error) {
	rows, err := tx.Query(ctx, "SELECT tenant, n FROM rt.accounts ORDER BY tenant, n")
	if err != nil {
		return acctKey{}, false, err
	}
	ks, err := pgx.CollectRows(rows, pgx.RowToStructByPos[acctKey])
	if err != nil || len(ks) == 0 {
		return acctKey{}, false, err
	}
	return ks[w.r.Intn(len(ks))], true, nil
}

func (w *workload) updateAccount() op {
	return func(ctx context.Context, tx pgx.Tx) error {
		k, ok, err := w.pickAccount(ctx, tx)
		if err != nil || !ok {
			return err
		}
		w.counts["accounts:update"]++
		return sqlOp("UPDATE rt.accounts SET balance = balance + $3, label = $4 WHERE tenant = $1 AND n = $2",
			k.Tenant, k.N, w.r.Intn(1000)-500, text(w.r, 60))(ctx, tx)
	}
}

// pkAccount changes one or both parts of the composite key.
func (w *workload) pkAccount() op {
	return func(ctx context.Context, tx pgx.Tx) error {
		k, ok, err := w.pickAccount(ctx, tx)
		if err != nil || !ok {
			return err
		}
		w.counts["accounts:pk"]++
		n := w.nextAcct
		w.nextAcct++
		switch w.r.Intn(3) {
		case 0:
			return sqlOp("UPDATE rt.accounts SET tenant = $3 WHERE tenant = $1 AND n = $2 AND NOT EXISTS (SELECT FROM rt.accounts WHERE tenant = $3 AND n = $2)",
				k.Tenant, k.N, pick(w.r, tenants))(ctx, tx)
		case 1:
			return sqlOp("UPDATE rt.accounts SET n = $3 WHERE tenant = $1 AND n = $2", k.Tenant, k.N, n)(ctx, tx)
		}
		return sqlOp("UPDATE rt.accounts SET tenant = $3, n = $4 WHERE tenant = $1 AND n = $2", k.Tenant, k.N, pick(w.r, tenants), n)(ctx, tx)
	}
}

func (w *workload) deleteAccount() op {
	return func(ctx context.Context, tx pgx.Tx) error {
		k, ok, err := w.pickAccount(ctx, tx)
		if err != nil || !ok {
			return err
		}
		w.counts["accounts:delete"]++
		return sqlOp("DELETE FROM rt.accounts WHERE tenant = $1 AND n = $2", k.Tenant, k.N)(ctx, tx)
	}
}

// --- rt.events ---

func (w *workload) insertEvent() op {
	id, at, payload, tags := *genUUID(w.r), *genTimestamptz(w.r), genJSON(w.r), genArray(func(r *rand.Rand) *string { return ptr(text(r, 8)) }, ",")(w.r)
	return func(ctx context.Context, tx pgx.Tx) error {
		w.counts["events:insert"]++
		return sqlOp("INSERT INTO rt.events VALUES ($1::text::uuid, $2::text::timestamptz, $3::text::jsonb, $4::text::text[]) ON CONFLICT (id) DO NOTHING",
			id, at, payload, tags)(ctx, tx)
	}
}

func (w *workload) pickEvent(ctx context.Context, tx pgx.Tx) (string, bool, error) {
	ids, err := keys[string](ctx, tx, "SELECT id::text FROM rt.events ORDER BY id")
	if err != nil || len(ids) == 0 {
		return "", false, err
	}
	return ids[w.r.Intn(len(ids))], true, nil
}

func (w *workload) updateEvent() op {
	return func(ctx context.Context, tx pgx.Tx) error {
		id, ok, err := w.pickEvent(ctx, tx)
		if err != nil || !ok {
			return err
		}
		w.counts["events:update"]++
		return sqlOp("UPDATE rt.events SET payload = $2::text::jsonb, tags = array_append(tags, $3) WHERE id = $1::text::uuid",
			id, genJSON(w.r), text(w.r, 6))(ctx, tx)
	}
}

func (w *workload) pkEvent() op {
	return func(ctx context.Context, tx pgx.Tx) error {
		id, ok, err := w.pickEvent(ctx, tx)
		if err != nil || !ok {
			return err
		}
		w.counts["events:pk"]++
		return sqlOp("UPDATE rt.events SET id = $2::text::uuid WHERE id = $1::text::uuid AND NOT EXISTS (SELECT FROM rt.events WHERE id = $2::text::uuid)",
			id, *genUUID(w.r))(ctx, tx)
	}
}

func (w *workload) deleteEvent() op {
	return func(ctx context.Context, tx pgx.Tx) error {
		id, ok, err := w.pickEvent(ctx, tx)
		if err != nil || !ok {
			return err
		}
		w.counts["events:delete"]++
		return sqlOp("DELETE FROM rt.events WHERE id = $1::text::uuid", id)(ctx, tx)
	}
}

// --- public.docs ---

// maxLarge bounds the operations that emit a row with a large body (about
// 1 MB of records each), and with them the run's time.
const maxLarge = 12

func (w *workload) docOp() op {
	large := w.large < maxLarge
	switch x := w.r.Intn(100); {
	case x < 45 && large:
		return w.docTitle(true)
	case x < 55:
		return w.docTitle(false)
	case x < 63 && large:
		return w.insertDoc(bigBody)
	case x < 70 && large:
		return w.docHuge()
	case x < 80 && large:
		return w.docPK()
	case x < 88:
		return w.docSmall()
	case x < 94:
		return w.insertDoc(0)
	}
	return w.docDelete()
}

// insertDoc inserts a document with a body of size bytes (small if 0).
func (w *workload) insertDoc(size int) op {
	id := w.nextDoc
	w.nextDoc++
	body := text(w.r, 50)
	if size > 0 {
		body = bigText(w.r, size)
		w.large++
	}
	title := text(w.r, 30)
	return func(ctx context.Context, tx pgx.Tx) error {
		w.counts["docs:insert"]++
		return sqlOp("INSERT INTO public.docs VALUES ($1, $2, 1, $3)", id, title, body)(ctx, tx)
	}
}

// Which documents pickDoc chooses from.
const (
	anyDoc = iota
	bigDoc
	smallDoc
)

func (w *workload) pickDoc(ctx context.Context, tx pgx.Tx, which int) (int32, bool, error) {
	q := map[int]string{
		anyDoc:   "SELECT id FROM public.docs ORDER BY id",
		bigDoc:   "SELECT id FROM public.docs WHERE octet_length(body) > 100000 ORDER BY id",
		smallDoc: "SELECT id FROM public.docs WHERE coalesce(octet_length(body), 0) <= 100000 ORDER BY id",
	}[which]
	ids, err := keys[int32](ctx, tx, q)
	if err != nil || len(ids) == 0 {
		return 0, false, err
	}
	return ids[w.r.Intn(len(ids))], true, nil
}

// docTitle updates a document on other columns only. A large body is
// TOASTed and unchanged, absent from the WAL's new row, and must still be
// in the record (docs/records.md#values).
func (w *workload) docTitle(large bool) op {
	title := text(w.r, 30)
	which := smallDoc
	if large {
		which = bigDoc
		w.large++
	}
	return func(ctx context.Context, tx pgx.Tx) error {
		id, ok, err := w.pickDoc(ctx, tx, which)
		if err != nil || !ok {
			return err
		}
		w.counts["docs:title"]++
		return sqlOp("UPDATE public.docs SET title = $2, rev = rev + 1 WHERE id = $1", id, title)(ctx, tx)
	}
}

// docHuge gives a document a body beyond Kinesis' record limit.
func (w *workload) docHuge() op {
	body := bigText(w.r, hugeBody)
	w.large++
	return func(ctx context.Context, tx pgx.Tx) error {
		id, ok, err := w.pickDoc(ctx, tx, anyDoc)
		if err != nil || !ok {
			return err
		}
		w.counts["docs:huge"]++
		return sqlOp("UPDATE public.docs SET body = $2, rev = rev + 1 WHERE id = $1", id, body)(ctx, tx)
	}
}

// docPK moves a large document to a new key: a delete and an insert whose
// row carries the unchanged TOASTed body.
func (w *workload) docPK() op {
	to := w.nextDoc
	w.nextDoc++
	w.large++
	return func(ctx context.Context, tx pgx.Tx) error {
		id, ok, err := w.pickDoc(ctx, tx, bigDoc)
		if err != nil || !ok {
			return err
		}
		w.counts["docs:pk"]++
		return sqlOp("UPDATE public.docs SET id = $2 WHERE id = $1", id, to)(ctx, tx)
	}
}

func (w *workload) docSmall() op {
	body := text(w.r, 40)
	return func(ctx context.Context, tx pgx.Tx) error {
		id, ok, err := w.pickDoc(ctx, tx, anyDoc)
		if err != nil || !ok {
			return err
		}
		w.counts["docs:small"]++
		return sqlOp("UPDATE public.docs SET body = $2 WHERE id = $1", id, body)(ctx, tx)
	}
}

func (w *workload) docDelete() op {
	return func(ctx context.Context, tx pgx.Tx) error {
		id, ok, err := w.pickDoc(ctx, tx, anyDoc)
		if err != nil || !ok {
			return err
		}
		w.counts["docs:delete"]++
		return sqlOp("DELETE FROM public.docs WHERE id = $1", id)(ctx, tx)
	}
}
