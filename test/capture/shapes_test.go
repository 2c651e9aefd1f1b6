package capture_test

import (
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/capture"
	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// encodeAll encodes the snapshot batches and then the handled transactions
// as the pipeline would, and decodes the records back, in order.
func (h *harness) encodeAll(ordering record.Ordering) []*record.Message {
	h.t.Helper()
	enc, err := record.NewEncoder(record.Config{SystemID: 1, Cluster: strings.Repeat("a", 26), Database: "db",
		Ordering: ordering, EmitTruncate: true, Types: h.src.Types()})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*record.Message
	var prev int64
	h.rec.mu.Lock()
	txns := slices.Clone(h.rec.snapshot)
	h.rec.mu.Unlock()
	for _, txn := range append(txns, h.rec.handled()...) {
		encoded, err := enc.Encode(txn, prev, time.Now())
		if err != nil {
			h.t.Fatalf("encode: %v", err)
		}
		prev = encoded.TsNs
		for _, r := range encoded.Records {
			m, err := record.Decode(r.Data)
			if err != nil {
				h.t.Fatalf("decode %s: %v", r.Data, err)
			}
			out = append(out, m)
		}
	}
	return out
}

// relreplident reads a table's replica identity setting.
func (h *harness) relreplident(table string) string {
	h.t.Helper()
	var ident string
	if err := h.db.QueryRow(h.ctx, `SELECT relreplident::text FROM pg_class WHERE oid = to_regclass($1)`, table).Scan(&ident); err != nil {
		h.t.Fatal(err)
	}
	return ident
}

// prepareErr runs Prepare with cfg and returns its error.
func (h *harness) prepareErr(cfg capture.Config) error {
	h.t.Helper()
	src, err := capture.New(withoutMetrics(cfg))
	if err != nil {
		h.t.Fatal(err)
	}
	_, err = src.Prepare(h.ctx, 0)
	return err
}

// TestReplicaIdentityWithoutThePrimaryKey: a table whose replica identity
// does not log its primary key (USING INDEX on another index, or NOTHING) is
// refused with the statement that fixes it, or set to REPLICA IDENTITY FULL
// when the stream allows it; then every delete carries its primary key, and
// several deletes in one transaction stay several records.
func TestReplicaIdentityWithoutThePrimaryKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.m")
	h.exec(`CREATE TABLE m (id int8 PRIMARY KEY, ext uuid NOT NULL UNIQUE, n int)`)
	for _, tc := range []struct{ alter, want string }{
		{`ALTER TABLE m REPLICA IDENTITY USING INDEX m_ext_key`, `table "public"."m" has REPLICA IDENTITY USING INDEX "m_ext_key", which does not hold its whole primary key`},
		{`ALTER TABLE m REPLICA IDENTITY NOTHING`, `table "public"."m" has REPLICA IDENTITY NOTHING`},
	} {
		h.exec(tc.alter)
		cfg := h.cfg
		cfg.SetReplicaIdentityFull = false
		err := h.prepareErr(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), `run ALTER TABLE "public"."m" REPLICA IDENTITY FULL, or set set_replica_identity_full = true`) {
			t.Fatalf("%s: Prepare: %v", tc.alter, err)
		}
	}
	h.exec(`ALTER TABLE m REPLICA IDENTITY USING INDEX m_ext_key`)
	h.start()
	if got := h.relreplident("public.m"); got != "f" {
		t.Fatalf("replica identity after Prepare with set_replica_identity_full: %q, want f", got)
	}
	h.walsender()
	h.exec(`INSERT INTO m SELECT g, gen_random_uuid(), g FROM generate_series(1, 3) g`)
	h.exec(`BEGIN; DELETE FROM m WHERE id = 1; DELETE FROM m WHERE id = 2; DELETE FROM m WHERE id = 3; COMMIT`)
	h.waitChanges(6)
	var deleted []string
	for _, m := range h.encodeAll(record.Row) {
		if m.Op == "d" {
			deleted = append(deleted, string(mustJSON(t, m.Before)))
		}
	}
	if strings.Join(deleted, " ") != `{"id":1} {"id":2} {"id":3}` {
		t.Fatalf("deletes' before images: %v, want each primary key", deleted)
	}
}

