package consumer

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdcd-dev/cdcd/record"
)

func TestTextLine(t *testing.T) {
	orders := &record.Relation{ID: 1, Schema: "public", Table: "orders", ReplicaIdentity: 'd', HasKey: true,
		Columns: []record.Column{{Name: "order_id", TypeOID: 20, TypMod: -1, Key: true}, {Name: "status", TypeOID: 25, TypMod: -1},
			{Name: "price", TypeOID: 1700, TypMod: -1}, {Name: "note", TypeOID: 25, TypMod: -1}, {Name: "paid", TypeOID: 16, TypMod: -1}}}
	keyless := &record.Relation{ID: 2, Schema: "audit", Table: "events", ReplicaIdentity: 'f',
		Columns: []record.Column{{Name: "at", TypeOID: 1184, TypMod: -1}, {Name: "tags", TypeOID: 3802, TypMod: -1}}}
	null := record.Datum{Kind: record.DatumNull}
	row := func(note string) record.Tuple {
		return record.Tuple{text("1001"), text("shipped"), text("29.99"), text(note), text("t")}
	}
	for _, tc := range []struct {
		name   string
		change record.Change
		want   string
	}{
		{"insert", record.Change{Kind: record.Insert, Rel: orders, New: record.Tuple{text("1001"), text("new"), text("29.99"), null, text("f")}},
			`16/B374D848 public.orders c order_id=1001 status=new price=29.99 note=null paid=false`},
		{"update: a string with spaces keeps its quotes", record.Change{Kind: record.Update, Rel: orders, New: row("gift wrap, please")},
			`16/B374D848 public.orders u order_id=1001 status=shipped price=29.99 note="gift wrap, please" paid=true`},
		{"snapshot read: an empty string keeps its quotes", record.Change{Kind: record.Read, Rel: orders, New: row("")},
			`16/B374D848 public.orders r order_id=1001 status=shipped price=29.99 note="" paid=true`},
		{"escapes stay escaped: one line", record.Change{Kind: record.Insert, Rel: orders, New: row("a\nb\"c")},
			`16/B374D848 public.orders c order_id=1001 status=shipped price=29.99 note="a\nb\"c" paid=true`},
		{"a long value is cut", record.Change{Kind: record.Insert, Rel: orders, New: row(strings.Repeat("é", 100))},
			`16/B374D848 public.orders c order_id=1001 status=shipped price=29.99 note=` + strings.Repeat("é", 80) + `… paid=true`},
		{"delete: the key in braces", record.Change{Kind: record.Delete, Rel: orders, Old: record.Tuple{text("1002"), null, null, null, null}},
			`16/B374D848 public.orders d {order_id:1002}`},
		{"delete without a key shows the whole old row", record.Change{Kind: record.Delete, Rel: keyless, Old: record.Tuple{text("2024-01-15 11:30:00+00"), text(`{"a": 1}`)}},
			`16/B374D848 audit.events d {at:1705318200000000,tags:"{\"a\": 1}"}`},
		{"jsonb is a string", record.Change{Kind: record.Insert, Rel: keyless, New: record.Tuple{text("2024-01-15 11:30:00+00"), text(`{"a": 1}`)}},
			`16/B374D848 audit.events c at=1705318200000000 tags="{\"a\": 1}"`},
		{"truncate", record.Change{Kind: record.Truncate, Rel: orders}, `16/B374D848 public.orders TRUNCATE`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := encodeChanges(t, 0, tc.change)
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			m, err := record.Decode(recs[0])
			if err != nil {
				t.Fatal(err)
			}
			if got := textLine(m); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestTextValue(t *testing.T) {
	for raw, want := range map[string]string{
		``:                      "null",
		`[1, [2,  3]]`:          "[1,[2,3]]", // another producer's spacing
		`"x y"`:                 `"x y"`,
		"\"x\u00a0y\"":          "\"x\u00a0y\"", // any space keeps the quotes
		`"9223372036854775807"`: "9223372036854775807",
		`1e+21`:                 "1e+21",
	} {
		if got := textValue([]byte(raw)); got != want {
			t.Errorf("textValue(%s) = %s, want %s", raw, got, want)
		}
	}
}

// TestPrinter: the text format prints a chunked record, reassembled, as
// one line; JSON prints the records as cdcd wrote them; both stop at the
// limit.
func TestPrinter(t *testing.T) {
	recs := encode(t, 0, 2) // row 0 is chunked
	api := serve(t, map[string][][]byte{"a": recs}, types.ShardIteratorTypeTrimHorizon)
	var out bytes.Buffer
	if err := Run(context.Background(), api, fast(Config{}), Printer(&out, FormatText, 0)); err != nil {
		t.Fatal(err)
	}
	want := "16/B374D848 public.docs c id=0 body=" + (`"` + strings.Repeat("large ", 14))[:80] + "…\n" +
		"16/B374D848 public.docs c id=1 body=small\n"
	if out.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", out.String(), want)
	}

	out.Reset()
	if err := Run(context.Background(), api, fast(Config{Raw: true}), Printer(&out, FormatJSON, 2)); err != nil {
		t.Fatal(err)
	}
	if want := string(recs[0]) + "\n" + string(recs[1]) + "\n"; out.String() != want {
		t.Errorf("json, raw, at most 2:\n%.300s\nwant the first two Kinesis records as written", out.String())
	}
}

func TestFormatFlag(t *testing.T) {
	f := FormatJSON
	if err := f.Set("text"); err != nil || f != FormatText {
		t.Errorf("Set(text): %v, %s", err, f)
	}
	if err := f.Set("yaml"); err == nil || f != FormatText {
		t.Errorf("Set(yaml): %v, %s; want an error and no change", err, f)
	}
}
