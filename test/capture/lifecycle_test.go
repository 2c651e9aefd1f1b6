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
// the fix.
func TestPrerequisiteErrors(t *testing.T) {
	h := newHarness(t, "")
	h.exec(`CREATE TABLE nokey (a int, b int)`)
	h.exec(`CREATE TABLE toasty (id int PRIMARY KEY, doc text)`)
	cases := []struct {
		name   string
		tables []string
		want   string
	}{
		{"missing table", []string{"public.nope"}, "does not exist"},
		{"no key", []string{"public.nokey"}, `ALTER TABLE "public"."nokey" ADD PRIMARY KEY (…), or set keyless_tables = "full"`},
		{"toastable", []string{"public.toasty"}, "set_replica_identity_full"},
		{"no tables", nil, "no tables configured"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := h.cfg
			cfg.Tables, cfg.SetReplicaIdentityFull = tc.tables, false
			src, err := capture.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := src.Prepare(h.ctx, 0); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestHeadroom: a server without a free slot or walsender is a clear error
// before anything is created.
func TestHeadroom(t *testing.T) {
	env := testenv.Require(t)
	c := startCluster(t, env, "max_replication_slots = 2", "max_wal_senders = 1")
	h := newHarness(t, c.createDB("headroom"), "public.t")
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
	busy := newHarness(t, c.createDB("busy"), "public.t")
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
