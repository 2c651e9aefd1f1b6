package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// Schema changes while streaming (docs/records.md#schema-changes): each DDL
// statement on a stream's table, once while cdcd runs (the changes before
// it delivered first) and once while it is stopped (changes, the DDL and
// more changes, all before cdcd reads them). A consumer reading Kinesis on
// its own must reach the source's rows, as of each row's last change, or
// the stream reports SOURCE_TABLE_CHANGED naming the table and the fix;
// never a record keyed by anything but the primary key of its change.
//
// One daemon runs every case: cases that converge share a stream (one for
// tables with a key, one with keyless_tables = "full"), the others have a
// stream each, since their status is the stream's.

// Every case's table starts as seedTable, with rows 1 to 5, and gets
// beforeDDL's changes, its DDL, then changes of rows 3, 6, 7 and 8.
const (
	seedTable = `CREATE TABLE {t} (id int PRIMARY KEY, v text, n int);
		INSERT INTO {t} SELECT g, 'v' || g, g FROM generate_series(1, 5) g`
	beforeDDL = `UPDATE {t} SET v = 'b', n = n + 10 WHERE id = 1; DELETE FROM {t} WHERE id = 2;
		INSERT INTO {t} VALUES (6, 'b6', 6), (7, 'b7', 7)`
	afterDDL = `UPDATE {t} SET v = 'a' WHERE id = 3; DELETE FROM {t} WHERE id = 6;
		INSERT INTO {t} VALUES (8, 'a8', 8); UPDATE {t} SET n = 70 WHERE id = 7`
)

// touchedAfter are the rows afterDDL (and every case's after) changes.
var touchedAfter = []string{"3", "6", "7", "8"}

type schemaCase struct {
	name  string
	group string // the stream: "keyed", "keyless" (shared), or the case's own
	setup string // default seedTable
	ddl   string
	after string // default afterDDL
	// ids are the names the key column has in the case's images, names
	// those the table has in its records.
	ids, names []string
	// refused is in the status message of a stream that refuses the
	// change (the stream's own case); fix settles it in place.
	refused map[string]string // by mode
	fix     string
	// fixByConfig settles a stopped refusal by changing the stream's
	// tables: the new list; restartOnly cases converge only after it.
	fixByConfig []string
}

