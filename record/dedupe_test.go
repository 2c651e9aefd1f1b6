package record

import (
	"errors"
	"strings"
	"testing"
)

func fullMsg(op string, ts int64, before, after RowImage) *Message {
	return &Message{
		Type: MessageFull, Op: op, Before: before, After: after,
		Source: SourceInfo{Version: "1.0", TsNs: ts, Schema: "public", Table: "t"},
	}
}

func img(kv ...string) RowImage {
	var r RowImage
	for i := 0; i+1 < len(kv); i += 2 {
		r = append(r, ColumnValue{Name: kv[i], Value: []byte(kv[i+1])})
	}
	return r
}

func pkID(schema, table string) []string {
	if table == "t" {
		return []string{"id"}
	}
	return nil
}

func TestRowKey(t *testing.T) {
	tests := []struct {
		name    string
		m       *Message
		keys    KeyColumnsFunc
		want    string
		wantErr string
	}{
		{"upsert projects key", fullMsg("u", 1, nil, img("v", `"x"`, "id", `5`)), pkID, `[["id",5]]`, ""},
		{"unknown op projects key", fullMsg("q", 1, nil, img("id", `5`, "v", `1`)), pkID, `[["id",5]]`, ""},
		{"delete uses before", fullMsg("d", 1, img("id", `5`), nil), pkID, `[["id",5]]`, ""},
		{"delete without key func", fullMsg("d", 1, img("b", `2`, "a", `1`), nil), nil, `[["a",1],["b",2]]`, ""},
		{"upsert without key func is whole image", fullMsg("c", 1, nil, img("id", `5`, "v", `1`)), nil, `[["id",5],["v",1]]`, ""},
		{"truncate", fullMsg("t", 1, nil, nil), pkID, ``, ""},
		{"keyless delete", fullMsg("d", 1, nil, nil), pkID, "", "names no row"},
		{"key column missing", fullMsg("u", 1, nil, img("v", `1`)), pkID, "", `no column "id"`},
		{"fragment", &Message{Type: MessageFragment, ChunkID: "k"}, pkID, "", "reassemble it first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RowKey(tt.m, tt.keys)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("RowKey err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("RowKey = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestDeduper(t *testing.T) {
	d := NewDeduper(DeduperConfig{KeyColumns: pkID})
	stream := []struct {
		m    *Message
		seen bool
	}{
		{fullMsg("c", 10, nil, img("id", `1`, "v", `"a"`)), false},
		{fullMsg("c", 10, nil, img("id", `2`, "v", `"a"`)), false}, // same txn, other row
		{fullMsg("c", 10, nil, img("id", `1`, "v", `"a"`)), true},  // redelivery
		{fullMsg("u", 11, nil, img("id", `1`, "v", `"b"`)), false}, // later txn, same row
		{fullMsg("d", 12, img("id", `1`), nil), false},
		{fullMsg("d", 12, img("id", `1`), nil), true},
		{fullMsg("t", 13, nil, nil), false},
		{fullMsg("t", 13, nil, nil), true},
		{fullMsg("d", 14, nil, nil), false}, // keyless delete still dedupes
		{fullMsg("d", 14, nil, nil), true},
	}
	for i, s := range stream {
		seen, err := d.Seen(s.m)
		if err != nil || seen != s.seen {
			t.Errorf("record %d: Seen = %v, %v; want %v", i, seen, err, s.seen)
		}
	}
	if _, err := d.Seen(&Message{Type: MessageChunked, Op: "u"}); err == nil {
		t.Error("Seen accepted a chunked message")
	}
}

func TestDeduperBounded(t *testing.T) {
	tests := []struct {
		name     string
		cfg      DeduperConfig
		maxLen   int
		oldAgain bool // whether ts 0 is still known at the end
	}{
		{"max entries", DeduperConfig{KeyColumns: pkID, MaxEntries: 100}, 100, false},
		{"window", DeduperConfig{KeyColumns: pkID, Window: 50}, 51, false},
		{"roomy", DeduperConfig{KeyColumns: pkID}, 1000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDeduper(tt.cfg)
			for ts := range int64(1000) {
				if _, err := d.Seen(fullMsg("c", ts, nil, img("id", `1`))); err != nil {
					t.Fatal(err)
				}
				if d.Len() > tt.maxLen {
					t.Fatalf("Len %d > %d", d.Len(), tt.maxLen)
				}
			}
			seen, _ := d.Seen(fullMsg("c", 0, nil, img("id", `1`)))
			if seen != tt.oldAgain {
				t.Errorf("oldest key seen = %v, want %v", seen, tt.oldAgain)
			}
			if seen, _ := d.Seen(fullMsg("c", 999, nil, img("id", `1`))); !seen {
				t.Error("newest key forgotten")
			}
		})
	}
}

func TestDeduperKeyErrors(t *testing.T) {
	d := NewDeduper(DeduperConfig{KeyColumns: pkID})
	_, err := d.Seen(fullMsg("u", 1, nil, img("other", `1`)))
	if err == nil || !strings.Contains(err.Error(), "dedupe") || errors.Is(err, ErrNoRowKey) {
		t.Errorf("err = %v", err)
	}
}
