package soak

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rec builds a record as cdcd writes it (docs/records.md#envelope).
func rec(op, table, id string, tsNs int64, tx, after string, procNs int64) []byte {
	before, img := "null", "null"
	switch op {
	case "d":
		before = `{"id":` + id + `}`
	case "c", "u":
		img = after
	}
	return fmt.Appendf(nil, `{"type":"full","op":%q,"before":%s,"after":%s,"source":{"version":"1.0","ts_ms":%d,"ts_ns":%d,`+
		`"txId":%q,"schema":"public","table":%q,"db":"d","cluster":"c","lsn":"0/1"},"ts_ms":%d,"ts_ns":%d}`,
		op, before, img, tsNs/1e6, tsNs, tx, table, procNs/1e6, procNs)
}

// TestReaderCatches shows that the soak's reader notices what it checks
// for: a duplicate that differs beyond ts_ms/ts_ns, a ROW-ordered row whose
// new record comes after a later one, and it rebuilds tables by last
// writer, deletes and truncates included.
func TestReaderCatches(t *testing.T) {
	rd := newReader("c")
	shard := [][]byte{
		rec("c", "scratch", "1", 100, "tx1", `{"id":1,"v":"a","n":1}`, 1000),
		rec("c", "scratch", "1", 100, "tx1", `{"id":1,"v":"a","n":1}`, 2000), // a redelivery
		rec("c", "scratch", "2", 100, "tx1", `{"id":2,"v":"b","n":2}`, 1000),
		rec("u", "scratch", "2", 300, "tx3", `{"id":2,"v":"b2","n":3}`, 1000),
		rec("c", "scratch", "2", 100, "tx1", `{"id":2,"v":"b","n":2}`, 3000),    // replayed after a restart: allowed
		rec("u", "scratch", "2", 200, "tx2", `{"id":2,"v":"late","n":9}`, 1000), // new, yet older than what the shard had
		rec("c", "scratch", "1", 100, "tx1", `{"id":1,"v":"CHANGED","n":1}`, 1000),
		rec("d", "scratch", "3", 400, "tx4", ``, 1000),
	}
	rd.readStream("s", [][][]byte{shard}, true)
	if rd.problemCount["duplicate"] != 1 || rd.problemCount["order"] != 1 || len(rd.problemCount) != 2 {
		t.Errorf("problems %v, want one duplicate and one order problem:\n%s", rd.problemCount, strings.Join(rd.problems, "\n"))
	}
	if rd.duplicates != 3 || rd.distinct() != 5 {
		t.Errorf("%d duplicates of %d changes, want 3 of 5", rd.duplicates, rd.distinct())
	}
	live := rd.live("scratch")
	if len(live) != 2 || string(live["2"].after["v"]) != `"b2"` || string(live["1"].after["v"]) != `"a"` {
		t.Errorf("rebuilt scratch wrong: %v", live)
	}

	// A truncate empties the table but for rows its transaction wrote
	// after it (same ts_ns).
	rd.readStream("s", [][][]byte{{
		[]byte(`{"type":"full","op":"t","before":null,"after":null,"source":{"version":"1.0","ts_ms":0,"ts_ns":500,"txId":"tx5","schema":"public","table":"scratch","db":"d","cluster":"c","lsn":"0/1"},"ts_ms":0,"ts_ns":1}`),
		rec("c", "scratch", "7", 500, "tx5", `{"id":7,"v":"after","n":0}`, 1000),
	}}, false)
	if live := rd.live("scratch"); len(live) != 1 || live["7"] == nil {
		t.Errorf("after the truncate: %v, want only id 7", live)
	}
}

// TestCompareFindsLoss shows that the comparison counts a missing row, an
// extra row and a different value as lost, and takes a missing added
// column as NULL only for rows written before ADD COLUMN.
func TestCompareFindsLoss(t *testing.T) {
	str := func(s string) *string { return &s }
	tb := table{"accounts", []column{{"id", tInt8}, {"balance", tNumeric}, {"updated", tTimestamptz}, {addedColumn, tText}}}
	src := map[string][]*string{
		"1": {str("1"), str("1.50"), str("1700000000000000"), nil},
		"2": {str("2"), str("2.00"), nil, nil},
		"3": {str("3"), str("3.00"), nil, nil},
		"4": {str("4"), str("4.00"), nil, str("n")},
	}
	added := time.Unix(0, 1000)
	row := func(ts int64, after string) *rowState {
		var img map[string]json.RawMessage
		if err := json.Unmarshal([]byte(after), &img); err != nil {
			t.Fatal(err)
		}
		return &rowState{tsNs: ts, after: img}
	}
	rebuilt := map[string]*rowState{
		"1": row(500, `{"id":1,"balance":"1.50","updated":1700000000000000}`),  // before ADD COLUMN: fine
		"2": row(2000, `{"id":2,"balance":"2.00","updated":null}`),             // after it: the column must be there
		"4": row(2000, `{"id":4,"balance":"4.0","updated":null,"note":"n"}`),   // numeric scale differs
		"9": row(2000, `{"id":9,"balance":"9.00","updated":null,"note":null}`), // not in the source
	}
	c := &comparison{}
	c.compareTable(tb, src, rebuilt, added)
	if c.lost != 4 {
		t.Errorf("lost %d, want 4 (2 without the added column, 3 missing, 4 different, 9 extra):\n%s", c.lost, strings.Join(c.samples, "\n"))
	}
}

// TestTransitions reads docs/lifecycle.md's table and flags a logged
// status change it does not allow.
func TestTransitions(t *testing.T) {
	table, err := transitionTable(filepath.Join(repoRoot(), "docs", "lifecycle.md"))
	if err != nil {
		t.Fatal(err)
	}
	if table["ACTIVE"]["Fault"] != "IMPAIRED" || table["IMPAIRED"]["Recovered"] != "ACTIVE" || len(table["FAILED"]) != 1 {
		t.Fatalf("transition table read wrong: %v", table)
	}
	logs := []string{`time=x level=WARN msg="stream impaired" stream=s1 cluster=c1 from=ACTIVE to=IMPAIRED event=Fault code=X error="e"
time=x level=INFO msg="stream active" stream=s1 cluster=c1 from=FAILED to=ACTIVE event=Recovered
`}
	seen, illegal := transitions(logs, table)
	if seen["ACTIVE -Fault-> IMPAIRED"] != 1 || len(illegal) != 1 || !strings.Contains(illegal[0], "FAILED") {
		t.Errorf("seen %v, illegal %q; want the FAILED → ACTIVE change flagged", seen, illegal)
	}
}
