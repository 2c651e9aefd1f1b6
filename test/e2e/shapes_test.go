package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReplicaIdentityIndexEndToEnd: a table whose replica identity is a
// unique index other than its primary key streams keyed by the primary key
// (cdcd sets REPLICA IDENTITY FULL): deletes, several in one transaction
// and a primary key change among them, leave the stream's rows equal to the
// source's.
func TestReplicaIdentityIndexEndToEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{tables: []string{"public.m"}, shards: 2})
	h.exec(`CREATE TABLE m (id int8 PRIMARY KEY, ext uuid NOT NULL UNIQUE, n int)`)
	h.exec(`ALTER TABLE m REPLICA IDENTITY USING INDEX m_ext_key`)
	d := h.start()
	h.exec(`INSERT INTO m SELECT g, gen_random_uuid(), g FROM generate_series(1, 20) g`)
	h.exec(`BEGIN; DELETE FROM m WHERE id = 1; DELETE FROM m WHERE id = 2; DELETE FROM m WHERE id = 3; COMMIT`)
	h.exec(`UPDATE m SET n = n * 10 WHERE id > 15`)
	h.exec(`UPDATE m SET id = 100 WHERE id = 4`)
	h.exec(`DELETE FROM m WHERE id IN (5, 100)`)

	shards := h.waitKeyed("m", []string{"id"}, []string{"id", "ext", "n"})
	each(shards, func(r wireRecord) {
		if r.Op == "d" && (len(r.Before) != 1 || string(r.Before["id"]) == "null") {
			t.Errorf("a delete's before must be the primary key: %v", r.Before)
		}
	})
	d.stop(t)
	if logs := d.Logs(); !strings.Contains(logs, "set REPLICA IDENTITY FULL") {
		t.Errorf("the daemon did not log setting REPLICA IDENTITY FULL:\n%s", logs)
	}
}

// TestOwnedPublicationEndToEnd: the stream's publication exists already,
// made by someone to publish only inserts of some columns, and holds a
// table the stream does not list. cdcd owns it (the default) and makes it
// the stream's: the stream's rows equal the source's, every column and
// every operation, and the other table never reaches Kinesis.
func TestOwnedPublicationEndToEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{tables: []string{"public.t"}, shards: 2})
	h.exec(`CREATE TABLE t (id int PRIMARY KEY, a int, b text)`)
	h.exec(`CREATE TABLE other (id int PRIMARY KEY)`)
	h.exec(`CREATE PUBLICATION cdcd_e2e FOR TABLE t (id, a), other WITH (publish = 'insert')`)
	d := h.start()
	h.exec(`INSERT INTO t SELECT g, g, 'v' || g FROM generate_series(1, 10) g`)
	h.exec(`INSERT INTO other VALUES (1)`)
	h.exec(`UPDATE t SET b = 'changed' WHERE id <= 5`)
	h.exec(`DELETE FROM t WHERE id IN (2, 7)`)

	shards := h.waitKeyed("t", []string{"id"}, []string{"id", "a", "b"})
	each(shards, func(r wireRecord) {
		if r.Source.Table != "t" {
			t.Errorf("a record of a table the stream does not list: %s.%s", r.Source.Schema, r.Source.Table)
		}
	})
	d.stop(t)
}

// TestPartitionedTableEndToEnd: a partitioned table streams through its
// root: rows written to any partition, moved between partitions, and
// written to a partition attached while cdcd runs, all reach Kinesis named
// after the configured table, and the stream's rows equal the source's.
func TestPartitionedTableEndToEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{tables: []string{"public.p"}, shards: 2, extra: "snapshot = true"})
	h.exec(`CREATE TABLE p (id int8, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k)`)
	h.exec(`CREATE TABLE p_a PARTITION OF p FOR VALUES IN (1)`)
	h.exec(`CREATE TABLE p_b PARTITION OF p FOR VALUES IN (2)`)
	h.exec(`INSERT INTO p SELECT g, 1 + g % 2, 'old' FROM generate_series(1, 10) g`)
	d := h.start()
	h.exec(`INSERT INTO p SELECT g, 1 + g % 2, 'new' FROM generate_series(11, 20) g`)
	h.exec(`UPDATE p SET v = 'changed' WHERE id % 3 = 0`)
	h.exec(`UPDATE p SET k = 2 WHERE id IN (1, 11)`) // to the other partition
	h.exec(`DELETE FROM p WHERE id IN (4, 5)`)
	h.exec(`CREATE TABLE p_c (LIKE p)`)
	h.exec(`ALTER TABLE p ATTACH PARTITION p_c FOR VALUES IN (3)`)
	h.exec(`INSERT INTO p VALUES (30, 3, 'attached'), (31, 3, 'attached')`)
	h.exec(`UPDATE p SET k = 3 WHERE id = 2`)
	h.exec(`DELETE FROM p WHERE id = 31`)

	shards := h.waitKeyed("p", []string{"id", "k"}, []string{"id", "k", "v"})
	each(shards, func(r wireRecord) {
		if r.Source.Table != "p" {
			t.Errorf("a record named %s.%s, not after the configured table", r.Source.Schema, r.Source.Table)
		}
	})
	d.stop(t)
}

