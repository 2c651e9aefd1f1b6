package e2e

import (
	"context"
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"
)

var txIDRe = regexp.MustCompile(`^[a-z2-7]{26}$`)

// TestChangesReachKinesis drives inserts, updates and deletes in several
// transactions (one rolled back) through the daemon and checks every field
// a DSQL consumer reads.
func TestChangesReachKinesis(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{tables: []string{"public.orders"}, shards: 3})
	h.exec(`CREATE TABLE orders (id int PRIMARY KEY, item text, qty int, price numeric(10,2), paid boolean,
		created timestamptz, note text)`)
	d := h.start()
	before := time.Now()

	h.exec(`INSERT INTO orders VALUES (1, 'apple', 3, 1.25, false, '2024-01-15 12:30:00.123456+00', NULL),
		(2, 'pear', 1, 0.50, true, '1999-12-31 23:59:59+02', 'x'), (3, 'fig', 7, 10, false, NULL, 'ü')`)
	h.exec(`BEGIN; UPDATE orders SET qty = 4 WHERE id = 1; DELETE FROM orders WHERE id = 2; COMMIT`)
	h.exec(`BEGIN; INSERT INTO orders VALUES (99, 'never', 0, 0, false, NULL, NULL); ROLLBACK`)
	h.exec(`BEGIN; INSERT INTO orders VALUES (4, 'kiwi', 1, 2, false, NULL, NULL); UPDATE orders SET qty = 2 WHERE id = 4; COMMIT`)
	h.exec(`BEGIN; INSERT INTO orders VALUES (5, 'gone', 1, 2, false, NULL, NULL); DELETE FROM orders WHERE id = 5; COMMIT`)
	h.exec(`UPDATE orders SET id = 30 WHERE id = 3`)

	// 3 inserts, 1 update + 1 delete, 1 compacted insert, nothing for the
	// insert-then-delete, delete + insert for the key change.
	const want = 8
	recs := h.waitRecords(60*time.Second, func(r []cdcRecord) bool { return len(r) >= want })
	if len(recs) != want {
		t.Fatalf("got %d records, want %d:\n%s", len(recs), want, dump(recs))
	}
	// Kinesis shards interleave: put records back in commit order.
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Source.TsNs < recs[j].Source.TsNs })

	byTx := map[string][]cdcRecord{}
	var txOrder []string
	for _, r := range recs {
		if r.Type != "full" || r.Source.Version != "1.0" || r.Source.Schema != "public" || r.Source.Table != "orders" {
			t.Errorf("envelope wrong: %s", r.raw)
		}
		if !txIDRe.MatchString(r.Source.TxID) {
			t.Errorf("txId %q is not 26 characters of lowercase base32", r.Source.TxID)
		}
		if r.Source.TsNs/1_000_000 != r.Source.TsMs || r.Source.TsNs < before.Add(-time.Minute).UnixNano() {
			t.Errorf("source ts_ms %d / ts_ns %d inconsistent or not a commit time", r.Source.TsMs, r.Source.TsNs)
		}
		if r.TsNs < r.Source.TsNs || r.TsNs/1_000_000 != r.TsMs {
			t.Errorf("processing ts %d before commit ts %d, or ts_ms inconsistent", r.TsNs, r.Source.TsNs)
		}
		if r.Source.DB != h.dbName() || len(r.Source.Cluster) != 26 || r.Source.LSN == "" {
			t.Errorf("source db/cluster/lsn wrong: %s", r.raw)
		}
		if _, seen := byTx[r.Source.TxID]; !seen {
			txOrder = append(txOrder, r.Source.TxID)
		}
		byTx[r.Source.TxID] = append(byTx[r.Source.TxID], r)
	}
	if len(txOrder) != 4 {
		t.Fatalf("records span %d transactions, want 4 (the rolled-back and the insert-then-delete ones emit nothing):\n%s", len(txOrder), dump(recs))
	}
	for i := 1; i < len(txOrder); i++ {
		if byTx[txOrder[i]][0].Source.TsNs <= byTx[txOrder[i-1]][0].Source.TsNs {
			t.Errorf("source.ts_ns not strictly increasing across transactions")
		}
	}

	t1 := byTx[txOrder[0]]
	sortByID(t1)
	if len(t1) != 3 {
		t.Fatalf("first transaction: %d records, want 3", len(t1))
	}
	for _, r := range t1 {
		if r.Op != "c" || r.Before != nil || len(r.After) != 7 {
			t.Errorf("insert record wrong: %s", r.raw)
		}
	}
	expectJSON(t, t1[0].After, map[string]string{"id": "1", "item": `"apple"`, "qty": "3", "price": `"1.25"`, "paid": "false",
		"created": "1705321800123456", "note": "null"})
	expectJSON(t, t1[1].After, map[string]string{"created": "946677599000000", "paid": "true"})
	expectJSON(t, t1[2].After, map[string]string{"note": `"ü"`, "price": `"10.00"`, "created": "null"})

	t2 := byTx[txOrder[1]]
	sortByID(t2)
	if len(t2) != 2 || t2[0].Op != "u" || t2[1].Op != "d" {
		t.Fatalf("second transaction wrong:\n%s", dump(t2))
	}
	expectJSON(t, t2[0].After, map[string]string{"id": "1", "qty": "4", "item": `"apple"`})
	if t2[1].After != nil || len(t2[1].Before) != 1 || string(t2[1].Before["id"]) != "2" {
		t.Errorf("delete must carry only the key in before and null after: %s", t2[1].raw)
	}

	t3 := byTx[txOrder[2]]
	if len(t3) != 1 || t3[0].Op != "c" {
		t.Fatalf("insert then update in one transaction must be one c record:\n%s", dump(t3))
	}
	expectJSON(t, t3[0].After, map[string]string{"id": "4", "qty": "2"})

	t4 := byTx[txOrder[3]]
	sortByID(t4)
	if len(t4) != 2 || t4[0].Op != "d" || t4[1].Op != "c" {
		t.Fatalf("a primary key change must be a delete of the old key and an insert of the new:\n%s", dump(t4))
	}
	if string(t4[0].Before["id"]) != "3" || string(t4[1].After["id"]) != "30" {
		t.Errorf("key change records wrong:\n%s", dump(t4))
	}
	d.stop(t)
}

