package capture_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/record"
)

// TestEveryMessage drives each kind of pgoutput message through a real
// server: inserts, updates without and with an old tuple (key change,
// REPLICA IDENTITY FULL), deletes, truncates, logical decoding messages
// (transactional and not), a transaction from a replication origin, and
// Type messages for an enum, its array and a domain.
func TestEveryMessage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.t", "public.fulltab")
	h.exec(`CREATE TYPE mood AS ENUM ('sad', 'ok')`)
	h.exec(`CREATE DOMAIN posint AS int CHECK (VALUE > 0)`)
	h.exec(`CREATE TABLE t (id int PRIMARY KEY, n int, m mood, p posint)`)
	h.exec(`CREATE TABLE fulltab (id int PRIMARY KEY, v int, ms mood[])`)
	h.exec(`ALTER TABLE fulltab REPLICA IDENTITY FULL`)
	h.start()
	h.walsender()

	h.exec(`INSERT INTO t VALUES (1, 10, 'ok', 5)`)
	h.exec(`UPDATE t SET n = 11 WHERE id = 1`)
	h.exec(`UPDATE t SET id = 2 WHERE id = 1`)
	h.exec(`INSERT INTO fulltab VALUES (1, 1, '{sad,ok}')`)
	h.exec(`UPDATE fulltab SET v = 2`)
	h.exec(`DELETE FROM t WHERE id = 2`)
	h.exec(`TRUNCATE fulltab`)
	h.exec(`BEGIN; SELECT pg_logical_emit_message(true, 'cdcd', 'in txn'); INSERT INTO t VALUES (3, 0, NULL, NULL); COMMIT`)
	h.exec(`SELECT pg_logical_emit_message(false, 'cdcd', 'outside')`)
	// Origins belong to the whole server: a name of this test's own.
	h.exec(`SELECT pg_replication_origin_create($1)`, h.slot)
	t.Cleanup(func() { h.exec(`SELECT pg_replication_origin_drop($1)`, h.slot) })
	h.exec(`SELECT pg_replication_origin_session_setup($1)`, h.slot)
	h.exec(`INSERT INTO t VALUES (4, 0, 'sad', 1)`)
	h.exec(`SELECT pg_replication_origin_session_reset()`)

	got := h.waitChanges(9)
	var kinds []string
	for _, c := range got {
		kind := string(c.Kind) + ":" + c.Rel.Table
		if c.Old != nil {
			kind += "+old"
		}
		kinds = append(kinds, kind)
	}
	want := []string{"I:t", "U:t", "U:t+old", "I:fulltab", "U:fulltab+old", "D:t+old", "T:fulltab", "I:t", "I:t"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("changes %v, want %v", kinds, want)
	}
	if v := text(got[2].Rel, got[2].Old, "id"); v != "1" {
		t.Errorf("key change old id = %s, want 1", v)
	}
	if v := text(got[4].Rel, got[4].Old, "v"); v != "1" {
		t.Errorf("FULL identity old v = %s, want 1", v)
	}
	if !got[0].Rel.Columns[0].Key || got[0].Rel.Columns[1].Key || !got[0].Rel.HasKey {
		t.Errorf("key flags of t: %+v", got[0].Rel.Columns)
	}
	if v := text(got[3].Rel, got[3].New, "ms"); v != "{sad,ok}" {
		t.Errorf("enum array arrived as %q", v)
	}

	// The enum, its array and the domain resolve for the encoder.
	types := h.src.Types()
	for _, col := range []struct {
		name string
		kind record.TypeKind
	}{{"m", record.TypeEnum}, {"ms", record.TypeArray}, {"p", record.TypeDomain}} {
		var oid uint32
		for _, c := range append(got[0].Rel.Columns, got[3].Rel.Columns...) {
			if c.Name == col.name {
				oid = c.TypeOID
			}
		}
		info, ok := types.LookupType(oid)
		if !ok || info.Kind != col.kind {
			t.Errorf("type of column %s (oid %d): %+v, %v; want kind %c", col.name, oid, info, ok, col.kind)
		}
		if col.kind == record.TypeArray {
			if elem, ok := types.LookupType(info.ElemOID); !ok || elem.Kind != record.TypeEnum {
				t.Errorf("element type of %s: %+v, %v", col.name, elem, ok)
			}
		}
	}
	h.waitFor(10*time.Second, "two logical messages counted", func() bool { return h.metric("cdcd_capture_logical_messages_total") == 2 })
	if n := h.metric("cdcd_capture_changes_total"); n != 9 {
		t.Errorf("changes metric %v, want 9", n)
	}
	if n := h.metric("cdcd_capture_transactions_total"); n < 9 {
		t.Errorf("transactions metric %v, want at least 9", n)
	}
}

