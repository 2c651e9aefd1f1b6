package pgapply

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// newReplica returns a connection to a fresh database and an Applier on it.
// Skipped (failed under CI) without test/infra/up.sh's servers.
func newReplica(t *testing.T, schema string) (*pgx.Conn, *Applier) {
	t.Helper()
	env := testenv.Require(t)
	conn := testenv.NewDB(t, env)
	exec(t, conn, schema)
	exec(t, conn, `SET TimeZone = 'UTC'`)
	a, err := New(context.Background(), conn, Config{})
	if err != nil {
		t.Fatal(err)
	}
	return conn, a
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// msg decodes a hand-written record.
func msg(t *testing.T, schema, table, op string, ts int64, before, after string) *record.Message {
	t.Helper()
	if before == "" {
		before = "null"
	}
	if after == "" {
		after = "null"
	}
	data := fmt.Sprintf(`{"type":"full","op":%q,"before":%s,"after":%s,"source":{"version":"1.0","ts_ms":%d,"ts_ns":%d,"txId":"x","schema":%q,"table":%q,"db":"d","cluster":"c"},"ts_ms":0,"ts_ns":0}`,
		op, before, after, ts/1_000_000, ts, schema, table)
	m, err := record.Decode([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func query(t *testing.T, conn *pgx.Conn, sql string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		vals, err := r.Values()
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = fmt.Sprint(v)
		}
		return strings.Join(parts, "|"), err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// goldenCase is one value from the producer's golden files: the type, the
// text output PostgreSQL gave, and the record JSON it encodes to.
type goldenCase struct {
	name, json, text string
	oid              uint32
	typ              string // format_type, filled on the replica
}

func readGolden(t *testing.T) []goldenCase {
	t.Helper()
	texts := map[string]string{}
	readTSV(t, "../testdata/values_input.tsv", func(f []string) {
		var s string
		if len(f) >= 7 && json.Unmarshal([]byte(f[6]), &s) == nil {
			texts[f[0]] = s
		}
	})
	var cases []goldenCase
	seen := map[string]bool{}
	readTSV(t, "../testdata/values.golden", func(f []string) {
		if len(f) != 3 || seen[f[0]] || strings.HasPrefix(f[2], "binary:") {
			return
		}
		oid, err := strconv.ParseUint(f[1], 10, 32)
		text, ok := texts[f[0]]
		// OIDs from 16384 up are the generating server's enums and
		// domains; the replica would not have them.
		if err != nil || !ok || oid >= 16384 {
			return
		}
		seen[f[0]] = true
		cases = append(cases, goldenCase{name: f[0], json: f[2], text: text, oid: uint32(oid)})
	})
	if len(cases) < 50 {
		t.Fatalf("only %d golden values found in ../testdata; the producer's files changed shape", len(cases))
	}
	return cases
}

func readTSV(t *testing.T, path string, fn func([]string)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("golden values unavailable: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := sc.Text(); line != "" && line[0] != '#' {
			fn(strings.Split(line, "\t"))
		}
	}
}

// lossy are golden values docs/records.md#values cannot carry exactly, with
// the text the replica must then hold (nil: NULL), worked out from that
// section's encodings rather than read off the applier: timetz travels as
// microseconds since midnight in UTC, so the replica holds the same instant
// at +00 (wrapped into the day); an interval travels as microseconds with a
// month of 30.4375 days and a day of 24 h, so the replica holds days and a
// clock and no months, or NULL where the microseconds overflow int64
// (178000000 years); an array loses its lower bounds.
var lossy = map[string]*string{
	"timetz":             ptr("07:00:00+00"), // 12:30:00+05:30
	"timetz_west":        ptr("04:00:00+00"), // 20:00:00-08, the next day in UTC
	"timetz_seconds":     ptr("21:59:45+00"), // 01:00:00+03:00:15, the day before in UTC
	"array_timetz":       ptr("{11:00:00+00}"),
	"interval":           ptr("429 days 07:05:06.789"), // 14 months are 426 days 03:00:00
	"interval_mixed":     ptr("-21:57:00"),
	"interval_years":     ptr("730 days 12:00:00"),
	"interval_neg_month": ptr("-30 days -10:30:00"),
	"interval_all_neg":   ptr("-429 days -07:05:06"),
	"interval_overflow":  nil,
	"interval_hours":     ptr("4166 days 16:00:00"), // 100000:00:00, the same span
	"interval_max_time":  ptr("106751991 days 04:00:54.775807"),
	"array_interval":     ptr(`{"1 day 01:00:00","-30 days -10:30:00"}`),
	"array_lower_bound":  ptr("{5,6}"), // [0:1]={5,6}
}

func ptr(s string) *string { return &s }

// TestApplyGoldenValues applies every builtin value of the producer's
// golden table to a replica column of its type and checks that the replica
// holds what the source held, or, for a lossy value, exactly what the
// record format leaves of it.
func TestApplyGoldenValues(t *testing.T) {
	cases := readGolden(t)
	conn, a := newReplica(t, `SELECT 1`)
	ctx := context.Background()
	var cols, after []string
	for i, c := range cases {
		var typ string
		if err := conn.QueryRow(ctx, `SELECT format_type($1, NULL)`, c.oid).Scan(&typ); err != nil {
			t.Fatal(err)
		}
		cases[i].typ = typ
		cols = append(cols, fmt.Sprintf("%s %s", pgx.Identifier{c.name}.Sanitize(), typ))
		q, _ := json.Marshal(c.name)
		after = append(after, string(q)+":"+c.json)
	}
	for name := range lossy {
		if !slices.ContainsFunc(cases, func(c goldenCase) bool { return c.name == name }) {
			t.Errorf("lossy value %s is not in the golden files: its expectation checks nothing", name)
		}
	}
	exec(t, conn, `CREATE TABLE golden (id int PRIMARY KEY, `+strings.Join(cols, ", ")+`)`)
	m := msg(t, "public", "golden", "c", 100, "", `{"id":1,`+strings.Join(after, ",")+`}`)
	if _, err := a.Apply(ctx, m); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			col := pgx.Identifier{c.name}.Sanitize()
			var got, want *string
			err := conn.QueryRow(ctx, `SELECT `+col+`::text, $1::text::`+c.typ+`::text FROM golden`, c.text).Scan(&got, &want)
			if err != nil {
				t.Fatal(err)
			}
			if lossyWant, ok := lossy[c.name]; ok {
				if reflect.DeepEqual(lossyWant, want) {
					t.Fatalf("listed as lossy, but the expected %s is what the source held", deref(lossyWant))
				}
				want = lossyWant
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("replica holds %s, want %s (%s from %s)", deref(got), deref(want), c.typ, c.json)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return strconv.Quote(*s)
}

func TestApplyLastWriterWins(t *testing.T) {
	conn, a := newReplica(t, `CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed Case" (k2 int8, "K 1" text, v text, g int GENERATED ALWAYS AS (k2 * 2) STORED, PRIMARY KEY (k2, "K 1"))`)
	ctx := context.Background()
	row := func(k int, v string) string {
		return fmt.Sprintf(`{"K 1":"a\"b","k2":%d,"v":%q}`, k, v)
	}
	key := func(k int) string { return fmt.Sprintf(`{"k2":%d,"K 1":"a\"b"}`, k) }
	steps := []struct {
		op            string
		ts            int64
		before, after string
		applied       bool
	}{
		{"c", 10, "", row(1, "a"), true},
		{"u", 30, "", row(1, "c"), true},
		{"u", 20, "", row(1, "b"), false}, // older: ignored
		{"u", 30, "", row(1, "c"), false}, // redelivery
		{"r", 5, "", row(2, "snap"), true},
		{"d", 40, key(2), "", true},
		{"c", 35, "", row(2, "late"), false}, // older than the tombstone
		{"zz", 15, "", row(3, "x"), true},    // unknown op: upsert
		{"c", 70, "", row(4, "after truncate"), true},
		{"t", 60, "", "", true},
		{"u", 50, "", row(5, "late, before truncate"), false},
		{"t", 55, "", "", false}, // older truncate
		{"d", 80, key(4), "", true},
		{"c", 90, "", row(4, "back"), true},
	}
	for i, s := range steps {
		applied, err := a.Apply(ctx, msg(t, "Odd Schema", "Mixed Case", s.op, s.ts, s.before, s.after))
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if applied != s.applied {
			t.Errorf("step %d (%s at %d): applied = %v, want %v", i, s.op, s.ts, applied, s.applied)
		}
	}
	got := query(t, conn, `SELECT k2, "K 1", v, g FROM "Odd Schema"."Mixed Case" ORDER BY k2`)
	want := []string{`4|a"b|back|8`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows = %q, want %q", got, want)
	}
	// The truncate cleared older bookkeeping; what is left are the kept
	// and later keys and the truncate itself.
	versions := query(t, conn, `SELECT key, ts_ns FROM cdcd_apply_versions ORDER BY ts_ns`)
	if want := []string{`|60`, `[["K 1","a\"b"],["k2",4]]|90`}; !reflect.DeepEqual(versions, want) {
		t.Errorf("versions = %q", versions)
	}
}

func TestApplyErrors(t *testing.T) {
	_, a := newReplica(t, `CREATE TABLE nokey (a int, b text); CREATE TABLE k (id int PRIMARY KEY)`)
	ctx := context.Background()
	tests := []struct {
		name string
		m    *record.Message
		is   error
		msg  string
	}{
		{"no primary key", msg(t, "public", "nokey", "c", 1, "", `{"a":1,"b":"x"}`), ErrNoPrimaryKey, "no primary key"},
		{"no table", msg(t, "public", "missing", "c", 1, "", `{"a":1}`), ErrNoTable, "public.missing"},
		{"unknown column", msg(t, "public", "k", "c", 1, "", `{"id":1,"extra":2}`), nil, `column "extra"`},
		{"keyless delete", msg(t, "public", "k", "d", 1, "", ""), record.ErrNoRowKey, "names no row"},
		{"bad value", msg(t, "public", "k", "c", 1, "", `{"id":"x98765"}`), nil, "invalid input syntax for type integer … (SQLSTATE 22P02; the value is left out)"},
		{"value out of range", msg(t, "public", "k", "c", 1, "", `{"id":"98765987659876"}`), nil, "SQLSTATE 22003"},
		{"chunked", &record.Message{Type: record.MessageChunked, Op: "u"}, record.ErrNotReassembled, "not a full record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.Apply(ctx, tt.m)
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want %v mentioning %q", err, tt.is, tt.msg)
			}
			if err != nil && strings.Contains(err.Error(), "98765") {
				t.Errorf("the error quotes the value: %v", err)
			}
		})
	}
	// A failed Apply leaves nothing behind.
	if _, err := a.Apply(ctx, msg(t, "public", "k", "c", 1, "", `{"id":1}`)); err != nil {
		t.Fatalf("apply after errors: %v", err)
	}
}

// TestApplyConvergesShuffled: a stream of random transactions, shuffled and
// duplicated as UNORDERED at-least-once delivery may, leaves the replica
// equal to the source's final state and to record.MemStore's.
func TestApplyConvergesShuffled(t *testing.T) {
	conn, a := newReplica(t, `CREATE TABLE t (id int8 PRIMARY KEY, big int8, v text, d date)`)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	var stream []*record.Message
	truth := map[int]string{}
	for tx := range 150 {
		ts := int64(1_700_000_000_000_000_000 + 1000*(tx+1))
		if tx > 0 && rng.IntN(25) == 0 {
			stream = append(stream, msg(t, "public", "t", "t", ts, "", ""))
			clear(truth)
		}
		for _, id := range rng.Perm(8)[:1+rng.IntN(3)] {
			if _, ok := truth[id]; ok && rng.IntN(3) == 0 {
				stream = append(stream, msg(t, "public", "t", "d", ts, fmt.Sprintf(`{"id":%d}`, id), ""))
				delete(truth, id)
				continue
			}
			big, v, d := rng.Int64(), fmt.Sprintf("v%d-%d ☃", tx, id), rng.IntN(40000)-20000
			after := fmt.Sprintf(`{"id":%d,"big":%d,"v":%q,"d":%d}`, id, big, v, d)
			stream = append(stream, msg(t, "public", "t", []string{"c", "u", "r", "x"}[rng.IntN(4)], ts, "", after))
			var date string
			if err := conn.QueryRow(ctx, `SELECT (DATE '1970-01-01' + $1::int)::text`, d).Scan(&date); err != nil {
				t.Fatal(err)
			}
			truth[id] = fmt.Sprintf("%d|%d|%s|%s", id, big, v, date)
		}
	}
	for range len(stream) / 3 {
		stream = append(stream, stream[rng.IntN(len(stream))])
	}
	rng.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })

	mem := record.NewMemStore(0)
	memApplier := &record.Applier{Store: mem, KeyColumns: func(string, string) []string { return []string{"id"} }}
	for _, m := range stream {
		if _, err := a.Apply(ctx, m); err != nil {
			t.Fatal(err)
		}
		if _, err := memApplier.Apply(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	got := query(t, conn, `SELECT id, big, v, d::text FROM t ORDER BY id`)
	var want []string
	for id := range 8 {
		if r, ok := truth[id]; ok {
			want = append(want, r)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("replica\n%q\nwant\n%q", got, want)
	}
	if n := len(mem.Rows()); n != len(got) {
		t.Errorf("MemStore has %d rows, replica %d", n, len(got))
	}
}
