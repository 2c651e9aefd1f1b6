package record

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"testing"
	"time"
)

// summarize renders each record as "op table before after" with the images'
// JSON text, which is what compaction decides.
func summarize(t *testing.T, recs []Record) []string {
	t.Helper()
	var out []string
	for _, r := range recs {
		var w struct {
			Op     string          `json:"op"`
			Before json.RawMessage `json:"before"`
			After  json.RawMessage `json:"after"`
			Source struct {
				Table string `json:"table"`
			} `json:"source"`
		}
		if err := json.Unmarshal(r.Data, &w); err != nil {
			t.Fatalf("%v: %s", err, r.Data)
		}
		out = append(out, w.Op+" "+w.Source.Table+" "+string(w.Before)+" "+string(w.After))
	}
	return out
}

// TestCompaction covers every row of docs/records.md#compaction's table and the cases around
// it: key changes, delete and re-insert, TOAST filling, tables without a
// key and truncates.
func TestCompaction(t *testing.T) {
	items, log := itemsRel(), logRel()
	full := itemsRel()
	full.ReplicaIdentity = 'f'
	tests := []struct {
		name         string
		changes      []Change
		emitTruncate bool
		want         []string
		wantSkipped  int
	}{
		{
			name:    "absent→present: insert is c",
			changes: []Change{insertOf(items, tup("1", "a", "2"))},
			want:    []string{`c items null {"id":1,"body":"a","qty":2}`},
		},
		{
			name:    "present→present: update is u",
			changes: []Change{updateOf(items, nil, tup("1", "b", "3"))},
			want:    []string{`u items null {"id":1,"body":"b","qty":3}`},
		},
		{
			name:    "present→absent: delete is d with the key only",
			changes: []Change{deleteOf(items, tup("1", nil, nil))},
			want:    []string{`d items {"id":1} null`},
		},
		{
			name:    "absent→absent: insert then delete is nothing",
			changes: []Change{insertOf(items, tup("1", "a", "2")), deleteOf(items, tup("1", nil, nil))},
			want:    nil,
		},
		{
			name:    "insert then updates is c with the final row",
			changes: []Change{insertOf(items, tup("1", "a", "2")), updateOf(items, nil, tup("1", "b", "2")), updateOf(items, nil, tup("1", "c", "9"))},
			want:    []string{`c items null {"id":1,"body":"c","qty":9}`},
		},
		{
			name:    "updates are one u with the final row",
			changes: []Change{updateOf(items, nil, tup("1", "b", "2")), updateOf(items, nil, tup("1", "c", nil))},
			want:    []string{`u items null {"id":1,"body":"c","qty":null}`},
		},
		{
			name:    "update then delete is d",
			changes: []Change{updateOf(items, nil, tup("1", "b", "2")), deleteOf(items, tup("1", nil, nil))},
			want:    []string{`d items {"id":1} null`},
		},
		{
			name:    "delete then re-insert is u",
			changes: []Change{deleteOf(items, tup("1", nil, nil)), insertOf(items, tup("1", "new", "1"))},
			want:    []string{`u items null {"id":1,"body":"new","qty":1}`},
		},
		{
			name:    "insert, delete, insert is c",
			changes: []Change{insertOf(items, tup("1", "a", "1")), deleteOf(items, tup("1", nil, nil)), insertOf(items, tup("1", "b", "2"))},
			want:    []string{`c items null {"id":1,"body":"b","qty":2}`},
		},
		{
			name:    "key change is d of the old key and c of the new",
			changes: []Change{updateOf(items, tup("1", nil, nil), tup("2", "a", "1"))},
			want:    []string{`d items {"id":1} null`, `c items null {"id":2,"body":"a","qty":1}`},
		},
		{
			name:    "key change onto a key deleted earlier is u of that key",
			changes: []Change{deleteOf(items, tup("2", nil, nil)), updateOf(items, tup("1", nil, nil), tup("2", "a", "1"))},
			want:    []string{`u items null {"id":2,"body":"a","qty":1}`, `d items {"id":1} null`},
		},
		{
			name:    "key change of a row inserted in the transaction is c of the new key",
			changes: []Change{insertOf(items, tup("1", "a", "1")), updateOf(items, tup("1", nil, nil), tup("2", "a", "1"))},
			want:    []string{`c items null {"id":2,"body":"a","qty":1}`},
		},
		{
			name: "key swap through a temporary key is two u",
			changes: []Change{
				updateOf(items, tup("1", nil, nil), tup("0", "one", nil)),
				updateOf(items, tup("2", nil, nil), tup("1", "two", nil)),
				updateOf(items, tup("0", nil, nil), tup("2", "one", nil)),
			},
			want: []string{`u items null {"id":1,"body":"two","qty":null}`, `u items null {"id":2,"body":"one","qty":null}`},
		},
		{
			name:    "key change back and forth is u",
			changes: []Change{updateOf(items, tup("1", nil, nil), tup("2", "a", nil)), updateOf(items, tup("2", nil, nil), tup("1", "b", nil))},
			want:    []string{`u items null {"id":1,"body":"b","qty":null}`},
		},
		{
			name:    "rows come out in order of first appearance",
			changes: []Change{insertOf(items, tup("3", "c", nil)), insertOf(items, tup("1", "a", nil)), updateOf(items, nil, tup("3", "cc", nil)), insertOf(items, tup("2", "b", nil))},
			want:    []string{`c items null {"id":3,"body":"cc","qty":null}`, `c items null {"id":1,"body":"a","qty":null}`, `c items null {"id":2,"body":"b","qty":null}`},
		},
		{
			name:    "TOAST: unchanged value filled from the insert earlier in the transaction",
			changes: []Change{insertOf(items, tup("1", "big", "1")), updateOf(items, nil, tup("1", toast, "2"))},
			want:    []string{`c items null {"id":1,"body":"big","qty":2}`},
		},
		{
			name:    "TOAST: unchanged value filled from an earlier update",
			changes: []Change{updateOf(items, nil, tup("1", "big", "1")), updateOf(items, nil, tup("1", toast, "2"))},
			want:    []string{`u items null {"id":1,"body":"big","qty":2}`},
		},
		{
			name:    "TOAST: unchanged value filled from the old row under REPLICA IDENTITY FULL",
			changes: []Change{updateOf(full, tup("1", "big", "1"), tup("1", toast, "2"))},
			want:    []string{`u items null {"id":1,"body":"big","qty":2}`},
		},
		{
			name:    "TOAST: key change carries the value from the earlier image of the old key",
			changes: []Change{updateOf(items, nil, tup("1", "big", "1")), updateOf(items, tup("1", nil, nil), tup("2", toast, "1"))},
			want:    []string{`d items {"id":1} null`, `c items null {"id":2,"body":"big","qty":1}`},
		},
		{
			name:    "no key: every change is emitted",
			changes: []Change{insertOf(log, tup("a", "1")), updateOf(log, tup("a", "1"), tup("b", "1")), insertOf(log, tup("a", "1")), deleteOf(log, tup("b", "1"))},
			want:    []string{`c log null {"msg":"a","n":1}`, `u log {"msg":"a","n":1} {"msg":"b","n":1}`, `c log null {"msg":"a","n":1}`, `d log {"msg":"b","n":1} null`},
		},
		{
			name:    "no key: TOAST filled from the whole old row",
			changes: []Change{updateOf(log, tup("long", "1"), tup(toast, "2"))},
			want:    []string{`u log {"msg":"long","n":1} {"msg":"long","n":2}`},
		},
		{
			name:    "tables interleave in order of first appearance",
			changes: []Change{insertOf(items, tup("1", "a", nil)), insertOf(log, tup("x", "1")), updateOf(items, nil, tup("1", "b", nil))},
			want:    []string{`c items null {"id":1,"body":"b","qty":null}`, `c log null {"msg":"x","n":1}`},
		},
		{
			name:         "truncate emitted: earlier rows of the table give way to t",
			emitTruncate: true,
			changes: []Change{
				insertOf(items, tup("1", "a", nil)), insertOf(log, tup("x", "1")), updateOf(items, nil, tup("5", "e", nil)),
				truncateOf(items), insertOf(items, tup("1", "again", nil)),
			},
			want: []string{`c log null {"msg":"x","n":1}`, `t items null null`, `c items null {"id":1,"body":"again","qty":null}`},
		},
		{
			name:         "truncate emitted twice keeps the last",
			emitTruncate: true,
			changes:      []Change{truncateOf(items), insertOf(items, tup("1", "a", nil)), truncateOf(items)},
			want:         []string{`t items null null`},
		},
		{
			name: "truncate skipped: earlier rows count as deleted",
			changes: []Change{
				insertOf(items, tup("1", "a", nil)), updateOf(items, nil, tup("5", "e", nil)), insertOf(log, tup("x", "1")),
				truncateOf(items), truncateOf(log), insertOf(items, tup("5", "again", nil)), insertOf(items, tup("7", "new", nil)),
			},
			want:        []string{`u items null {"id":5,"body":"again","qty":null}`, `c items null {"id":7,"body":"new","qty":null}`},
			wantSkipped: 2,
		},
		{
			name:        "truncate skipped: an existing row updated then truncated is d",
			changes:     []Change{updateOf(items, nil, tup("5", "e", nil)), truncateOf(items)},
			want:        []string{`d items {"id":5} null`},
			wantSkipped: 1,
		},
	}
	for _, tt := range tests {
		for _, collide := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/collide=%v", tt.name, collide), func(t *testing.T) {
				testCompaction(t, tt.changes, tt.emitTruncate, collide, tt.want, tt.wantSkipped)
			})
		}
	}
}

