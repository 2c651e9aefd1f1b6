package record

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkEncode10Columns encodes a 10-column row (int8 key, int4, text,
// numeric, timestamptz, bool, uuid, jsonb, float8, text[]) in each wire
// format. "row" is one single-row transaction per op, so ns/op and
// allocs/op are per record; "txn100" is one 100-row transaction per op,
// reported per record as well.
//
//	go test ./record -run '^$' -bench Encode10Columns -benchmem
func BenchmarkEncode10Columns(b *testing.B) {
	cases := []struct{ col, golden string }{
		{"id", "int8_max"}, {"qty", "int4"}, {"name", "text_unicode"}, {"price", "numeric_big"},
		{"created", "timestamptz_utc"}, {"active", "bool_true"}, {"uid", "uuid"}, {"doc", "jsonb"},
		{"ratio", "float8_tenth"}, {"tags", "array_text"},
	}
	byName := map[string]goldenValue{}
	for _, v := range readGoldenValues(b) {
		byName[v.name] = v
	}
	rel := &Relation{ID: 1, Schema: "public", Table: "bench", ReplicaIdentity: 'd', HasKey: true}
	text, bin := make(Tuple, len(cases)), make(Tuple, len(cases))
	for i, c := range cases {
		v, ok := byName[c.golden]
		if !ok {
			b.Fatalf("no golden value %s", c.golden)
		}
		rel.Columns = append(rel.Columns, Column{Name: c.col, TypeOID: v.oid, Key: i == 0})
		text[i] = Datum{Kind: DatumText, Data: v.text}
		bin[i] = Datum{Kind: DatumBinary, Data: v.binary}
	}
	for _, format := range []struct {
		name string
		row  Tuple
	}{{"text", text}, {"binary", bin}} {
		for _, ordering := range []Ordering{Row, Unordered} {
			b.Run(fmt.Sprintf("%s/%s/row", format.name, ordering), func(b *testing.B) {
				e := newTestEncoder(b, func(c *Config) { c.Ordering = ordering })
				txn := testTxn(insertOf(rel, format.row))
				b.ReportAllocs()
				var size int
				for b.Loop() {
					enc, err := e.Encode(txn, 0, testNow)
					if err != nil {
						b.Fatal(err)
					}
					size = len(enc.Records[0].Data)
				}
				b.ReportMetric(float64(size), "bytes/record")
			})
			b.Run(fmt.Sprintf("%s/%s/txn100", format.name, ordering), func(b *testing.B) {
				e := newTestEncoder(b, func(c *Config) { c.Ordering = ordering })
				changes := make([]Change, 100)
				for i := range changes {
					r := append(Tuple(nil), format.row...)
					if format.name == "text" {
						r[0] = Datum{Kind: DatumText, Data: fmt.Appendf(nil, "%d", i)}
					} else {
						r[0] = Datum{Kind: DatumBinary, Data: []byte{0, 0, 0, 0, 0, 0, 0, byte(i)}}
					}
					changes[i] = insertOf(rel, r)
				}
				txn := testTxn(changes...)
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				n := 0
				for b.Loop() {
					if _, err := e.Encode(txn, 0, testNow); err != nil {
						b.Fatal(err)
					}
					n++
				}
				runtime.ReadMemStats(&after)
				records := float64(n * len(changes))
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/records, "ns/record")
				b.ReportMetric(float64(after.Mallocs-before.Mallocs)/records, "allocs/record")
			})
		}
	}
}