func mustJSON(t *testing.T, img record.RowImage) []byte {
	t.Helper()
	b, err := img.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// publication reads what a publication publishes: its operations and its
// tables, each with " cols" for a column list and " where" for a row filter.
func (h *harness) publication(name string) (ops string, tables []string) {
	h.t.Helper()
	err := h.db.QueryRow(h.ctx, `SELECT concat_ws(',', CASE WHEN pubinsert THEN 'insert' END, CASE WHEN pubupdate THEN 'update' END,
			CASE WHEN pubdelete THEN 'delete' END, CASE WHEN pubtruncate THEN 'truncate' END)
		FROM pg_publication WHERE pubname = $1`, name).Scan(&ops)
	if err != nil {
		h.t.Fatalf("read publication %s: %v", name, err)
	}
	rows, err := h.db.Query(h.ctx, `SELECT pr.prrelid::regclass::text || CASE WHEN pr.prattrs IS NOT NULL THEN ' cols' ELSE '' END
			|| CASE WHEN pr.prqual IS NOT NULL THEN ' where' ELSE '' END
		FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = $1 ORDER BY 1`, name)
	if err != nil {
		h.t.Fatal(err)
	}
	tables, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		h.t.Fatal(err)
	}
	return ops, tables
}

// TestOwnedPublicationMadeTheStreams: a publication the stream owns (the
// default) that someone made to publish only inserts, with a column list, a
// row filter and a table the stream does not list, is made exactly the
// stream's at start: updates and deletes arrive, with every column, and the
// other table's changes do not.
func TestOwnedPublicationMadeTheStreams(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.t", "public.u")
	h.exec(`CREATE TABLE t (id int PRIMARY KEY, a int, b int)`)
	h.exec(`CREATE TABLE u (id int PRIMARY KEY)`)
	h.exec(`CREATE TABLE other (id int PRIMARY KEY)`)
	h.exec(`CREATE PUBLICATION cdcd_pub FOR TABLE t (id, a) WHERE (a > 0), other WITH (publish = 'insert')`)
	h.start()
	if ops, tables := h.publication("cdcd_pub"); ops != "insert,update,delete,truncate" || strings.Join(tables, " ") != "t u" {
		t.Fatalf("publication after start: publish %q, tables %q; want every operation and exactly t and u", ops, tables)
	}
	h.walsender()
	h.exec(`INSERT INTO other VALUES (1)`)
	h.exec(`INSERT INTO t VALUES (1, 0, 1)`)
	h.exec(`UPDATE t SET b = 2`)
	h.exec(`DELETE FROM t`)
	got := h.waitChanges(3)
	var kinds []string
	for _, c := range got {
		kinds = append(kinds, string(c.Kind)+":"+c.Rel.Table+":"+strings.Join(columnNames(c.Rel), ","))
	}
	if want := "I:t:id,a,b U:t:id,a,b D:t:id,a,b"; strings.Join(kinds, " ") != want {
		t.Fatalf("changes %v, want %s", kinds, want)
	}

	// Tables removed from the stream leave the publication.
	h.stop()
	h.cfg.Tables = []string{"public.t"}
	if err := h.prepareErr(h.cfg); err != nil {
		t.Fatal(err)
	}
	if _, tables := h.publication("cdcd_pub"); strings.Join(tables, " ") != "t" {
		t.Fatalf("tables after u left the stream: %q", tables)
	}
}