// testCompaction encodes changes and compares the records; with collide
// every key hashes alike, so that rows are told apart by the compactor's
// collision map alone.
func testCompaction(t *testing.T, changes []Change, emitTruncate, collide bool, want []string, wantSkipped int) {
	e := newTestEncoder(t, func(c *Config) { c.EmitTruncate = emitTruncate })
	if collide {
		e.compact.hash = func(maphash.Seed, []byte) uint64 { return 7 }
	}
	enc, err := e.Encode(testTxn(changes...), 0, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got := summarize(t, enc.Records); !slices.Equal(got, want) {
		t.Errorf("records:\n got %q\nwant %q", got, want)
	}
	if len(enc.SkippedTruncates) != wantSkipped {
		t.Errorf("SkippedTruncates = %d, want %d", len(enc.SkippedTruncates), wantSkipped)
	}
}

// TestCompactionBinaryKeysMatchText checks that rows are identified by the
// encoded key, so a key sent in either format names the same row.
func TestCompactionBinaryKeysMatchText(t *testing.T) {
	items := itemsRel()
	bin := Datum{Kind: DatumBinary, Data: []byte{0, 0, 0, 1}}
	e := newTestEncoder(t, nil)
	enc := mustEncode(t, e, testTxn(insertOf(items, tup(bin, "a", nil)), deleteOf(items, tup("1", nil, nil))))
	if len(enc.Records) != 0 {
		t.Errorf("insert (binary key) then delete (text key) gave %q", summarize(t, enc.Records))
	}
}

func TestCompactionErrors(t *testing.T) {
	items := itemsRel()
	tests := []struct {
		name    string
		changes []Change
		want    error
		partial *PartialRowError
		oldRow  *OldRowError
	}{
		{
			name:    "TOAST value with no source",
			changes: []Change{updateOf(items, nil, tup("1", toast, "2"))},
			partial: &PartialRowError{Schema: "public", Table: "items", Column: "body"},
		},
		{
			name:    "TOAST value after a key change with no earlier image",
			changes: []Change{updateOf(items, tup("1", nil, nil), tup("2", toast, "2"))},
			partial: &PartialRowError{Schema: "public", Table: "items", Column: "body"},
		},
		{
			name:    "TOAST value in the key",
			changes: []Change{updateOf(items, nil, tup(toast, "a", "2"))},
			partial: &PartialRowError{Schema: "public", Table: "items", Column: "id"},
		},
		{
			name:    "TOAST old row under default identity does not fill non-key columns",
			changes: []Change{updateOf(items, tup("1", "old", nil), tup("1", toast, "2"))},
			partial: &PartialRowError{Schema: "public", Table: "items", Column: "body"},
		},
		{
			name:    "no key: update without the old row",
			changes: []Change{updateOf(logRel(), nil, tup(toast, "2"))},
			oldRow:  &OldRowError{Schema: "public", Table: "log"},
		},
		{
			name:    "no key: delete without the whole old row",
			changes: []Change{deleteOf(keylessRel('d'), tup("a", "1"))},
			oldRow:  &OldRowError{Schema: "public", Table: "log"},
		},
		{
			name:    "key column missing from the old row",
			changes: []Change{deleteOf(items, tup(nil, "a", nil))},
			oldRow:  &OldRowError{Schema: "public", Table: "items", Column: "id"},
		},
		{
			name:    "delete without the old key",
			changes: []Change{{Kind: Delete, Rel: items}},
			want:    ErrMalformedChange,
		},
		{
			name:    "tuple narrower than the relation",
			changes: []Change{insertOf(items, tup("1"))},
			want:    ErrMalformedChange,
		},
		{
			name:    "change without a relation",
			changes: []Change{{Kind: Insert, New: tup("1")}},
			want:    ErrMalformedChange,
		},
		{
			name:    "unknown kind",
			changes: []Change{{Kind: 'X', Rel: items, New: tup("1", "a", "1")}},
			want:    ErrMalformedChange,
		},
		{
			name:    "malformed key value",
			changes: []Change{insertOf(items, tup("one", "a", "1"))},
			want:    ErrMalformedValue,
		},
		{
			name:    "malformed non-key value",
			changes: []Change{insertOf(items, tup("1", "a", "2.5"))},
			want:    ErrMalformedValue,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEncoder(t, nil)
			enc, err := e.Encode(testTxn(tt.changes...), 0, testNow)
			if err == nil {
				t.Fatalf("Encode succeeded with %q", summarize(t, enc.Records))
			}
			if enc.Records != nil {
				t.Errorf("records returned with an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if tt.partial != nil {
				var pe *PartialRowError
				if !errors.As(err, &pe) {
					t.Fatalf("error %v, want a *PartialRowError", err)
				}
				if *pe != *tt.partial {
					t.Errorf("PartialRowError %+v, want %+v", *pe, *tt.partial)
				}
				if msg := err.Error(); !strings.Contains(msg, "REPLICA IDENTITY FULL") || !strings.Contains(msg, `"`+tt.partial.Column+`"`) {
					t.Errorf("message does not name the column and the fix: %s", msg)
				}
			}
			if tt.oldRow != nil {
				var oe *OldRowError
				if !errors.As(err, &oe) || *oe != *tt.oldRow {
					t.Fatalf("error %v, want %+v", err, *tt.oldRow)
				}
				if msg := err.Error(); !strings.Contains(msg, `ALTER TABLE "public".`) || !strings.Contains(msg, "REPLICA IDENTITY FULL") {
					t.Errorf("message does not name the fix: %s", msg)
				}
			}
		})
	}
}

// TestValueErrorNamesColumn checks the typed error for a value that cannot
// be encoded from the binary format.
func TestValueErrorNamesColumn(t *testing.T) {
	rel := &Relation{ID: 1, Schema: "public", Table: "geo", HasKey: true,
		Columns: []Column{{Name: "id", TypeOID: oidInt4, Key: true}, {Name: "pos", TypeOID: 600}}}
	e := newTestEncoder(t, nil)
	_, err := e.Encode(testTxn(insertOf(rel, tup(Datum{Kind: DatumBinary, Data: []byte{0, 0, 0, 1}}, Datum{Kind: DatumBinary, Data: make([]byte, 16)}))), 0, testNow)
	var ve *ValueError
	if !errors.As(err, &ve) || !errors.Is(err, ErrBinaryUnsupported) {
		t.Fatalf("error %v, want a *ValueError wrapping ErrBinaryUnsupported", err)
	}
	if ve.Column != "pos" || ve.TypeOID != 600 || ve.Format != DatumBinary {
		t.Errorf("ValueError %+v", ve)
	}
	if msg := err.Error(); !strings.Contains(msg, "text format") || !strings.Contains(msg, "600") {
		t.Errorf("message does not name the type and the fix: %s", msg)
	}
}

// TestCompactSnapshotRead: rows read by an initial snapshot are emitted
// with op "r", keyed or not, with the whole row in after.
func TestCompactSnapshotRead(t *testing.T) {
	keyed := &Relation{ID: 1, Schema: "public", Table: "k", HasKey: true,
		Columns: []Column{{Name: "id", TypeOID: 23, Key: true}, {Name: "v", TypeOID: 25}}}
	keyless := &Relation{ID: 2, Schema: "public", Table: "n",
		Columns: []Column{{Name: "v", TypeOID: 25}}}
	enc, err := NewEncoder(Config{SystemID: 1, Cluster: "abcdefghijklmnopqrstuvwxyz", Database: "db", Ordering: Row})
	if err != nil {
		t.Fatal(err)
	}
	txt := func(s string) Datum { return Datum{Kind: DatumText, Data: []byte(s)} }
	out, err := enc.Encode(&Txn{CommitLSN: 16, EndLSN: 0, CommitTime: time.Unix(1700000000, 0), Changes: []Change{
		{Kind: Read, Rel: keyed, New: Tuple{txt("1"), txt("a")}},
		{Kind: Read, Rel: keyless, New: Tuple{txt("b")}},
	}}, 0, time.Unix(1700000001, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Records) != 2 {
		t.Fatalf("%d records, want 2", len(out.Records))
	}
	for _, r := range out.Records {
		if !strings.Contains(string(r.Data), `"op":"r"`) || strings.Contains(string(r.Data), `"after":null`) {
			t.Errorf("snapshot row not an r record with after: %s", r.Data)
		}
	}
}