// TestKeylessTableEndToEnd: with keyless_tables = "full", a table without a
// primary key streams under REPLICA IDENTITY FULL; in ROW ordering all its
// records share one partition key, so one shard holds them in commit order,
// and applying them in that order (insert after, remove before) rebuilds
// the table, duplicate rows included.
func TestKeylessTableEndToEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{tables: []string{"public.k"}, shards: 2, ordering: "ROW", extra: `keyless_tables = "full"`})
	h.exec(`CREATE TABLE k (a int, b text)`)
	d := h.start()
	h.exec(`INSERT INTO k SELECT g % 4, 'v' FROM generate_series(1, 12) g`)
	h.exec(`BEGIN; UPDATE k SET b = 'w' WHERE a = 1; DELETE FROM k WHERE ctid = (SELECT min(ctid) FROM k WHERE a = 2); COMMIT`)
	h.exec(`UPDATE k SET a = 9 WHERE ctid = (SELECT min(ctid) FROM k WHERE a = 3)`)
	h.exec(`DELETE FROM k WHERE a = 0`)

	want := map[string]string{}
	for row, n := range h.sourceMultiset(context.Background(), "k") {
		want[row] = strconv.Itoa(n)
	}
	shards := h.waitConverged(60*time.Second, want, func(s [][]wireRecord) map[string]string {
		return keylessReplica(t, s, "public", "k")
	})
	keys := map[string]bool{}
	each(shards, func(r wireRecord) {
		keys[r.partitionKey] = true
	})
	if len(keys) != 1 {
		t.Errorf("records of a table without a key under %d partition keys, want 1", len(keys))
	}
	d.stop(t)
}

// keylessReplica applies the records of a table without a key in shard
// order to a multiset of rows, and returns each row's count.
func keylessReplica(t *testing.T, shards [][]wireRecord, schema, table string) map[string]string {
	counts := map[string]int{}
	each(shards, func(r wireRecord) {
		if r.Source.Schema != schema || r.Source.Table != table {
			return
		}
		if r.Op != "c" && r.Op != "r" {
			if r.Before == nil {
				t.Fatalf("op %q without the old row in before", r.Op)
			}
			counts[canonical(r.Before, nil)]--
		}
		if r.After != nil {
			counts[canonical(r.After, nil)]++
		}
	})
	out := map[string]string{}
	for row, n := range counts {
		if n != 0 {
			out[row] = strconv.Itoa(n)
		}
	}
	return out
}

// sourceMultiset reads table's rows as JSON objects with their counts.
func (h *harness) sourceMultiset(ctx context.Context, table string) map[string]int {
	h.t.Helper()
	out := map[string]int{}
	for _, img := range h.sourceImages(ctx, table, []string{"*"}) {
		out[canonical(img, nil)]++
	}
	return out
}

// TestGeneratedColumnsEndToEnd: on PostgreSQL before 18 the daemon warns
// at stream start that a table's stored generated columns are absent from
// its records, and the stream's rows equal the source's other columns.
func TestGeneratedColumnsEndToEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{tables: []string{"public.g"}, shards: 2})
	var version int
	if err := h.db.QueryRow(context.Background(), `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version >= 180000 {
		t.Skip("PostgreSQL 18 publishes stored generated columns")
	}
	h.exec(`CREATE TABLE g (id int PRIMARY KEY, a int, twice int GENERATED ALWAYS AS (a * 2) STORED)`)
	d := h.start()
	h.exec(`INSERT INTO g (id, a) SELECT g, g FROM generate_series(1, 5) g`)
	h.exec(`UPDATE g SET a = 10 WHERE id = 2`)
	h.exec(`DELETE FROM g WHERE id = 3`)
	h.waitKeyed("g", []string{"id"}, []string{"id", "a"})
	d.stop(t)
	if logs := d.Logs(); !strings.Contains(logs, `msg="PostgreSQL before 18 does not publish stored generated columns: they are absent from after"`) ||
		!strings.Contains(logs, `columns=twice`) {
		t.Errorf("the daemon did not warn that g.twice is absent:\n%s", logs)
	}
}
