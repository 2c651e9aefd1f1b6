package soak

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// hotRows is how many accounts take most updates, so that one row has
// many records in flight at once and ROW ordering has something to keep.
const hotRows = 10

// crossBase numbers the events the rows writer inserts in transactions
// that span both streams.
const crossBase = 500_000_000

// rowsGen makes the transactions on accounts and docs (the ROW stream).
type rowsGen struct {
	w                        *workload
	nextAcct, nextDoc, cross int64
}

func (g *rowsGen) next(ctx context.Context, conn *pgx.Conn, r *rand.Rand) (txn, error) {
	if err := g.w.addColumn(ctx, conn); err != nil {
		return txn{}, err
	}
	x := r.IntN(100)
	switch {
	case x < 85:
		return txn{stmts: []stmt{g.op(r, x)}}, nil
	case x < 90:
		// Spans both streams: each gets its part of one transaction.
		g.cross++
		return txn{stmts: []stmt{g.op(r, 30), eventInsert(r, crossBase+g.cross)}}, nil
	case x < 93:
		return txn{stmts: []stmt{g.op(r, 0)}, rollback: true}, nil
	}
	n := 2 + r.IntN(5)
	t := txn{}
	for range n {
		t.stmts = append(t.stmts, g.op(r, r.IntN(85)))
	}
	return t, nil
}

// op is one statement chosen by x in [0, 85).
func (g *rowsGen) op(r *rand.Rand, x int) stmt {
	switch {
	case x < 20 || g.nextAcct < hotRows:
		g.nextAcct++
		return stmt{`INSERT INTO accounts (id, owner, balance, active, updated, meta) VALUES ($1, $2, $3::numeric, $4, $5, $6::jsonb)`,
			[]any{g.nextAcct, text(r), money(r, 2), r.IntN(2) == 0, timestamp(r), jsonDoc(r)}}
	case x < 42:
		return stmt{`UPDATE accounts SET balance = balance + $1::numeric, updated = $2 WHERE id = $3`,
			[]any{money(r, 2), timestamp(r), g.account(r)}}
	case x < 50:
		if g.w.added() && r.IntN(2) == 0 {
			return stmt{`UPDATE accounts SET ` + addedColumn + ` = $1 WHERE id = $2`, []any{text(r), g.account(r)}}
		}
		return stmt{`UPDATE accounts SET active = NOT active, meta = $1::jsonb WHERE id = $2`, []any{jsonDoc(r), g.account(r)}}
	case x < 54:
		return stmt{`DELETE FROM accounts WHERE id = $1`, []any{1 + r.Int64N(g.nextAcct)}}
	case x < 63:
		g.nextDoc++
		return stmt{`INSERT INTO docs (id, title, body) VALUES ($1, $2, $3)`, []any{g.nextDoc, text(r), toastable(r)}}
	case x < 75 && g.nextDoc > 0:
		// The body is TOASTed and unchanged: only REPLICA IDENTITY FULL
		// puts it in the WAL, and the record must still carry it.
		return stmt{`UPDATE docs SET title = $1, rev = rev + 1 WHERE id = $2`, []any{text(r), 1 + r.Int64N(g.nextDoc)}}
	case x < 81 && g.nextDoc > 0:
		return stmt{`UPDATE docs SET body = $1, rev = rev + 1 WHERE id = $2`, []any{toastable(r), 1 + r.Int64N(g.nextDoc)}}
	case g.nextDoc > 0:
		return stmt{`DELETE FROM docs WHERE id = $1`, []any{1 + r.Int64N(g.nextDoc)}}
	}
	return stmt{`UPDATE accounts SET updated = $1 WHERE id = $2`, []any{timestamp(r), g.account(r)}}
}

// account picks an account: a hot one half the time.
func (g *rowsGen) account(r *rand.Rand) int64 {
	if r.IntN(2) == 0 {
		return 1 + r.Int64N(min(hotRows, g.nextAcct))
	}
	return 1 + r.Int64N(g.nextAcct)
}

// spreadGen makes the transactions on events and scratch (the UNORDERED
// stream), TRUNCATE scratch among them.
type spreadGen struct {
	w                  *workload
	nextEvent, nextScr int64
	lastTruncate       time.Time
}

// truncateEvery is how often scratch is truncated: about three times in
// a smoke run, every 25 s in a long one.
func (g *spreadGen) truncateEvery() time.Duration {
	return min(25*time.Second, g.w.s.opt.duration/3)
}

