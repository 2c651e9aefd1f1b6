package badinput

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestTableWithoutPrimaryKey: a table without a primary key is refused
// with the statement that gives it one; once it has one, the stream starts
// without a restart.
func TestTableWithoutPrimaryKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{})
	f.exec(`CREATE TABLE t (id int NOT NULL, v text)`)
	d := f.start()
	d.waitLog(held, `table "public"."t" has no primary key, so its records could not be keyed: run ALTER TABLE "public"."t" ADD PRIMARY KEY (…), or set keyless_tables = "full" on the stream to stream it without a key under REPLICA IDENTITY FULL`)
	f.exec(`ALTER TABLE t ADD PRIMARY KEY (id)`)
	f.waitStatus("ACTIVE")
	f.insert(1)
	wantIDs(t, f.waitRecords(1), "c", "1")
}

// TestReplicaIdentityIndexNotPK: REPLICA IDENTITY USING INDEX on a unique
// index that is not the primary key is refused, naming the index and the
// ALTER TABLE, when the stream may not set FULL itself.
func TestReplicaIdentityIndexNotPK(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noFull: true})
	f.exec(`CREATE TABLE t (id int8 PRIMARY KEY, ext uuid NOT NULL UNIQUE, n int)`)
	f.exec(`ALTER TABLE t REPLICA IDENTITY USING INDEX t_ext_key`)
	d := f.start()
	d.waitLog(held, `table "public"."t" has REPLICA IDENTITY USING INDEX "t_ext_key", which does not hold its whole primary key, so a deleted row would arrive without its primary key: run ALTER TABLE "public"."t" REPLICA IDENTITY FULL, or set set_replica_identity_full = true on the stream`)
}

// TestReplicaIdentityNothing: with set_replica_identity_full, a table with
// REPLICA IDENTITY NOTHING is set to FULL, and its deletes carry the
// primary key.
func TestReplicaIdentityNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{})
	f.exec(`CREATE TABLE t (id int8 PRIMARY KEY, n int)`)
	f.exec(`ALTER TABLE t REPLICA IDENTITY NOTHING`)
	d := f.start()
	f.waitStatus("ACTIVE")
	l := d.waitLogMsg("set REPLICA IDENTITY FULL")
	if l.str("table") != `"public"."t"` {
		t.Errorf("log line names table %q", l.str("table"))
	}
	f.exec(`INSERT INTO t VALUES (1, 1), (2, 2)`)
	f.exec(`DELETE FROM t`)
	recs := f.waitRecords(4)
	var deleted []string
	for _, r := range recs {
		if r.Op == "d" {
			deleted = append(deleted, string(r.Before["id"]))
		}
	}
	if len(deleted) != 2 || deleted[0] == deleted[1] {
		t.Errorf("deletes carry ids %q, want 1 and 2", deleted)
	}
}

// TestPartitionedTable: a partitioned table's changes are named after it,
// not its partitions, including a partition attached while streaming.
func TestPartitionedTable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{tables: []string{"public.p"}})
	f.exec(`CREATE TABLE p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id)`)
	f.exec(`CREATE TABLE p_a PARTITION OF p FOR VALUES FROM (0) TO (10)`)
	f.start()
	f.waitStatus("ACTIVE")
	f.exec(`INSERT INTO p VALUES (1, 'a')`)
	f.exec(`CREATE TABLE p_b PARTITION OF p FOR VALUES FROM (10) TO (20)`)
	f.exec(`INSERT INTO p VALUES (11, 'b')`)
	recs := f.waitRecords(2)
	for _, r := range recs {
		if r.Source.Schema != "public" || r.Source.Table != "p" {
			t.Errorf("record names %s.%s, want public.p", r.Source.Schema, r.Source.Table)
		}
	}
	wantIDs(t, recs, "c", "1", "11")
}

// external is a stream whose publication its owner made (own_publication
// = false).
func external(t *testing.T, publication string) *fixture {
	t.Helper()
	f := newFixture(t, options{stream: "own_publication = false"})
	f.exec(`CREATE TABLE t (id int PRIMARY KEY, v text)`)
	f.exec(publication)
	return f
}

// TestExternalPublicationMissingOperations: a publication that leaves out
// updates and deletes is refused with the ALTER PUBLICATION that adds them.
func TestExternalPublicationMissingOperations(t *testing.T) {
	t.Parallel()
	f := external(t, `CREATE PUBLICATION cdcd_pub FOR TABLE t WITH (publish = 'insert')`)
	d := f.start()
	d.waitLog(held, `publication "cdcd_pub" does not publish update, delete: run ALTER PUBLICATION "cdcd_pub" SET (publish = 'insert, update, delete, truncate'), or set own_publication = true to let cdcd manage it`)
}