func schemaCases() []schemaCase {
	keyed := []string{"id"}
	return []schemaCase{
		{name: "add_column", group: "keyed", ids: keyed, ddl: `ALTER TABLE {t} ADD COLUMN w int DEFAULT 7`,
			after: `UPDATE {t} SET w = 30, v = 'a' WHERE id = 3; DELETE FROM {t} WHERE id = 6;
				INSERT INTO {t} VALUES (8, 'a8', 8, 80); UPDATE {t} SET n = 70 WHERE id = 7`},
		{name: "drop_column", group: "keyed", ids: keyed, ddl: `ALTER TABLE {t} DROP COLUMN n`,
			after: `UPDATE {t} SET v = 'a' WHERE id = 3; DELETE FROM {t} WHERE id = 6;
				INSERT INTO {t} VALUES (8, 'a8'); UPDATE {t} SET v = 'a7' WHERE id = 7`},
		// The changes before carry int4 and an enum that is gone when a
		// stopped cdcd decodes them: each value keeps its type's encoding.
		{name: "alter_column_type", group: "keyed", ids: keyed,
			setup: `CREATE TYPE {t}_mood AS ENUM ('sad', 'ok');
				CREATE TABLE {t} (id int PRIMARY KEY, v text, n int, m {t}_mood DEFAULT 'ok');
				INSERT INTO {t} SELECT g, 'v' || g, g, 'sad' FROM generate_series(1, 5) g`,
			ddl: `ALTER TABLE {t} ALTER COLUMN m DROP DEFAULT, ALTER COLUMN n TYPE text USING n::text, ALTER COLUMN m TYPE text;
				DROP TYPE {t}_mood`,
			after: `UPDATE {t} SET n = 'x', m = 'text' WHERE id = 3; DELETE FROM {t} WHERE id = 6;
				INSERT INTO {t} VALUES (8, 'a8', '8', 'new'); UPDATE {t} SET v = 'a7' WHERE id = 7`},
		// The primary key column itself: changes before carry its old name.
		{name: "rename_column", group: "keyed", ids: []string{"id", "ident"}, ddl: `ALTER TABLE {t} RENAME COLUMN id TO ident`,
			after: `UPDATE {t} SET v = 'a' WHERE ident = 3; DELETE FROM {t} WHERE ident = 6;
				INSERT INTO {t} VALUES (8, 'a8', 8); UPDATE {t} SET n = 70 WHERE ident = 7`},
		{name: "add_primary_key", group: "keyless", ids: keyed, ddl: `ALTER TABLE {t} ADD PRIMARY KEY (id)`,
			setup: `CREATE TABLE {t} (id int NOT NULL, v text, n int);
				INSERT INTO {t} SELECT g, 'v' || g, g FROM generate_series(1, 5) g`},
		{name: "drop_primary_key_keyless", group: "keyless", ids: keyed, ddl: `ALTER TABLE {t} DROP CONSTRAINT {t}_pkey`},
		{name: "drop_primary_key", ids: keyed, ddl: `ALTER TABLE {t} DROP CONSTRAINT {t}_pkey`,
			refused: map[string]string{"live": "has no primary key", "stopped": "has no primary key"},
			fix:     `ALTER TABLE {t} ADD PRIMARY KEY (id)`},
		{name: "rename_table", ids: keyed, names: []string{"{t}", "{t}_new"}, ddl: `ALTER TABLE {t} RENAME TO {t}_new`,
			after:       strings.ReplaceAll(afterDDL, "{t}", "{t}_new"),
			refused:     map[string]string{"live": "was renamed to \"public\".\"{t}_new\"", "stopped": "does not exist in the source database any more"},
			fixByConfig: []string{"public.{t}_new"}},
		{name: "drop_table", ids: keyed, ddl: `DROP TABLE {t}`,
			setup:       seedTable + `; CREATE TABLE {t}_keep (id int PRIMARY KEY, v text)`,
			after:       `INSERT INTO {t}_keep VALUES (1, 'k')`,
			refused:     map[string]string{"live": "was dropped while the stream ran", "stopped": "does not exist in the source database any more"},
			fixByConfig: []string{"public.{t}_keep"}},
	}
}

// schemaRun is one case in one mode and the stream it runs on.
type schemaRun struct {
	schemaCase
	mode, table string
	stream      *schemaStream
	// seed, pre and post are the table's rows by key after the setup,
	// before the DDL and at the end.
	seed, pre, post map[string]string
}

func (r *schemaRun) sql(s string) string { return strings.ReplaceAll(s, "{t}", r.table) }

// schemaStream is one stream of the daemon.
type schemaStream struct {
	name, slot, kinesis string
	tables              []string
	keyless             bool
}

// TestSchemaChanges runs every case of schemaCases in both modes on one
// daemon: setup, then the stopped cases' DDL while it is stopped, then the
// live ones' while it runs, each checked in its own subtest; then the
// stopped rename and drop are settled by changing the stream's tables.
func TestSchemaChanges(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	runs, streams := h.planSchemaRuns()
	h.writeSchemaConfig(streams)
	for _, r := range runs {
		h.exec(r.sql(cmp.Or(r.setup, seedTable)))
		r.seed = h.keyedRows(r, r.table)
	}

	d := h.startNoWait()
	h.waitSlotsConfirmed(streams, func(*schemaStream) bool { return true })
	d.stop(t)
	for _, r := range runs {
		if r.mode == "stopped" {
			h.runDDL(r)
		}
	}
	d = h.startNoWait()
	// The stopped refusals keep their streams from starting or from
	// getting past the DDL.
	h.waitSlotsConfirmed(streams, func(s *schemaStream) bool {
		return !slices.ContainsFunc(runs, func(r *schemaRun) bool { return r.stream == s && r.mode == "stopped" && r.refused != nil })
	})
	t.Run("ddl", func(t *testing.T) {
		for _, r := range runs {
			t.Run(r.name+"/"+r.mode, func(t *testing.T) {
				t.Parallel()
				h := h.forSubtest(t)
				if r.mode == "live" {
					h.runDDL(r)
				}
				h.checkSchemaRun(t, r)
			})
		}
	})
	if t.Failed() {
		return
	}
	d.stop(t)
	h.settleByConfig(runs, streams)
}

