package record

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func TestApplyLastWriterWins(t *testing.T) {
	k1 := StoreKey{"public", "t", `[["id",1]]`}
	tests := []struct {
		name    string
		stream  []*Message
		applied []bool
		want    []MemRow
	}{
		{
			name: "in order",
			stream: []*Message{
				fullMsg("c", 10, nil, img("id", `1`, "v", `"a"`)),
				fullMsg("u", 20, nil, img("id", `1`, "v", `"b"`)),
			},
			applied: []bool{true, true},
			want:    []MemRow{{k1, 20, img("id", `1`, "v", `"b"`)}},
		},
		{
			name: "older update after newer is ignored",
			stream: []*Message{
				fullMsg("u", 20, nil, img("id", `1`, "v", `"b"`)),
				fullMsg("c", 10, nil, img("id", `1`, "v", `"a"`)),
			},
			applied: []bool{true, false},
			want:    []MemRow{{k1, 20, img("id", `1`, "v", `"b"`)}},
		},
		{
			name: "redelivery is a no-op",
			stream: []*Message{
				fullMsg("c", 10, nil, img("id", `1`, "v", `"a"`)),
				fullMsg("c", 10, nil, img("id", `1`, "v", `"a"`)),
			},
			applied: []bool{true, false},
			want:    []MemRow{{k1, 10, img("id", `1`, "v", `"a"`)}},
		},
		{
			name: "tombstone stops a late older upsert",
			stream: []*Message{
				fullMsg("d", 30, img("id", `1`), nil),
				fullMsg("u", 20, nil, img("id", `1`, "v", `"b"`)),
			},
			applied: []bool{true, false},
		},
		{
			name: "newer insert after delete revives",
			stream: []*Message{
				fullMsg("d", 30, img("id", `1`), nil),
				fullMsg("c", 40, nil, img("id", `1`, "v", `"c"`)),
			},
			applied: []bool{true, true},
			want:    []MemRow{{k1, 40, img("id", `1`, "v", `"c"`)}},
		},
		{
			name: "unknown op and snapshot read upsert",
			stream: []*Message{
				fullMsg("r", 5, nil, img("id", `1`, "v", `"snap"`)),
				fullMsg("future-op", 6, nil, img("id", `1`, "v", `"new"`)),
			},
			applied: []bool{true, true},
			want:    []MemRow{{k1, 6, img("id", `1`, "v", `"new"`)}},
		},
		{
			name: "truncate removes older rows and blocks late older upserts",
			stream: []*Message{
				fullMsg("c", 10, nil, img("id", `1`, "v", `"a"`)),
				fullMsg("c", 60, nil, img("id", `2`, "v", `"after"`)),
				fullMsg("t", 50, nil, nil),
				fullMsg("u", 20, nil, img("id", `3`, "v", `"late"`)),
				fullMsg("t", 40, nil, nil),
			},
			applied: []bool{true, true, true, false, false},
			want:    []MemRow{{StoreKey{"public", "t", `[["id",2]]`}, 60, img("id", `2`, "v", `"after"`)}},
		},
		{
			name: "row written in the truncating transaction survives it",
			stream: []*Message{
				fullMsg("c", 50, nil, img("id", `1`, "v", `"x"`)),
				fullMsg("t", 50, nil, nil),
				fullMsg("c", 50, nil, img("id", `2`, "v", `"y"`)),
			},
			applied: []bool{true, true, true},
			want: []MemRow{
				{k1, 50, img("id", `1`, "v", `"x"`)},
				{StoreKey{"public", "t", `[["id",2]]`}, 50, img("id", `2`, "v", `"y"`)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := NewMemStore(0)
			a := &Applier{Store: store, KeyColumns: pkID}
			for i, m := range tt.stream {
				applied, err := a.Apply(context.Background(), m)
				if err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if applied != tt.applied[i] {
					t.Errorf("record %d applied = %v, want %v", i, applied, tt.applied[i])
				}
			}
			if got := store.Rows(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("rows = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name string
		m    *Message
		is   error
	}{
		{"chunked", &Message{Type: MessageChunked, Op: "u", ChunkedAfter: &ChunkedImage{ChunkID: "k"}}, ErrNotReassembled},
		{"fragment", &Message{Type: MessageFragment, ChunkID: "k"}, ErrNotReassembled},
		{"keyless delete", fullMsg("d", 1, nil, nil), ErrNoRowKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Applier{Store: NewMemStore(0), KeyColumns: pkID}
			if _, err := a.Apply(context.Background(), tt.m); !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
		})
	}
}

func TestMemStoreTombstoneBound(t *testing.T) {
	store := NewMemStore(10)
	a := &Applier{Store: store, KeyColumns: pkID}
	ctx := context.Background()
	for i := range 100 {
		id := []byte{'1' + byte(i%9), '0' + byte(i/9%10), '0' + byte(i/90)}
		if _, err := a.Apply(ctx, fullMsg("c", int64(2*i), nil, img("id", string(id)))); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Apply(ctx, fullMsg("d", int64(2*i+1), img("id", string(id)), nil)); err != nil {
			t.Fatal(err)
		}
		if n := store.Tombstones(); n > 10 {
			t.Fatalf("%d tombstones > 10", n)
		}
	}
	if len(store.graves) > 2*store.tombstones+1024 {
		t.Errorf("grave heap grew to %d", len(store.graves))
	}
	if rows := store.Rows(); len(rows) != 0 {
		t.Errorf("rows = %v", rows)
	}
}