// TestExternalPublicationRefused: with own_publication = false, a
// publication that lacks anything the stream needs is refused with the
// statements that fix it, and left as it was; a complete one is used as it
// is, and deleting the stream leaves it.
func TestExternalPublicationRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.t", "public.u")
	h.exec(`CREATE TABLE t (id int PRIMARY KEY, a int)`)
	h.exec(`CREATE TABLE u (id int PRIMARY KEY)`)
	h.cfg.ExternalPublication = true
	for _, tc := range []struct{ setup, want string }{
		{``, `publication "cdcd_pub" does not exist, and own_publication = false keeps cdcd from creating it: run CREATE PUBLICATION "cdcd_pub" FOR TABLE "public"."t", "public"."u" WITH (publish_via_partition_root = true), or set own_publication = true`},
		{`CREATE PUBLICATION cdcd_pub FOR TABLE t, u WITH (publish = 'insert')`,
			`publication "cdcd_pub" does not publish update, delete: run ALTER PUBLICATION "cdcd_pub" SET (publish = 'insert, update, delete, truncate'), or set own_publication = true to let cdcd manage it`},
		{`ALTER PUBLICATION cdcd_pub SET (publish = 'insert, update, delete'); ALTER PUBLICATION cdcd_pub DROP TABLE u`,
			`publication "cdcd_pub" lacks the stream's tables "public"."u": run ALTER PUBLICATION "cdcd_pub" ADD TABLE "public"."u", or set own_publication = true`},
		{`ALTER PUBLICATION cdcd_pub SET TABLE t (id), u WHERE (id > 0)`,
			`publication "cdcd_pub" has a column list on "public"."t", so records would lack columns; has a row filter on "public"."u", so changes would be missing: run ALTER PUBLICATION "cdcd_pub" SET TABLE "public"."t", "public"."u", or set own_publication = true`},
	} {
		if tc.setup != "" {
			h.exec(tc.setup)
		}
		if err := h.prepareErr(h.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("after %q: Prepare: %v\nwant %s", tc.setup, err, tc.want)
		}
	}
	if ops, tables := h.publication("cdcd_pub"); ops != "insert,update,delete" || strings.Join(tables, " ") != "t cols u where" {
		t.Fatalf("a publication cdcd does not own was changed: %q %q", ops, tables)
	}
	h.cfg.EmitTruncate = true
	h.exec(`ALTER PUBLICATION cdcd_pub SET TABLE t, u`)
	if err := h.prepareErr(h.cfg); err == nil || !strings.Contains(err.Error(), `does not publish truncate`) {
		t.Fatalf("emit_truncate with a publication without truncate: %v", err)
	}
	h.exec(`ALTER PUBLICATION cdcd_pub SET (publish = 'insert, update, delete, truncate')`)
	h.start()
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if err := h.src.Drop(h.ctx); err != nil {
		t.Fatal(err)
	}
	if ops, _ := h.publication("cdcd_pub"); ops == "" {
		t.Fatal("the publication is gone")
	}
}

