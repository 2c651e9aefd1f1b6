package e2e

import (
	"testing"
	"time"
)

// TestSnapshotThenStream: with snapshot = true, rows that existed before the
// stream arrive as op "r" records, then live changes follow with no gap.
func TestSnapshotThenStream(t *testing.T) {
	h := newHarness(t, harnessOptions{tables: []string{"public.items"}, shards: 2, extra: "snapshot = true"})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	h.exec(`INSERT INTO items SELECT g, 'old' FROM generate_series(1, 500) g`)
	d := h.start()
	h.waitStatus("ACTIVE", "", 60*time.Second)
	h.exec(`INSERT INTO items SELECT g, 'new' FROM generate_series(501, 520) g`)
	h.exec(`UPDATE items SET v = 'changed' WHERE id = 1`)
	recs := h.waitRecords(60*time.Second, func(recs []cdcRecord) bool {
		n := 0
		for _, r := range recs {
			if r.Op == "u" {
				n++
			}
		}
		return len(recs) >= 521 && n == 1
	})
	ops := map[string]int{}
	for _, r := range recs {
		ops[r.Op]++
	}
	if ops["r"] < 500 || ops["c"] < 20 || ops["u"] != 1 {
		t.Fatalf("ops %v: want at least 500 r (snapshot), 20 c and one u", ops)
	}
	d.stop(t)
}
