package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/jackc/pgx/v5"
)

// workload is the shape of a drain's backlog: Changes row changes in
// transactions of TxnRows, taking turns on Tables tables of rows of
// RowBytes (an 8-byte id and a text payload), Updates and Deletes of them
// updates and deletes, the rest inserts.
type workload struct {
	Changes  int64   `json:"changes"`
	TxnRows  int     `json:"txn_rows"`
	RowBytes int     `json:"row_bytes"`
	Tables   int     `json:"tables"`
	Updates  float64 `json:"updates"`
	Deletes  float64 `json:"deletes"`
}

func (w workload) check() error {
	switch {
	case w.TxnRows < 1:
		return errors.New("-txn: want at least 1 change per transaction")
	case w.RowBytes < 9:
		return errors.New("-row: want at least 9 bytes (an 8-byte id and a payload)")
	case w.Tables < 1:
		return errors.New("-tables: want at least 1")
	case w.Updates < 0 || w.Deletes < 0 || w.Updates+w.Deletes > 1:
		return errors.New("-updates and -deletes: want fractions that add up to at most 1")
	}
	return nil
}

// describe is the shape in words, for the report.
func (w workload) describe() string {
	ins := 1 - w.Updates - w.Deletes
	return fmt.Sprintf("%d-change txns, %d-byte rows, %d table(s), %.0f%% inserts %.0f%% updates %.0f%% deletes",
		w.TxnRows, w.RowBytes, w.Tables, 100*ins, 100*w.Updates, 100*w.Deletes)
}

// txnPlan is one transaction of a workload: on table Table, Ins inserts,
// then Upd updates and Del deletes of rows the seed put there.
type txnPlan struct{ Table, Ins, Upd, Del int }

// plan splits the workload into transactions; the last may be smaller.
func (w workload) plan() []txnPlan {
	var out []txnPlan
	for left, i := w.Changes, 0; left > 0; i++ {
		n := int(min(left, int64(w.TxnRows)))
		upd := int(math.Round(float64(n) * w.Updates))
		del := min(int(math.Round(float64(n)*w.Deletes)), n-upd)
		out = append(out, txnPlan{Table: i % w.Tables, Ins: n - upd - del, Upd: upd, Del: del})
		left -= int64(n)
	}
	return out
}

// cursor walks one table's ids: rows 1..upd are updated in order, rows
// upd+1..upd+del deleted in order (the seed inserts both ranges before the
// slots exist), and new rows are inserted after them.
type cursor struct{ nextUpd, nextDel, nextIns int64 }

// seeds counts, per table, the rows the plan updates and deletes, and
// returns the cursors that start past them.
func seeds(plans []txnPlan, tables int) (upd, del []int64, cur []cursor) {
	upd, del, cur = make([]int64, tables), make([]int64, tables), make([]cursor, tables)
	for _, p := range plans {
		upd[p.Table] += int64(p.Upd)
		del[p.Table] += int64(p.Del)
	}
	for t := range cur {
		cur[t] = cursor{nextUpd: 1, nextDel: upd[t] + 1, nextIns: upd[t] + del[t] + 1}
	}
	return upd, del, cur
}

// payload is a SQL expression of width characters derived from the
// integer expression seed: md5 hex, so the rows do not compress away.
func payload(seed string, width int) string {
	return fmt.Sprintf("left(repeat(md5((%s)::text), %d), %d)", seed, width/32+1, width)
}

// txnSQL is one transaction of the plan, advancing c.
func txnSQL(table string, p txnPlan, c *cursor, width int) string {
	var b strings.Builder
	b.WriteString("BEGIN;")
	if p.Ins > 0 {
		fmt.Fprintf(&b, "INSERT INTO %s SELECT g, %s FROM generate_series(%d, %d) g;", table, payload("g", width), c.nextIns, c.nextIns+int64(p.Ins)-1)
		c.nextIns += int64(p.Ins)
	}
	if p.Upd > 0 {
		fmt.Fprintf(&b, "UPDATE %s SET payload = %s WHERE id BETWEEN %d AND %d;", table, payload("-id", width), c.nextUpd, c.nextUpd+int64(p.Upd)-1)
		c.nextUpd += int64(p.Upd)
	}
	if p.Del > 0 {
		fmt.Fprintf(&b, "DELETE FROM %s WHERE id BETWEEN %d AND %d;", table, c.nextDel, c.nextDel+int64(p.Del)-1)
		c.nextDel += int64(p.Del)
	}
	b.WriteString("COMMIT;")
	return b.String()
}

// createTables makes the workload's tables, empty but for the rows its
// updates and deletes will need, under REPLICA IDENTITY FULL as cdcd
// wants for a text column (docs/records.md#keys). Call it before the slots
// exist, so that the seed is not part of the drain.
func createTables(ctx context.Context, db *pgx.Conn, tables []string, plans []txnPlan, width int) ([]cursor, error) {
	upd, del, cur := seeds(plans, len(tables))
	for i, t := range tables {
		sql := fmt.Sprintf("CREATE TABLE %s (id bigint PRIMARY KEY, payload text); ALTER TABLE %[1]s REPLICA IDENTITY FULL;", t)
		if n := upd[i] + del[i]; n > 0 {
			sql += fmt.Sprintf("INSERT INTO %s SELECT g, %s FROM generate_series(1, %d) g;", t, payload("g", width-8), n)
		}
		if _, err := db.Exec(ctx, sql); err != nil {
			return nil, fmt.Errorf("create %s: %w", t, err)
		}
	}
	return cur, nil
}

// txnsPerCall is how many transactions go to the server in one round trip.
const txnsPerCall = 20

// generate runs the plan, a few transactions a round trip (the simple
// protocol takes several statements at once).
func generate(ctx context.Context, db *pgx.Conn, tables []string, plans []txnPlan, cur []cursor, width int) error {
	var b strings.Builder
	for i, p := range plans {
		b.WriteString(txnSQL(tables[p.Table], p, &cur[p.Table], width-8))
		if (i+1)%txnsPerCall != 0 && i != len(plans)-1 {
			continue
		}
		if _, err := db.Exec(ctx, b.String()); err != nil {
			return fmt.Errorf("workload: %w", err)
		}
		b.Reset()
	}
	return nil
}