// TestPartitionedTable: a partitioned table streams through its root.
// Snapshot rows and changes are named after the configured table, each
// existing row is read once (the partition listed beside its root too),
// a row moving between partitions is a delete and an insert of the root, a
// partition attached while streaming flows without a restart, and a
// partition whose replica identity would not key its deletes is refused
// like any table.
func TestPartitionedTable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.p", "public.p_a")
	h.exec(`CREATE TABLE p (id int8, k int, v int, PRIMARY KEY (id, k)) PARTITION BY LIST (k)`)
	h.exec(`CREATE TABLE p_a PARTITION OF p FOR VALUES IN (1)`)
	h.exec(`CREATE TABLE p_b PARTITION OF p FOR VALUES IN (2)`)
	h.exec(`CREATE UNIQUE INDEX p_b_v ON p_b (v)`)
	h.exec(`ALTER TABLE p_b ALTER v SET NOT NULL, REPLICA IDENTITY USING INDEX p_b_v`)
	h.exec(`INSERT INTO p VALUES (1, 1, 10), (2, 2, 20)`)
	cfg := h.cfg
	cfg.SetReplicaIdentityFull = false
	if err := h.prepareErr(cfg); err == nil || !strings.Contains(err.Error(), `partition "public"."p_b" of table "public"."p" has REPLICA IDENTITY USING INDEX "p_b_v"`) {
		t.Fatalf("Prepare with a partition keyed by another index: %v", err)
	}
	h.cfg.Snapshot = true
	h.start()
	h.waitFor(30*time.Second, "the snapshot", func() bool { h.rec.mu.Lock(); defer h.rec.mu.Unlock(); return h.rec.snapDone })
	if got := h.relreplident("public.p_b"); got != "f" {
		t.Fatalf("partition p_b's replica identity after Prepare: %q, want f", got)
	}
	var read []string
	for _, b := range h.rec.snapshot {
		for _, c := range b.Changes {
			read = append(read, c.Rel.Table+":"+text(c.Rel, c.New, "id"))
		}
	}
	if slices.Sort(read); strings.Join(read, " ") != "p:1 p:2" {
		t.Fatalf("snapshot rows %v, want each row once, named p", read)
	}
	if _, tables := h.publication("cdcd_pub"); strings.Join(tables, " ") != "p" {
		t.Fatalf("publication tables %v, want the root alone", tables)
	}

	h.walsender()
	h.exec(`INSERT INTO p VALUES (3, 1, 30), (4, 2, 40)`)
	h.exec(`UPDATE p SET v = v + 1 WHERE id IN (1, 2)`)
	h.exec(`UPDATE p SET k = 2 WHERE id = 3`) // moves the row to p_b
	h.exec(`DELETE FROM p WHERE id = 4`)
	h.exec(`CREATE TABLE p_c (LIKE p)`)
	h.exec(`ALTER TABLE p ATTACH PARTITION p_c FOR VALUES IN (3)`)
	h.exec(`INSERT INTO p VALUES (5, 3, 50)`)
	h.exec(`UPDATE p SET v = 51 WHERE id = 5`)
	got := h.waitChanges(9)
	var kinds []string
	for _, c := range got {
		kinds = append(kinds, string(c.Kind)+":"+c.Rel.Schema+"."+c.Rel.Table)
	}
	if want := strings.Repeat("I:public.p ", 2) + strings.Repeat("U:public.p ", 2) + "D:public.p I:public.p D:public.p I:public.p U:public.p"; strings.Join(kinds, " ") != want {
		t.Fatalf("changes %v\nwant %s", kinds, want)
	}

	// What a consumer applies, snapshot first, converges to the table.
	rows := map[string]string{}
	for _, m := range h.encodeAll(record.Unordered) {
		if m.Source.Table != "p" {
			t.Errorf("record named %s.%s", m.Source.Schema, m.Source.Table)
		}
		if m.Op == "d" {
			delete(rows, string(mustJSON(t, m.Before)))
			continue
		}
		key, err := m.After.Project([]string{"id", "k"})
		if err != nil {
			t.Fatal(err)
		}
		rows[string(mustJSON(t, key))] = string(mustJSON(t, m.After))
	}
	want := map[string]string{
		`{"id":1,"k":1}`: `{"id":1,"k":1,"v":11}`, `{"id":2,"k":2}`: `{"id":2,"k":2,"v":21}`,
		`{"id":3,"k":2}`: `{"id":3,"k":2,"v":30}`, `{"id":5,"k":3}`: `{"id":5,"k":3,"v":51}`,
	}
	if !maps.Equal(rows, want) {
		t.Fatalf("applied rows %v\nwant %v", rows, want)
	}
}

