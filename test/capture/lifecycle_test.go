package capture_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cdcd-dev/cdcd/capture"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// TestSlotLifecycle: Prepare creates the publication and slot once and
// reuses them after, refuses a slot it cannot have made, turns a missing
// slot of a stream that delivered into ErrSlotLost, and Drop removes both.
func TestSlotLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.t")
	h.exec(`CREATE TABLE t (id int PRIMARY KEY, v text)`)
	src := h.source()

	info, err := src.Prepare(h.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !info.SlotCreated || info.ConfirmedFlush == 0 || info.SystemID == 0 || info.Database == "" {
		t.Fatalf("first Prepare: %+v", info)
	}
	again, err := src.Prepare(h.ctx, info.ConfirmedFlush)
	if err != nil {
		t.Fatal(err)
	}
	if again.SlotCreated || again.ConfirmedFlush != info.ConfirmedFlush {
		t.Fatalf("second Prepare must reuse the slot: %+v", again)
	}
	var pubTables int
	if err := h.db.QueryRow(h.ctx, `SELECT count(*) FROM pg_publication_tables WHERE pubname = 'cdcd_pub'`).Scan(&pubTables); err != nil || pubTables != 1 {
		t.Fatalf("publication has %d tables (%v), want 1", pubTables, err)
	}

	if err := src.Drop(h.ctx); err != nil {
		t.Fatal(err)
	}
	var slots, pubs int
	h.db.QueryRow(h.ctx, `SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1),
		(SELECT count(*) FROM pg_publication WHERE pubname = 'cdcd_pub')`, h.slot).Scan(&slots, &pubs)
	if slots != 0 || pubs != 0 {
		t.Fatalf("after Drop: %d slots, %d publications", slots, pubs)
	}
	if err := src.Drop(h.ctx); err != nil {
		t.Fatalf("Drop of what is gone must succeed: %v", err)
	}

	// The stream had delivered: a new slot would skip changes.
	if _, err := src.Prepare(h.ctx, info.ConfirmedFlush); !errors.Is(err, capture.ErrSlotLost) {
		t.Fatalf("Prepare with a checkpoint and no slot: %v, want ErrSlotLost", err)
	}

	// A slot of that name that is not pgoutput is someone else's.
	h.exec(`SELECT pg_create_logical_replication_slot($1, 'test_decoding')`, h.slot)
	if _, err := src.Prepare(h.ctx, 0); err == nil || !strings.Contains(err.Error(), `plugin "test_decoding"`) {
		t.Fatalf("Prepare over a test_decoding slot: %v", err)
	}
	h.exec(`SELECT pg_drop_replication_slot($1)`, h.slot)

	// Snapshot streams leave the slot to Run.
	h.cfg.Snapshot = true
	snap, err := capture.New(withoutMetrics(h.cfg))
	if err != nil {
		t.Fatal(err)
	}
	info, err = snap.Prepare(h.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !info.SnapshotPending || info.SlotCreated {
		t.Fatalf("Prepare of a snapshot stream: %+v", info)
	}
	if h.db.QueryRow(h.ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, h.slot).Scan(&slots); slots != 0 {
		t.Fatal("Prepare created the slot of a snapshot stream")
	}
}

func withoutMetrics(cfg capture.Config) capture.Config {
	cfg.Metrics = nil
	return cfg
}

// TestPrerequisiteErrors: each missing prerequisite is an error that names
// the fix, and Check, which changes nothing, finds the same one.
func TestPrerequisiteErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	h.exec(`CREATE TABLE nokey (a int, b int)`)
	h.exec(`CREATE TABLE toasty (id int PRIMARY KEY, doc text)`)
	cases := []struct {
		name   string
		tables []string
		want   string
		check  string // the *capture.Unmet's Check; "" for none
	}{
		{"missing table", []string{"public.nope"}, "does not exist", "table"},
		{"no key", []string{"public.nokey"}, `ALTER TABLE "public"."nokey" ADD PRIMARY KEY (…), or set keyless_tables = "full"`, "replica_identity"},
		{"toastable", []string{"public.toasty"}, "set_replica_identity_full", "replica_identity"},
		{"no tables", nil, "no tables configured", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := h.cfg
			cfg.Tables, cfg.SetReplicaIdentityFull = tc.tables, false
			src, err := capture.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = src.Prepare(h.ctx, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			checked := src.Check(h.ctx)
			if checked == nil || checked.Error() != err.Error() {
				t.Errorf("Check = %v, want Prepare's %v", checked, err)
			}
			var u *capture.Unmet
			if got := errors.As(checked, &u); got != (tc.check != "") || got && (u.Check != tc.check || u.Object != tc.tables[0]) {
				t.Errorf("Check = %#v, want an Unmet %q of %v", checked, tc.check, tc.tables)
			}
		})
	}
}