// TestKillMidStreamLosesNothing kills the daemon with SIGKILL while
// transactions stream, restarts it, and checks every committed row arrived.
func TestKillMidStreamLosesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{tables: []string{"public.events"}, shards: 2})
	h.exec(`CREATE TABLE events (id int PRIMARY KEY, payload text)`)
	d := h.start()

	const total = 3000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	committed := make(chan int, total)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(committed)
		conn := h.conn()
		defer conn.Close(context.Background())
		for i := 1; i <= total; i++ {
			if _, err := conn.Exec(ctx, `INSERT INTO events VALUES ($1, repeat('x', 200))`, i); err != nil {
				if ctx.Err() == nil {
					t.Errorf("insert %d: %v", i, err)
				}
				return
			}
			committed <- i
		}
	}()

	// Kill once a third of the rows are committed and some have streamed.
	for n := 0; n < total/3; n++ {
		<-committed
	}
	d.kill()
	d2 := h.start()
	wg.Wait()
	var last int
	for i := range committed {
		last = i
	}
	if last != 0 && last != total {
		t.Fatalf("writer stopped at %d", last)
	}

	seen := map[int]int{}
	h.pollRecords(120*time.Second, func(recs []cdcRecord) bool {
		clear(seen)
		for _, r := range recs {
			id, err := strconv.Atoi(string(r.After["id"]))
			if err != nil || r.Op != "c" {
				t.Fatalf("unexpected record %s", r.raw)
			}
			seen[id]++
		}
		return len(seen) == total
	})
	var missing []int
	for i := 1; i <= total; i++ {
		if seen[i] == 0 {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d committed rows never reached Kinesis: %v", len(missing), missing)
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	t.Logf("%d rows delivered after SIGKILL and restart, %d duplicates (allowed)", len(seen), dups)
	d2.stop(t)
}

func sortByID(recs []cdcRecord) {
	id := func(r cdcRecord) int {
		img := r.After
		if img == nil {
			img = r.Before
		}
		n, _ := strconv.Atoi(string(img["id"]))
		return n
	}
	sort.SliceStable(recs, func(i, j int) bool { return id(recs[i]) < id(recs[j]) })
}

func expectJSON(t *testing.T, img map[string]json.RawMessage, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := string(img[k]); got != v {
			t.Errorf("column %s = %s, want %s", k, got, v)
		}
	}
}

func dump(recs []cdcRecord) string {
	s := ""
	for _, r := range recs {
		s += r.raw + "\n"
	}
	return s
}