// planSchemaRuns makes a run of every case in each mode, and the streams
// they run on, each with its Kinesis stream.
func (h *harness) planSchemaRuns() ([]*schemaRun, []*schemaStream) {
	var runs []*schemaRun
	streams := map[string]*schemaStream{}
	kin := testenv.KinesisClient(h.t, h.env, "")
	for _, mode := range []string{"live", "stopped"} {
		for _, c := range schemaCases() {
			r := &schemaRun{schemaCase: c, mode: mode, table: c.name + "_" + mode}
			group := cmp.Or(c.group, c.name+"_"+mode)
			if streams[group] == nil {
				n := strconv.Itoa(len(streams))
				streams[group] = &schemaStream{name: group, slot: h.slot + "_" + n, kinesis: h.kinesis + "-" + n, keyless: c.group == "keyless"}
				testenv.CreateStream(h.t, kin, streams[group].kinesis, 1)
			}
			r.stream = streams[group]
			r.stream.tables = append(r.stream.tables, "public."+r.table)
			if strings.Contains(c.setup, "{t}_keep") {
				r.stream.tables = append(r.stream.tables, "public."+r.table+"_keep")
			}
			if r.names = slices.Clone(r.names); r.names == nil {
				r.names = []string{"{t}"}
			}
			for i, n := range r.names {
				r.names[i] = r.sql(n)
			}
			runs = append(runs, r)
		}
	}
	return runs, slices.SortedFunc(maps.Values(streams), func(a, b *schemaStream) int { return strings.Compare(a.name, b.name) })
}

// settleByConfig settles the stopped rename and drop as the stream's status
// message says: change the stream's tables, restart cdcd.
func (h *harness) settleByConfig(runs []*schemaRun, streams []*schemaStream) {
	for _, r := range runs {
		if r.mode == "stopped" && r.fixByConfig != nil {
			r.stream.tables = nil
			for _, tb := range r.fixByConfig {
				r.stream.tables = append(r.stream.tables, r.sql(tb))
			}
		}
	}
	h.writeSchemaConfig(streams)
	d := h.startNoWait()
	for _, r := range runs {
		if r.mode != "stopped" || r.fixByConfig == nil {
			continue
		}
		h.t.Run(r.name+"/stopped/fixed", func(t *testing.T) {
			h := h.forSubtest(t)
			want := r.expected()
			if r.name == "drop_table" {
				// Its changes left when it was dropped are not emitted:
				// nobody lists it any more, and nothing could key them.
				want = r.seed
				h.waitConsumed(t, r.stream, []string{r.table + "_keep"}, r.ids, h.keyedRows(r, r.table+"_keep"))
			}
			h.waitConsumed(t, r.stream, r.names, r.ids, want)
			h.waitStreamStatus(t, r.stream, state.Active, "", "")
		})
	}
	if logs := d.Logs(); !strings.Contains(logs, "changes of a table that was dropped and that the stream no longer lists are not emitted") {
		h.t.Errorf("the daemon did not warn that the dropped table's changes are not emitted")
	}
	d.kill() // nothing is checked after: no need to wait for a drain
}

// forSubtest is h for a parallel subtest: its failures are t's, and it has
// a connection of its own.
func (h *harness) forSubtest(t *testing.T) *harness {
	c := *h
	c.t = t
	c.db = h.conn()
	t.Cleanup(func() { c.db.Close(context.Background()) })
	return &c
}

// runDDL makes the case's changes, DDL and more changes; while cdcd runs,
// the changes before the DDL are delivered before it is made.
func (h *harness) runDDL(r *schemaRun) {
	h.exec(r.sql(beforeDDL))
	r.pre = h.keyedRows(r, r.table)
	if r.mode == "live" {
		h.waitSlotsConfirmed([]*schemaStream{r.stream}, func(*schemaStream) bool { return true })
	}
	h.exec(r.sql(r.ddl))
	h.exec(r.sql(cmp.Or(r.after, afterDDL)))
	if r.fix != "" && r.mode == "stopped" {
		return // post is read once it is fixed
	}
	if last := r.names[len(r.names)-1]; r.name != "drop_table" {
		r.post = h.keyedRows(r, last)
	}
}