// TestCheckChangesNothing: Check passes where Prepare would set REPLICA
// IDENTITY FULL and create the publication and the slot, and does none of
// it; Prepare then does.
func TestCheckChangesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", "public.toasty")
	h.exec(`CREATE TABLE toasty (id int PRIMARY KEY, doc text)`)
	state := func() (ident string, pubs, slots int) {
		t.Helper()
		err := h.db.QueryRow(h.ctx, `SELECT relreplident::text, (SELECT count(*) FROM pg_publication WHERE pubname = 'cdcd_pub')::int,
			(SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1)::int FROM pg_class WHERE oid = 'public.toasty'::regclass`, h.slot).
			Scan(&ident, &pubs, &slots)
		if err != nil {
			t.Fatal(err)
		}
		return ident, pubs, slots
	}
	src := h.source()
	if err := src.Check(h.ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if ident, pubs, slots := state(); ident != "d" || pubs != 0 || slots != 0 {
		t.Fatalf("after Check: replica identity %s, %d publications, %d slots; want d, 0, 0", ident, pubs, slots)
	}
	if _, err := src.Prepare(h.ctx, 0); err != nil {
		t.Fatal(err)
	}
	if ident, pubs, slots := state(); ident != "f" || pubs != 1 || slots != 1 {
		t.Fatalf("after Prepare: replica identity %s, %d publications, %d slots; want f, 1, 1", ident, pubs, slots)
	}
}

// TestHeadroom: a server without a free slot or walsender is a clear error
// before anything is created.
func TestHeadroom(t *testing.T) {
	env := testenv.Require(t)
	c := testenv.StartCluster(t, env, "max_replication_slots = 2", "max_wal_senders = 1")
	h := newHarness(t, c.CreateDB("headroom"), "public.t")
	h.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	h.exec(`SELECT pg_create_logical_replication_slot('other1', 'pgoutput')`)
	h.exec(`SELECT pg_create_logical_replication_slot('other2', 'pgoutput')`)
	_, err := h.source().Prepare(h.ctx, 0)
	if err == nil || !strings.Contains(err.Error(), "max_replication_slots is 2 and 2 slots exist") || !strings.Contains(err.Error(), "pg_drop_replication_slot") {
		t.Fatalf("Prepare with every slot taken: %v", err)
	}
	h.exec(`SELECT pg_drop_replication_slot('other1')`)
	h.exec(`SELECT pg_drop_replication_slot('other2')`)

	// Hold the one walsender with a replication connection of our own.
	busy := newHarness(t, c.CreateDB("busy"), "public.t")
	busy.exec(`CREATE TABLE t (id int PRIMARY KEY)`)
	busy.start()
	busy.walsender()
	src, err := capture.New(withoutMetrics(h.cfg))
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Prepare(h.ctx, 0)
	if err == nil || !strings.Contains(err.Error(), "max_wal_senders") {
		t.Fatalf("Prepare with every walsender taken: %v", err)
	}
}