func (g *spreadGen) next(_ context.Context, _ *pgx.Conn, r *rand.Rand) (txn, error) {
	if time.Since(g.lastTruncate) >= g.truncateEvery() {
		g.lastTruncate = time.Now()
		g.w.truncates.Add(1)
		g.w.s.log.event("workload", "TRUNCATE scratch")
		return txn{stmts: []stmt{{`TRUNCATE scratch`, nil}, g.op(r, 60), g.op(r, 60)}}, nil
	}
	x := r.IntN(100)
	switch {
	case x < 90:
		return txn{stmts: []stmt{g.op(r, x)}}, nil
	case x < 93:
		return txn{stmts: []stmt{g.op(r, 0)}, rollback: true}, nil
	}
	t := txn{}
	for range 2 + r.IntN(5) {
		t.stmts = append(t.stmts, g.op(r, r.IntN(90)))
	}
	return t, nil
}

// op is one statement chosen by x in [0, 90).
func (g *spreadGen) op(r *rand.Rand, x int) stmt {
	switch {
	case x < 35 || g.nextEvent == 0:
		g.nextEvent++
		return eventInsert(r, g.nextEvent)
	case x < 50:
		return stmt{`UPDATE events SET ok = NOT ok, amount = $1::numeric WHERE id = $2`, []any{money(r, 3), 1 + r.Int64N(g.nextEvent)}}
	case x < 56:
		return stmt{`DELETE FROM events WHERE id = $1`, []any{1 + r.Int64N(g.nextEvent)}}
	case x < 75 || g.nextScr == 0:
		g.nextScr++
		return stmt{`INSERT INTO scratch (id, v, n) VALUES ($1, $2, $3)`, []any{g.nextScr, text(r), r.Int64() - r.Int64()}}
	case x < 85:
		return stmt{`UPDATE scratch SET n = n + 1, v = $1 WHERE id = $2`, []any{text(r), 1 + r.Int64N(g.nextScr)}}
	}
	return stmt{`DELETE FROM scratch WHERE id = $1`, []any{1 + r.Int64N(g.nextScr)}}
}

func eventInsert(r *rand.Rand, id int64) stmt {
	return stmt{`INSERT INTO events (id, kind, payload, amount, at, ok) VALUES ($1, $2, $3::jsonb, $4::numeric, $5, $6)`,
		[]any{id, []string{"click", "view", "buy", "refund"}[r.IntN(4)], jsonDoc(r), money(r, 3), timestamp(r), r.IntN(3) > 0}}
}

// texts are awkward strings for text columns: quotes, backslashes, control
// characters, non-ASCII, and the line separators JSON writers escape.
var texts = []string{"plain", `quo"te`, `back\slash`, "tab\tand\nnewline", "Zoë Ångström", "日本語", "🦆",
	"line\u2028sep", "nul-free \x01\x1f", ""}

func text(r *rand.Rand) string {
	return fmt.Sprintf("%s %d", texts[r.IntN(len(texts))], r.IntN(1000))
}

// money is a decimal with scale digits after the point, as text.
func money(r *rand.Rand, scale int) string {
	unit := int64(1)
	for range scale {
		unit *= 10
	}
	v := r.Int64N(2_000_000*unit) - 1_000_000*unit
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%0*d", sign, v/unit, scale, v%unit)
}

// timestamp is a time between 1950 and 2050 to the microsecond, or nil
// (NULL) now and then.
func timestamp(r *rand.Rand) any {
	if r.IntN(10) == 0 {
		return nil
	}
	lo := time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	hi := time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	return time.UnixMicro(lo + r.Int64N(hi-lo)).UTC()
}

// jsonDoc is a small JSON object as text, for a jsonb column.
func jsonDoc(r *rand.Rand) string {
	doc := map[string]any{"n": r.IntN(1000), "s": text(r), "ok": r.IntN(2) == 0, "list": []int{r.IntN(9), r.IntN(9)}}
	if r.IntN(4) == 0 {
		doc["nested"] = map[string]any{"x": r.Float64(), "y": nil}
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

// toastable is 2.5 to 8 kB of hex: past the 2 kB TOAST threshold, and
// pglz cannot compress it enough, so PostgreSQL stores it out of line.
func toastable(r *rand.Rand) string {
	b := make([]byte, 1280+r.IntN(3*1024))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return hex.EncodeToString(b)
}