// checkSchemaRun checks one case: the refusal first where the stream
// refuses, then that the consumer reaches the source.
func (h *harness) checkSchemaRun(t *testing.T, r *schemaRun) {
	if want := r.refused[r.mode]; want != "" {
		msg := h.waitStreamStatus(t, r.stream, state.Impaired, "SOURCE_TABLE_CHANGED", r.sql(want))
		if !strings.Contains(msg, r.table) {
			t.Errorf("status message %q does not name table %s", msg, r.table)
		}
	}
	switch {
	case r.fix != "":
		h.exec(r.sql(r.fix))
		if r.mode == "stopped" {
			r.post = h.keyedRows(r, r.table)
		}
		h.waitConsumed(t, r.stream, r.names, r.ids, r.expected())
		h.waitStreamStatus(t, r.stream, state.Active, "", "")
	case r.name == "drop_table" && r.mode == "live":
		// Everything before the drop is delivered.
		h.waitConsumed(t, r.stream, r.names, r.ids, r.pre)
	case r.fixByConfig != nil && r.mode == "stopped":
		// Settled after a restart (TestSchemaChanges).
	default:
		h.waitConsumed(t, r.stream, r.names, r.ids, r.expected())
	}
}

// expected is what a consumer holds: each row as of its last change, the
// rows changed after the DDL as they are now, the others as they were
// before it.
func (r *schemaRun) expected() map[string]string {
	want := maps.Clone(r.pre)
	for _, id := range touchedAfter {
		delete(want, id)
		if row, ok := r.post[id]; ok {
			want[id] = row
		}
	}
	return want
}

// keyedRows reads a table's rows as JSON, by the value of its key column.
func (h *harness) keyedRows(r *schemaRun, table string) map[string]string {
	h.t.Helper()
	out := map[string]string{}
	for _, img := range h.sourceImages(context.Background(), table, []string{"*"}) {
		out[rowID(img, r.ids)] = canonical(img, nil)
	}
	return out
}

// rowID is the value of the first of ids that img has.
func rowID(img map[string]json.RawMessage, ids []string) string {
	for _, id := range ids {
		if v, ok := img[id]; ok {
			return string(v)
		}
	}
	return ""
}

// consume applies a stream's records of the tables named names to rows by
// key, last writer by source.ts_ns wins, as a consumer that knows the key
// columns would: c, u and r write after (a u of a table without a key
// removes its before first), d removes before. It fails t for a record of
// a table with a key that is not keyed by it.
func consume(t *testing.T, shards [][]wireRecord, names, ids []string, keyless bool) map[string]string {
	type version struct {
		ts  int64
		row string
	}
	rows := map[string]version{}
	put := func(id string, ts int64, row string) {
		if v, ok := rows[id]; !ok || v.ts <= ts {
			rows[id] = version{ts, row}
		}
	}
	each(shards, func(r wireRecord) {
		if !slices.Contains(names, r.Source.Table) {
			return
		}
		if !keyless && (r.Op == "d" && len(r.Before) != 1 || r.Op != "d" && r.Before != nil) {
			t.Errorf("a record not keyed by the primary key: %s", r.raw)
		}
		if r.Before != nil {
			put(rowID(r.Before, ids), r.Source.TsNs, "")
		}
		if r.After != nil {
			put(rowID(r.After, ids), r.Source.TsNs, canonical(r.After, nil))
		}
	})
	out := map[string]string{}
	for id, v := range rows {
		if v.row != "" {
			out[id] = v.row
		}
	}
	return out
}

