package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// sourceRows reads table's rows by id, each column as the text its record
// value must equal (sourceExpr).
func sourceRows(ctx context.Context, c *pgx.Conn, t table) (map[string][]*string, error) {
	exprs := make([]string, len(t.cols))
	for i, col := range t.cols {
		exprs[i] = sourceExpr(col)
	}
	rows, err := c.Query(ctx, fmt.Sprintf(`SELECT id::text, %s FROM public.%s`, strings.Join(exprs, ", "), t.name))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]*string{}
	for rows.Next() {
		var id string
		vals := make([]*string, len(t.cols))
		dst := []any{&id}
		for i := range vals {
			dst = append(dst, &vals[i])
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, err
		}
		out[id] = vals
	}
	return out, rows.Err()
}

// comparison is how the rebuilt tables differ from the source.
type comparison struct {
	rows    int // source rows compared
	lost    int // rows missing, extra, or with a value that differs
	samples []string
}

func (c *comparison) lose(format string, args ...any) {
	c.lost++
	if len(c.samples) < 20 {
		c.samples = append(c.samples, fmt.Sprintf(format, args...))
	}
}

// compareTable compares a source table with its rebuilt rows. A row whose
// last record predates ADD COLUMN may lack the added column, which is then
// NULL.
func (c *comparison) compareTable(t table, src map[string][]*string, rebuilt map[string]*rowState, addedAt time.Time) {
	ids := make([]string, 0, len(src))
	for id := range src {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		c.rows++
		got, ok := rebuilt[id]
		if !ok {
			c.lose("%s id %s: in the source, not in Kinesis", t.name, id)
			continue
		}
		if d := rowDiff(t, src[id], got, addedAt); d != "" {
			c.lose("%s id %s: %s", t.name, id, d)
		}
	}
	for id := range rebuilt {
		if _, ok := src[id]; !ok {
			c.lose("%s id %s: in Kinesis, not in the source (a delete lost?)", t.name, id)
		}
	}
}

// rowDiff describes how a rebuilt row differs from the source's, or "".
func rowDiff(t table, want []*string, got *rowState, addedAt time.Time) string {
	var diffs []string
	known := map[string]bool{}
	for i, col := range t.cols {
		known[col.name] = true
		raw, ok := got.after[col.name]
		var v *string
		switch {
		case !ok && col.name == addedColumn && (addedAt.IsZero() || got.tsNs < addedAt.UnixNano()):
			// Written before the column existed: NULL.
		case !ok:
			diffs = append(diffs, col.name+" missing from the record")
			continue
		default:
			var err error
			if v, err = valueText(raw, col.typ); err != nil {
				diffs = append(diffs, fmt.Sprintf("%s: %v", col.name, err))
				continue
			}
		}
		if got, src := orNull(v), orNull(want[i]); got != src {
			diffs = append(diffs, fmt.Sprintf("%s: Kinesis %s, source %s", col.name, brief(got), brief(src)))
		}
	}
	for name := range got.after {
		if !known[name] {
			diffs = append(diffs, "unknown column "+name)
		}
	}
	return strings.Join(diffs, "; ")
}

// valueText reads a record value as the text the source query gives for
// its type (docs/records.md#values); nil for JSON null.
func valueText(raw json.RawMessage, typ colType) (*string, error) {
	if bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var s string
	switch typ {
	case tInt8, tTimestamptz:
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var n any
		if err := dec.Decode(&n); err != nil {
			return nil, err
		}
		num, ok := n.(json.Number)
		if _, err := num.Int64(); !ok || err != nil {
			return nil, fmt.Errorf("%s is not an integer JSON number", raw)
		}
		s = num.String()
	case tBool:
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, fmt.Errorf("%s is not a JSON boolean", raw)
		}
		s = fmt.Sprint(b)
	default:
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("%.60s is not a JSON string", raw)
		}
	}
	return &s, nil
}

// null stands for SQL NULL among the texts compared: PostgreSQL's text
// cannot hold a NUL character.
const null = "\x00NULL"

func orNull(s *string) string {
	if s == nil {
		return null
	}
	return *s
}

// brief quotes a compared text for a message, cut to 80 bytes.
func brief(s string) string {
	switch {
	case s == null:
		return "NULL"
	case len(s) > 80:
		s = s[:80] + "…"
	}
	return strconv.Quote(s)
}
