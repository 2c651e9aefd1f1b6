package e2e

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/test/faultproxy"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// TestSnapshotThenStream: with snapshot = true, rows that existed before the
// stream arrive as op "r" records, then live changes follow with no gap:
// the distinct primary keys in Kinesis are exactly the source table's.
func TestSnapshotThenStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{tables: []string{"public.items"}, shards: 2, extra: "snapshot = true"})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	h.exec(`INSERT INTO items SELECT g, 'old' FROM generate_series(1, 500) g`)
	before := h.ids(`SELECT id FROM items`)
	d := h.start()
	h.waitStatus("ACTIVE", "", 60*time.Second)
	h.exec(`INSERT INTO items SELECT g, 'new' FROM generate_series(501, 520) g`)
	h.exec(`UPDATE items SET v = 'changed' WHERE id = 1`)
	source := h.ids(`SELECT id FROM items`)
	added := h.ids(`SELECT id FROM items WHERE id > 500`)

	// Every source key, each under the op that made it, at least once.
	byOp := map[string]map[int]bool{}
	h.waitRecords(60*time.Second, func(recs []cdcRecord) bool {
		clear(byOp)
		for _, r := range recs {
			img := r.After
			if img == nil {
				img = r.Before
			}
			id, err := strconv.Atoi(string(img["id"]))
			if err != nil {
				t.Fatalf("record without an integer id: %s", r.raw)
			}
			if byOp[r.Op] == nil {
				byOp[r.Op] = map[int]bool{}
			}
			byOp[r.Op][id] = true
		}
		return len(keysNotIn(source, union(byOp))) == 0 && len(byOp["u"]) > 0
	})
	if got := union(byOp); !maps.Equal(got, source) {
		t.Errorf("distinct ids in Kinesis differ from the source's: %d ids, missing %v, extra %v",
			len(got), keysNotIn(source, got), keysNotIn(got, source))
	}
	for op, want := range map[string]map[int]bool{"r": before, "c": added, "u": {1: true}} {
		if got := byOp[op]; !maps.Equal(got, want) {
			t.Errorf("op %q: %d distinct ids, missing %v, extra %v", op, len(got), keysNotIn(want, got), keysNotIn(got, want))
		}
	}
	if len(byOp) != 3 {
		t.Errorf("ops %v: want only r, c and u", slices.Sorted(maps.Keys(byOp)))
	}
	d.stop(t)
}

// TestSnapshotRetryLeavesNoGhosts: the daemon is killed (SIGKILL) in the
// middle of the initial snapshot, after Kinesis took some of its rows; some
// of those rows are then deleted or changed, and a new daemon finishes the
// snapshot. A consumer applying the whole Kinesis stream by key, last
// writer wins by source.ts_ns, must end with exactly the source's rows: no
// ghost of a row the first attempt sent (docs/records.md#snapshot-retries).
func TestSnapshotRetryLeavesNoGhosts(t *testing.T) {
	t.Parallel()
	env := testenv.Require(t)
	proxy := faultproxy.New(env.KinesisEndpoint).Start(t)
	h := newHarness(t, harnessOptions{tables: []string{"public.items"}, shards: 2, extra: "snapshot = true", kinesisEndpoint: proxy.URL()})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	h.exec(`INSERT INTO items SELECT g, 'old' FROM generate_series(1, 1000) g`)
	// Kinesis takes the first 200 records and throttles every other one,
	// so the snapshot stalls part way.
	const taken = 200
	calls := 0 // the decider's calls are serialised
	proxy.FailRecords("PutRecords", func(int, faultproxy.Entry) bool { calls++; return calls > taken })
	d := h.startNoWait()
	var sent []int
	deadline := time.Now().Add(30 * time.Second)
	for len(sent) < taken {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the first %d snapshot rows reached Kinesis within 30s", len(sent), taken)
		}
		time.Sleep(100 * time.Millisecond)
		sent = sent[:0]
		each(h.readKinesis(context.Background()), func(r wireRecord) {
			if id, err := strconv.Atoi(string(r.After["id"])); err == nil && r.Op == "r" {
				sent = append(sent, id)
			}
		})
	}
	d.kill()

	// Rows the first attempt sent go or change; so does one it did not.
	h.exec(`DELETE FROM items WHERE id = ANY($1)`, sent[:20])
	h.exec(`UPDATE items SET v = 'changed' WHERE id = ANY($1)`, sent[20:40])
	h.exec(`DELETE FROM items WHERE id <> ALL($1) AND id % 100 = 0`, sent)
	h.exec(`INSERT INTO items VALUES (2000, 'added')`)
	proxy.FailRecords("PutRecords", nil)
	d = h.start()
	h.waitKeyed("items", []string{"id"}, []string{"id", "v"})
	d.stop(t)
}

// ids runs a query returning one integer column and gives its values as a
// set.
func (h *harness) ids(sql string) map[int]bool {
	h.t.Helper()
	rows, err := h.db.Query(context.Background(), sql)
	if err != nil {
		h.t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	set := map[int]bool{}
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			h.t.Fatal(err)
		}
		set[id] = true
	}
	if err := rows.Err(); err != nil {
		h.t.Fatalf("%s: %v", sql, err)
	}
	return set
}

func union(sets map[string]map[int]bool) map[int]bool {
	all := map[int]bool{}
	for _, s := range sets {
		maps.Copy(all, s)
	}
	return all
}

// keysNotIn lists, sorted, the keys of a that b lacks.
func keysNotIn[K cmp.Ordered](a, b map[K]bool) []K {
	var out []K
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
