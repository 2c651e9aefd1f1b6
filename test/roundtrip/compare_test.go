package roundtrip

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// checksum is one table's row count and md5 of its rows' compared
// expressions in key order.
type checksum struct {
	rows int64
	md5  string
}

func checksumSQL(t tableSpec) string {
	return fmt.Sprintf(`SELECT count(*), coalesce(md5(string_agg(ROW(%s)::text, '|' ORDER BY %s)), '') FROM %s`,
		strings.Join(t.cols, ", "), strings.Join(t.pk, ", "), t.name)
}

// checksums reads every table's checksum.
func checksums(ctx context.Context, c *pgx.Conn) (map[string]checksum, error) {
	out := map[string]checksum{}
	for _, t := range tables {
		var s checksum
		if err := c.QueryRow(ctx, checksumSQL(t)).Scan(&s.rows, &s.md5); err != nil {
			return nil, fmt.Errorf("checksum %s: %w", t.name, err)
		}
		out[t.name] = s
	}
	return out, nil
}

// tableRows reads a table's compared expressions as text, by key text.
func tableRows(ctx context.Context, c *pgx.Conn, t tableSpec) (map[string][]*string, error) {
	exprs := make([]string, len(t.cols))
	for i, e := range t.cols {
		exprs[i] = "(" + e + ")::text"
	}
	rows, err := c.Query(ctx, fmt.Sprintf(`SELECT ROW(%s)::text, %s FROM %s`,
		strings.Join(t.pk, ", "), strings.Join(exprs, ", "), t.name))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]*string{}
	for rows.Next() {
		vals := make([]*string, len(t.cols))
		dst := []any{new(string)}
		for i := range vals {
			dst = append(dst, &vals[i])
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, err
		}
		out[*dst[0].(*string)] = vals
	}
	return out, rows.Err()
}

// describeDiff lists, for tables whose checksums differ, up to a few rows
// that are missing, extra or different, with the differing columns.
func describeDiff(ctx context.Context, src, replica *pgx.Conn) string {
	var b strings.Builder
	for _, t := range tables {
		want, err := tableRows(ctx, src, t)
		if err != nil {
			fmt.Fprintf(&b, "%s: read source: %v\n", t.name, err)
			continue
		}
		got, err := tableRows(ctx, replica, t)
		if err != nil {
			fmt.Fprintf(&b, "%s: read replica: %v\n", t.name, err)
			continue
		}
		shown := 0
		report := func(format string, args ...any) {
			if shown < 8 {
				fmt.Fprintf(&b, "%s: "+format+"\n", append([]any{t.name}, args...)...)
			}
			shown++
		}
		for k, w := range want {
			g, ok := got[k]
			if !ok {
				report("row %s missing from the replica", k)
				continue
			}
			for i := range w {
				if !eqText(w[i], g[i]) {
					report("row %s column %s: source %s, replica %s", k, t.cols[i], showText(w[i]), showText(g[i]))
				}
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				report("row %s is in the replica but not in the source", k)
			}
		}
		if shown > 8 {
			fmt.Fprintf(&b, "%s: … %d differences in all\n", t.name, shown)
		}
	}
	return b.String()
}

func eqText(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func showText(s *string) string {
	if s == nil {
		return "NULL"
	}
	if len(*s) > 300 {
		return fmt.Sprintf("%q… (%d bytes)", (*s)[:300], len(*s))
	}
	return fmt.Sprintf("%q", *s)
}