// TestDDLMidStream: ADD, DROP, RENAME COLUMN and a type change are reflected
// from the transaction that commits them on, including a change made after
// the DDL inside the same transaction.
func TestDDLMidStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.t")
	h.exec(`CREATE TABLE t (id int PRIMARY KEY, a int, b int)`)
	h.start()
	h.walsender()

	h.exec(`INSERT INTO t VALUES (1, 1, 1)`)
	h.exec(`ALTER TABLE t ADD COLUMN c text`)
	h.exec(`INSERT INTO t VALUES (2, 2, 2, 'two')`)
	h.exec(`ALTER TABLE t DROP COLUMN a`)
	h.exec(`INSERT INTO t VALUES (3, 3, 'three')`)
	h.exec(`ALTER TABLE t RENAME COLUMN b TO bee`)
	h.exec(`INSERT INTO t VALUES (4, 4, 'four')`)
	h.exec(`ALTER TABLE t ALTER COLUMN bee TYPE bigint`)
	h.exec(`INSERT INTO t VALUES (5, 5000000000, 'five')`)
	h.exec(`BEGIN; INSERT INTO t VALUES (6, 6, 'six'); ALTER TABLE t ADD COLUMN d int; INSERT INTO t VALUES (7, 7, 'seven', 7); COMMIT`)

	got := h.waitChanges(7)
	want := []struct {
		cols string
		typ  uint32 // of the second column
		val  string
	}{
		{"id,a,b", 23, "1"},
		{"id,a,b,c", 23, "2"},
		{"id,b,c", 23, "3"},
		{"id,bee,c", 23, "4"},
		{"id,bee,c", 20, "5000000000"},
		{"id,bee,c", 20, "6"},
		{"id,bee,c,d", 20, "7"},
	}
	for i, w := range want {
		c := got[i]
		if cols := strings.Join(columnNames(c.Rel), ","); cols != w.cols || c.Rel.Columns[1].TypeOID != w.typ {
			t.Errorf("change %d: columns %s (second of type %d), want %s (%d)", i, cols, c.Rel.Columns[1].TypeOID, w.cols, w.typ)
			continue
		}
		if v := string(c.New[1].Data); v != w.val {
			t.Errorf("change %d: second column %q, want %q", i, v, w.val)
		}
	}
}

// TestDDLInStreamedTransaction: a transaction large enough to be streamed
// in progress alters its table halfway; its changes keep the shape they
// were made with, and later transactions see the new one.
func TestDDLInStreamedTransaction(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.t")
	h.cfg.DSN = h.dsn + "&options=-c%20logical_decoding_work_mem%3D64kB"
	h.exec(`CREATE TABLE t (id int PRIMARY KEY, a int)`)
	h.start()
	h.walsender()
	h.exec(`BEGIN;
		INSERT INTO t SELECT g, g FROM generate_series(1, 3000) g;
		ALTER TABLE t ADD COLUMN b int;
		INSERT INTO t SELECT g, g, -g FROM generate_series(3001, 6000) g;
		COMMIT`)
	h.exec(`INSERT INTO t VALUES (0, 0, 0)`)
	got := h.waitChanges(6001)
	for i, c := range got {
		want := "id,a,b"
		if i < 3000 {
			want = "id,a"
		}
		if cols := strings.Join(columnNames(c.Rel), ","); cols != want {
			t.Fatalf("change %d (id %s): columns %s, want %s", i, text(c.Rel, c.New, "id"), cols, want)
		}
	}
	var streamed int64
	h.waitFor(10*time.Second, "slot statistics", func() bool {
		err := h.db.QueryRow(h.ctx, `SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = $1`, h.slot).Scan(&streamed)
		return err == nil && streamed > 0
	})
}