// TestKeylessTable: a table without a primary key is refused unless the
// stream opts in, each time with the statement that fixes it; opted in, it
// streams under REPLICA IDENTITY FULL (set by cdcd when allowed), every
// change is its own record, and updates and deletes carry the whole old row
// in before, so applying them in order rebuilds the table.
func TestKeylessTable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.k", "public.ki")
	h.exec(`CREATE TABLE k (a int, b text)`)
	h.exec(`CREATE TABLE ki (a int NOT NULL, b int)`)
	h.exec(`CREATE UNIQUE INDEX ki_a ON ki (a)`)
	h.exec(`ALTER TABLE ki REPLICA IDENTITY USING INDEX ki_a`)
	cfg := h.cfg
	cfg.Tables = []string{"public.ki"}
	if err := h.prepareErr(cfg); err == nil || !strings.Contains(err.Error(),
		`table "public"."ki" has no primary key, so its records could not be keyed: run ALTER TABLE "public"."ki" ADD PRIMARY KEY USING INDEX "ki_a", or set keyless_tables = "full" on the stream`) {
		t.Fatalf("Prepare with a table keyed by a unique index only: %v", err)
	}
	cfg.KeylessTables, cfg.SetReplicaIdentityFull = true, false
	if err := h.prepareErr(cfg); err == nil || !strings.Contains(err.Error(),
		`table "public"."ki" has no primary key, and keyless_tables = "full" streams such a table only with REPLICA IDENTITY FULL, which logs the whole old row: run ALTER TABLE "public"."ki" REPLICA IDENTITY FULL, or set set_replica_identity_full = true`) {
		t.Fatalf("Prepare opted in without REPLICA IDENTITY FULL: %v", err)
	}

	h.cfg.KeylessTables = true
	h.start()
	for _, tbl := range []string{"public.k", "public.ki"} {
		if got := h.relreplident(tbl); got != "f" {
			t.Fatalf("%s replica identity %q, want f", tbl, got)
		}
	}
	h.walsender()
	h.exec(`BEGIN; INSERT INTO k VALUES (1, 'x'), (1, 'x'), (2, 'y'); INSERT INTO ki VALUES (1, 10); COMMIT`)
	h.exec(`BEGIN; UPDATE k SET b = 'z' WHERE a = 2; DELETE FROM k WHERE ctid = (SELECT min(ctid) FROM k WHERE a = 1); UPDATE ki SET a = 5; COMMIT`)
	h.waitChanges(7)
	var recs []string
	rows := map[string]int{} // the table k as a multiset of rows
	for _, m := range h.encodeAll(record.Row) {
		before, after := "null", "null"
		if m.Before != nil {
			before = string(mustJSON(t, m.Before))
		}
		if m.After != nil {
			after = string(mustJSON(t, m.After))
		}
		recs = append(recs, m.Op+" "+m.Source.Table+" "+before+" "+after)
		if m.Source.Table == "k" {
			rows[before]--
			rows[after]++
		}
	}
	want := []string{
		`c k null {"a":1,"b":"x"}`, `c k null {"a":1,"b":"x"}`, `c k null {"a":2,"b":"y"}`, `c ki null {"a":1,"b":10}`,
		`u k {"a":2,"b":"y"} {"a":2,"b":"z"}`, `d k {"a":1,"b":"x"} null`, `u ki {"a":1,"b":10} {"a":5,"b":10}`,
	}
	if !slices.Equal(recs, want) {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(recs, "\n"), strings.Join(want, "\n"))
	}
	delete(rows, "null")
	if want := map[string]int{`{"a":1,"b":"x"}`: 1, `{"a":2,"b":"y"}`: 0, `{"a":2,"b":"z"}`: 1}; !maps.Equal(rows, want) {
		t.Fatalf("table k rebuilt from the records: %v, want %v", rows, want)
	}
}

// TestGeneratedColumnsWarned: before PostgreSQL 18 pgoutput cannot publish
// stored generated columns; stream start says so, naming the table and the
// columns, and records hold every other column.
func TestGeneratedColumnsWarned(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.g")
	var version int
	if err := h.db.QueryRow(h.ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version >= 180000 {
		t.Skip("PostgreSQL 18 publishes stored generated columns")
	}
	h.exec(`CREATE TABLE g (id int PRIMARY KEY, a int, twice int GENERATED ALWAYS AS (a * 2) STORED, b int,
		thrice int GENERATED ALWAYS AS (a * 3) STORED)`)
	var logs testenv.SyncBuffer
	h.cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	h.start()
	want := `level=WARN msg="PostgreSQL before 18 does not publish stored generated columns: they are absent from after" table="\"public\".\"g\"" columns=twice,thrice`
	if !strings.Contains(logs.String(), want) {
		t.Fatalf("stream start logged:\n%s\nwant a line with %s", logs.String(), want)
	}
	h.walsender()
	h.exec(`INSERT INTO g (id, a, b) VALUES (1, 2, 3)`)
	h.waitChanges(1)
	if got := h.encodeAll(record.Unordered); len(got) != 1 || string(mustJSON(t, got[0].After)) != `{"id":1,"a":2,"b":3}` {
		t.Fatalf("records %v, want the row without its generated columns", got)
	}
}
