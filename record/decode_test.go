package record

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readConsumerFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "consumer", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// src is a minimal valid source object for hand-written cases.
const src = `"source":{"version":"1.0","ts_ms":1,"ts_ns":1000001,"txId":"t","schema":"public","table":"t1","db":"postgres","cluster":"c"}`

func TestDecode(t *testing.T) {
	dsql := readConsumerFile(t, "dsql_example.json")
	del := readConsumerFile(t, "cdcd_delete.json")
	tests := []struct {
		name   string
		in     string
		want   *Message
		effect Effect
	}{
		{
			name: "dsql example",
			in:   string(dsql),
			want: &Message{
				Type: MessageFull, Op: "c",
				After: RowImage{{"order_id", []byte(`1001`)}, {"price", []byte(`"29.99"`)}},
				Source: SourceInfo{
					Version: "1.0", TsMs: 1705318200000, TsNs: 1705318200000000000,
					TxID: "ffthunp5stx6ffs2vyfqoatmfu", Schema: "public", Table: "order_items",
					DB: "postgres", Cluster: "kmabugltfmjdaj2siqr2qbxgju",
				},
				TsMs: 1705318200125, TsNs: 1705318200125483291,
			},
			effect: EffectUpsert,
		},
		{
			name: "cdcd delete keeps int8 max and lsn, ignores unknown fields",
			in:   string(del),
			want: &Message{
				Type: MessageFull, Op: "d",
				Before: RowImage{{"tenant", []byte(`"acme"`)}, {"id", []byte(`9223372036854775807`)}},
				Source: SourceInfo{
					Version: "1.0", TsMs: 1705318201000, TsNs: 1705318201000001000,
					TxID: "aaaaaaaaaaaaaaaaaaaaaaaaaa", Schema: "app", Table: "events",
					DB: "shop", Cluster: "abcdefghijklmnopqrstuvwxyz", LSN: "16/B374D848",
				},
				TsMs: 1705318201005, TsNs: 1705318201005000000,
			},
			effect: EffectRemove,
		},
		{
			name:   "snapshot read is an upsert",
			in:     `{"type":"full","op":"r","before":null,"after":{"a":1},` + src + `}`,
			want:   &Message{Type: MessageFull, Op: "r", After: RowImage{{"a", []byte(`1`)}}, Source: testSource},
			effect: EffectUpsert,
		},
		{
			name:   "unknown op is an upsert of after",
			in:     `{"type":"full","op":"m","before":null,"after":{"b":[1,2],"a":{"x":null}},` + src + `}`,
			want:   &Message{Type: MessageFull, Op: "m", After: RowImage{{"b", []byte(`[1,2]`)}, {"a", []byte(`{"x":null}`)}}, Source: testSource},
			effect: EffectUpsert,
		},
		{
			name:   "truncate",
			in:     `{"type":"full","op":"t","before":null,"after":null,` + src + `}`,
			want:   &Message{Type: MessageFull, Op: "t", Source: testSource},
			effect: EffectTruncate,
		},
		{
			name:   "delete on a table without a key has no before",
			in:     `{"type":"full","op":"d","before":null,"after":null,` + src + `}`,
			want:   &Message{Type: MessageFull, Op: "d", Source: testSource},
			effect: EffectRemove,
		},
		{
			name:   "empty after image is not null",
			in:     `{"type":"full","op":"c","after":{},` + src + `}`,
			want:   &Message{Type: MessageFull, Op: "c", After: RowImage{}, Source: testSource},
			effect: EffectUpsert,
		},
		{
			name: "chunked with inline before",
			in: `{"type":"chunked","op":"u","before":{"id":1},"after":null,` +
				`"chunked":{"after":{"chunk_id":"k1","total_fragments":3,"crc32c":"4294967295"}},` + src + `}`,
			want: &Message{
				Type: MessageChunked, Op: "u", Before: RowImage{{"id", []byte(`1`)}}, Source: testSource,
				ChunkedAfter: &ChunkedImage{ChunkID: "k1", TotalFragments: 3, CRC32C: 4294967295},
			},
			effect: EffectUpsert,
		},
		{
			name: "chunked crc as a bare number",
			in:   `{"type":"chunked","op":"d","chunked":{"before":{"chunk_id":"k2","total_fragments":1,"crc32c":7}},` + src + `}`,
			want: &Message{
				Type: MessageChunked, Op: "d", Source: testSource,
				ChunkedBefore: &ChunkedImage{ChunkID: "k2", TotalFragments: 1, CRC32C: 7},
			},
			effect: EffectRemove,
		},
		{
			name:   "fragment",
			in:     `{"type":"fragment","chunk_id":"k1","index":2,"data":"\"é\"}"}`,
			want:   &Message{Type: MessageFragment, ChunkID: "k1", Index: 2, Data: `"é"}`},
			effect: EffectNone,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode =\n%+v\nwant\n%+v", got, tt.want)
			}
			if e := got.Effect(); e != tt.effect {
				t.Errorf("Effect = %v, want %v", e, tt.effect)
			}
		})
	}
}