// TestAbortsAndSavepoints: a rolled-back large transaction leaves nothing,
// and rolled-back subtransactions (savepoints, nested ones included) drop
// exactly their rows, with PostgreSQL streaming the transactions in progress
// (protocol 2, logical_decoding_work_mem at its 64kB minimum) and without.
func TestAbortsAndSavepoints(t *testing.T) {
	t.Parallel()
	for _, streaming := range []bool{true, false} {
		t.Run(fmt.Sprintf("streaming=%v", streaming), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, "", "public.t")
			// libpq's URL syntax: %20 for the space, which url.Values
			// would encode as "+".
			h.cfg.DSN = h.dsn + "&options=-c%20logical_decoding_work_mem%3D64kB"
			h.cfg.DisableStreaming = !streaming
			h.exec(`CREATE TABLE t (id int PRIMARY KEY, tag text)`)
			h.start()
			h.walsender()

			const n = 5000
			h.exec(fmt.Sprintf(`BEGIN; INSERT INTO t SELECT g, 'aborted' FROM generate_series(1, %d) g; ROLLBACK`, 4*n))
			h.exec(fmt.Sprintf(`BEGIN;
				INSERT INTO t SELECT g, 'top' FROM generate_series(1, %[1]d) g;
				SAVEPOINT a; INSERT INTO t SELECT g, 'a' FROM generate_series(%[1]d+1, 2*%[1]d) g; ROLLBACK TO a;
				SAVEPOINT b; INSERT INTO t SELECT g, 'b' FROM generate_series(2*%[1]d+1, 3*%[1]d) g; RELEASE b;
				SAVEPOINT c; INSERT INTO t SELECT g, 'c' FROM generate_series(3*%[1]d+1, 4*%[1]d) g;
				SAVEPOINT d; INSERT INTO t SELECT g, 'd' FROM generate_series(4*%[1]d+1, 5*%[1]d) g; RELEASE d;
				ROLLBACK TO c;
				SAVEPOINT e; INSERT INTO t SELECT g, 'e' FROM generate_series(5*%[1]d+1, 6*%[1]d) g; ROLLBACK TO e;
				INSERT INTO t SELECT g, 'top2' FROM generate_series(6*%[1]d+1, 7*%[1]d) g;
				COMMIT`, n))
			h.exec(`INSERT INTO t VALUES (0, 'marker')`)

			h.waitFor(60*time.Second, "the marker", func() bool {
				ch := h.rec.changes()
				return len(ch) > 0 && text(ch[len(ch)-1].Rel, ch[len(ch)-1].New, "tag") == "marker"
			})
			txns := h.rec.handled()
			var tags []string
			count := map[string]int{}
			for _, txn := range txns {
				for _, c := range txn.Changes {
					tag := text(c.Rel, c.New, "tag")
					if count[tag] == 0 {
						tags = append(tags, tag)
					}
					count[tag]++
				}
			}
			if want := []string{"top", "b", "top2", "marker"}; !slices.Equal(tags, want) {
				t.Fatalf("rows by tag in order %v (%v), want %v", tags, count, want)
			}
			if count["top"] != n || count["b"] != n || count["top2"] != n {
				t.Fatalf("row counts %v, want %d of top, b and top2", count, n)
			}

			var streamed int64
			h.waitFor(10*time.Second, "slot statistics", func() bool {
				err := h.db.QueryRow(h.ctx, `SELECT stream_txns + spill_txns FROM pg_stat_replication_slots WHERE slot_name = $1`, h.slot).Scan(&streamed)
				return err == nil && streamed > 0
			})
			err := h.db.QueryRow(h.ctx, `SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = $1`, h.slot).Scan(&streamed)
			if err != nil {
				t.Fatal(err)
			}
			if streaming != (streamed > 0) {
				t.Fatalf("streaming=%v but the server streamed %d transactions", streaming, streamed)
			}
			if streaming && h.metric("cdcd_capture_streamed_aborts_total") < 1 {
				t.Errorf("the aborted streamed transaction was not counted")
			}
		})
	}
}

// TestIdleSlotAdvances: while the published table is quiet and another
// table is busy, the slot's confirmed_flush_lsn still moves forward, so the
// server can recycle WAL; nothing is handed over.
func TestIdleSlotAdvances(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.quiet")
	h.exec(`CREATE TABLE quiet (id int PRIMARY KEY)`)
	h.exec(`CREATE TABLE busy (id serial PRIMARY KEY, v int)`)
	h.start()
	h.walsender()
	_, before := h.slotRow()

	for range 30 {
		h.exec(`INSERT INTO busy (v) SELECT g FROM generate_series(1, 100) g`)
	}
	end := h.insertLSN()
	// Writes go on while waiting: the server reports positions it has
	// decoded, and the end of the WAL moves only with more WAL.
	h.waitFor(20*time.Second, "the slot to pass the busy table's writes", func() bool {
		h.exec(`INSERT INTO busy (v) VALUES (0)`)
		_, confirmed := h.slotRow()
		return confirmed >= end
	})
	_, after := h.slotRow()
	if after <= before {
		t.Fatalf("confirmed_flush_lsn did not advance: %X -> %X", before, after)
	}
	if n := len(h.rec.changes()); n != 0 {
		t.Fatalf("%d changes of an unpublished table handed over", n)
	}
}