// waitConsumed reads the stream's Kinesis stream until consume gives want.
func (h *harness) waitConsumed(t *testing.T, s *schemaStream, names, ids []string, want map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := consume(t, readKinesisStream(ctx, t, h.env, s.kinesis), names, ids, s.keyless)
		if maps.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer's rows of %v do not match the source's after 60s:\n%s", names, rowDiff(want, got))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// waitStreamStatus waits until the stream's state file shows status with
// code (none if empty) and a message holding want, and returns the
// message.
func (h *harness) waitStreamStatus(t *testing.T, s *schemaStream, status state.Status, code, want string) string {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	last := "no state file"
	for time.Now().Before(deadline) {
		if rec, ok := h.streamFile(s); ok {
			var gotCode, msg string
			if rec.StatusReason != nil {
				gotCode, msg = string(rec.StatusReason.Code), rec.StatusReason.Message
			}
			last = fmt.Sprintf("%s %s %q", rec.Status, gotCode, msg)
			if rec.Status == status && gotCode == code && strings.Contains(msg, want) {
				return msg
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("stream %s did not reach %s %s %q within 45s; last: %s", s.name, status, code, want, last)
	return ""
}

// streamFile reads the state file of the stream that writes s.kinesis.
func (h *harness) streamFile(s *schemaStream) (state.File, bool) {
	files, _ := filepath.Glob(filepath.Join(h.stateDir, "streams", "*.json"))
	for _, f := range files {
		var rec state.File
		if b, err := os.ReadFile(f); err == nil && json.Unmarshal(b, &rec) == nil &&
			strings.HasSuffix(rec.Definition.Target.StreamARN, "/"+s.kinesis) {
			return rec, true
		}
	}
	return state.File{}, false
}

// waitSlotsConfirmed waits until the slot of every stream that want picks
// streams, and cdcd has confirmed everything written so far.
func (h *harness) waitSlotsConfirmed(streams []*schemaStream, want func(*schemaStream) bool) {
	h.t.Helper()
	var slots []string
	for _, s := range streams {
		if want(s) {
			slots = append(slots, s.slot)
		}
	}
	h.waitSlots(slots, "active")
	// Written once the slots exist, so that only a confirmation by cdcd,
	// never a slot created after it, passes it.
	var end string
	if err := h.db.QueryRow(context.Background(), `SELECT pg_logical_emit_message(false, 'cdcd-test', 'x')::text`).Scan(&end); err != nil {
		h.t.Fatal(err)
	}
	h.waitSlots(slots, "active AND confirmed_flush_lsn >= '"+end+"'::pg_lsn")
}

// waitSlots waits until every slot of slots meets cond.
func (h *harness) waitSlots(slots []string, cond string) {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		err := h.db.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots WHERE slot_name = ANY($1) AND `+cond, slots).Scan(&n)
		if err != nil {
			h.t.Fatal(err)
		}
		if n == len(slots) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d of slots %v meet %s after 60s", n, slots, cond)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeSchemaConfig writes the daemon's configuration with one stream per
// schemaStream.
func (h *harness) writeSchemaConfig(streams []*schemaStream) {
	h.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `state_dir = %q
listen = %q
[log]
level = "info"
[aws]
region = %q
kinesis_endpoint = %q
account = "000000000000"
[[cluster]]
name = "src"
dsn = %q
password_env = "CDCD_E2E_PG_PASSWORD"
`, h.stateDir, h.listen, h.env.Region, h.env.KinesisEndpoint, h.dsn)
	for _, s := range streams {
		quoted := make([]string, len(s.tables))
		for i, tb := range s.tables {
			quoted[i] = strconv.Quote(tb)
		}
		keyless := "refuse"
		if s.keyless {
			keyless = "full"
		}
		fmt.Fprintf(&b, `[[stream]]
name = %q
cluster = "src"
tables = [%s]
slot = %q
publication = %q
ordering = "ROW"
snapshot = true
set_replica_identity_full = true
keyless_tables = %q
[stream.target]
kinesis_stream = %q
[stream.delivery]
status_interval = "500ms"
linger = "5ms"
`, s.name, strings.Join(quoted, ", "), s.slot, "pub_"+s.name, keyless, s.kinesis)
	}
	if err := os.WriteFile(h.config, []byte(b.String()), 0o600); err != nil {
		h.t.Fatal(err)
	}
}