var testSource = SourceInfo{Version: "1.0", TsMs: 1, TsNs: 1000001, TxID: "t", Schema: "public", Table: "t1", DB: "postgres", Cluster: "c"}

func TestDecodeMalformed(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantMsg string
	}{
		{"empty", ``, "not a JSON object"},
		{"array", `[1]`, "not a JSON object"},
		{"truncated", `{"type":"full"`, "unexpected end"},
		{"no type", `{"op":"c"}`, `missing "type"`},
		{"unknown type", `{"type":"partial"}`, `unknown type "partial"`},
		{"type not a string", `{"type":1}`, "cannot unmarshal"},
		{"no op", `{"type":"full","after":{"a":1},` + src + `}`, `without "op"`},
		{"no source", `{"type":"full","op":"c","after":{"a":1}}`, `missing "source"`},
		{"no source ts_ns", `{"type":"full","op":"c","after":{"a":1},"source":{"schema":"s","table":"t"}}`, `missing "source.ts_ns"`},
		{"no table", `{"type":"full","op":"c","after":{"a":1},"source":{"ts_ns":1,"schema":"s"}}`, `"source.table"`},
		{"ts_ns float", `{"type":"full","op":"c","after":{"a":1},"source":{"ts_ns":1.5,"schema":"s","table":"t"}}`, "cannot unmarshal"},
		{"ts_ns overflow", `{"type":"full","op":"c","after":{"a":1},"source":{"ts_ns":9223372036854775808,"schema":"s","table":"t"}}`, "cannot unmarshal"},
		{"upsert without after", `{"type":"full","op":"u","before":null,"after":null,` + src + `}`, `"after" is null`},
		{"unknown op without after", `{"type":"full","op":"x",` + src + `}`, `op "x" is an upsert`},
		{"after is an array", `{"type":"full","op":"c","after":[1],` + src + `}`, "after: image is an array"},
		{"after is a string", `{"type":"full","op":"c","after":"x",` + src + `}`, "after: image is a string"},
		{"duplicate column", `{"type":"full","op":"c","after":{"a":1,"a":2},` + src + `}`, `column "a" appears twice`},
		{"chunked without chunked", `{"type":"chunked","op":"u",` + src + `}`, `without "chunked"`},
		{"chunked with no image", `{"type":"chunked","op":"u","chunked":{},` + src + `}`, "no chunked image"},
		{"chunked and inline", `{"type":"chunked","op":"u","after":{"a":1},"chunked":{"after":{"chunk_id":"k","total_fragments":1,"crc32c":"1"}},` + src + `}`, "both inline and chunked"},
		{"shared chunk id", `{"type":"chunked","op":"u","chunked":{"before":{"chunk_id":"k","total_fragments":1,"crc32c":"1"},"after":{"chunk_id":"k","total_fragments":1,"crc32c":"1"}},` + src + `}`, "share chunk_id k"},
		{"chunk without id", `{"type":"chunked","op":"u","chunked":{"after":{"total_fragments":1,"crc32c":"1"}},` + src + `}`, `missing "chunk_id"`},
		{"chunk without total", `{"type":"chunked","op":"u","chunked":{"after":{"chunk_id":"k","crc32c":"1"}},` + src + `}`, `missing "total_fragments"`},
		{"chunk zero total", `{"type":"chunked","op":"u","chunked":{"after":{"chunk_id":"k","total_fragments":0,"crc32c":"1"}},` + src + `}`, "out of range"},
		{"chunk huge total", `{"type":"chunked","op":"u","chunked":{"after":{"chunk_id":"k","total_fragments":99999999999,"crc32c":"1"}},` + src + `}`, "out of range"},
		{"chunk without crc", `{"type":"chunked","op":"u","chunked":{"after":{"chunk_id":"k","total_fragments":2}},` + src + `}`, `missing "crc32c"`},
		{"chunk crc hex", `{"type":"chunked","op":"u","chunked":{"after":{"chunk_id":"k","total_fragments":2,"crc32c":"0xff"}},` + src + `}`, "not a decimal uint32"},
		{"chunk crc too big", `{"type":"chunked","op":"u","chunked":{"after":{"chunk_id":"k","total_fragments":2,"crc32c":"4294967296"}},` + src + `}`, "not a decimal uint32"},
		{"fragment without chunk id", `{"type":"fragment","index":0,"data":""}`, `without "chunk_id"`},
		{"fragment without index", `{"type":"fragment","chunk_id":"k","data":""}`, `without "index"`},
		{"fragment negative index", `{"type":"fragment","chunk_id":"k","index":-1,"data":""}`, "out of range"},
		{"fragment without data", `{"type":"fragment","chunk_id":"k","index":0}`, `without "data"`},
		{"fragment data not a string", `{"type":"fragment","chunk_id":"k","index":0,"data":5}`, "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode = %+v, want error", m)
			}
			if !errors.Is(err, ErrMalformedRecord) {
				t.Errorf("error %v does not wrap ErrMalformedRecord", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestEffectOf(t *testing.T) {
	tests := []struct {
		op   string
		want Effect
	}{
		{"c", EffectUpsert}, {"u", EffectUpsert}, {"r", EffectUpsert},
		{"d", EffectRemove}, {"t", EffectTruncate},
		{"", EffectUpsert}, {"x", EffectUpsert}, {"D", EffectUpsert}, {"delete", EffectUpsert},
	}
	for _, tt := range tests {
		if got := EffectOf(tt.op); got != tt.want {
			t.Errorf("EffectOf(%q) = %v, want %v", tt.op, got, tt.want)
		}
	}
}

func TestRowImageKey(t *testing.T) {
	tests := []struct {
		name string
		img  RowImage
		want string
	}{
		{"sorted by name", RowImage{{"b", []byte(`2`)}, {"a", []byte(` "x" `)}}, `[["a","x"],["b",2]]`},
		{"int8 max exact", RowImage{{"id", []byte(`9223372036854775807`)}}, `[["id",9223372036854775807]]`},
		{"empty", RowImage{}, `[]`},
		{"null value", RowImage{{"k", []byte(`null`)}}, `[["k",null]]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.img.Key()
			if got != tt.want {
				t.Fatalf("Key = %s, want %s", got, tt.want)
			}
			back, err := ParseKey(got)
			if err != nil {
				t.Fatal(err)
			}
			if back.Key() != got {
				t.Errorf("ParseKey(%s).Key() = %s", got, back.Key())
			}
		})
	}
}

func TestRowImageMarshalRoundTrip(t *testing.T) {
	in := `{"z":1,"a":"2","m":[1,{"q":null}],"big":18446744073709551616,"f":1.5e300}`
	img, err := parseImage([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := img.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("round trip = %s, want %s", out, in)
	}
	if got := strings.Join(img.Names(), ","); got != "z,a,m,big,f" {
		t.Errorf("Names = %s", got)
	}
	if _, err := img.Project([]string{"a", "nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Project missing column: err = %v", err)
	}
}