// TestExternalPublicationColumnList: a column list would leave columns out
// of every record; it is refused with the statement that removes it.
func TestExternalPublicationColumnList(t *testing.T) {
	t.Parallel()
	f := external(t, `CREATE PUBLICATION cdcd_pub FOR TABLE t (id)`)
	d := f.start()
	d.waitLog(held, `publication "cdcd_pub" has a column list on "public"."t", so records would lack columns: run ALTER PUBLICATION "cdcd_pub" SET TABLE "public"."t", or set own_publication = true to let cdcd manage it`)
}

// TestExternalPublicationRowFilter: a row filter would drop changes; it is
// refused with the statement that removes it.
func TestExternalPublicationRowFilter(t *testing.T) {
	t.Parallel()
	f := external(t, `CREATE PUBLICATION cdcd_pub FOR TABLE t WHERE (id > 0)`)
	d := f.start()
	d.waitLog(held, `publication "cdcd_pub" has a row filter on "public"."t", so changes would be missing: run ALTER PUBLICATION "cdcd_pub" SET TABLE "public"."t", or set own_publication = true to let cdcd manage it`)
}

// TestUnknownColumnTypes: types cdcd has no encoding of its own for arrive
// as PostgreSQL's text output, exactly.
func TestUnknownColumnTypes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{})
	f.exec(`CREATE TYPE pair AS (a int, b text)`)
	f.exec(`CREATE TABLE t (id int PRIMARY KEY, pt point, r int4range, ip inet, m money, c pair, ts tsvector, cs pair[])`)
	f.start()
	f.waitStatus("ACTIVE")
	f.exec(`INSERT INTO t VALUES (1, '(1,2.5)', '[1,10)', '192.168.0.1/24', 12.34, ROW(1, 'x y'), 'a fat cat', ARRAY[ROW(2, 'z')::pair])`)
	recs := f.waitRecords(1)
	var want map[string]json.RawMessage
	err := f.db.QueryRow(context.Background(), `SELECT json_build_object('pt', pt::text, 'r', r::text, 'ip', ip::text,
		'm', m::text, 'c', c::text, 'ts', ts::text, 'cs', (SELECT json_agg(e::text) FROM unnest(cs) e)) FROM t`).Scan(&want)
	if err != nil {
		t.Fatal(err)
	}
	for col, w := range want {
		if got := recs[0].After[col]; string(got) != string(w) {
			t.Errorf("column %s: got %s, want %s", col, got, w)
		}
	}
}

// TestNonUTF8InSQLASCII: in a SQL_ASCII database text holds whatever
// bytes were written. cdcd warns at start; a value that is not UTF-8 stops
// the stream before its transaction with the cause named, and neither it
// nor what follows is confirmed, so nothing is lost.
func TestNonUTF8InSQLASCII(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{dbWith: `ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`})
	f.createTable()
	d := f.start()
	l := d.waitLogMsg("the source database has server_encoding SQL_ASCII: a text value that is not UTF-8 will stop the stream before its transaction; convert the database to UTF8 to stream it safely")
	if l.str("database") != f.db.Config().Database {
		t.Errorf("warning names database %q", l.str("database"))
	}
	f.waitStatus("ACTIVE")
	f.insert(1)
	f.waitRecords(1)
	f.exec(`INSERT INTO t VALUES (2, convert_from('\x636166e9', 'SQL_ASCII'))`)
	f.insert(3)
	d.waitLog("replication interrupted; reconnecting", `replication: ERROR: invalid byte sequence for encoding "UTF8": 0xe9 (SQLSTATE 22021): a text value in the source is not UTF-8 (a SQL_ASCII database stores any bytes) and PostgreSQL cannot send it, so the stream stops before that transaction: correct the value, then delete the stream and create it again with snapshot = true, or convert the database to UTF8`)
	wantIDs(t, f.records(), "c", "1")
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	// Rows 2 and 3 must still be in the slot; row 1 may be too: it was
	// delivered, but the session broke before its position was reported,
	// and delivering it again after a restart is allowed (at least once).
	// The inserts are ordered 1, 2, 3 and the confirmed position only moves
	// forward, so fewer than 2 means row 2 or 3 was confirmed undelivered.
	if n := f.pendingInserts(); n < 2 {
		t.Errorf("the slot holds %d inserts after its confirmed position, want rows 2 and 3 (and perhaps 1)", n)
	}
}

// pendingInserts counts the inserts the stopped stream's slot still holds
// past its confirmed position, read in the server's encoding so that text
// that is not UTF-8 does not stop the read.
func (f *fixture) pendingInserts() int {
	f.t.Helper()
	ctx := context.Background()
	f.exec(`SET client_encoding = 'SQL_ASCII'`)
	var n int
	var err error
	// The stopped daemon's walsender releases the slot a moment later.
	for range 100 {
		err = f.db.QueryRow(ctx, `SELECT count(*) FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
			'proto_version', '1', 'publication_names', 'cdcd_pub') WHERE get_byte(data, 0) = ascii('I')`, f.slot).Scan(&n)
		if err == nil {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.t.Fatal(err)
	return 0
}
