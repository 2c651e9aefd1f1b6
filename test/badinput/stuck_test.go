package badinput

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/cdcd-dev/cdcd/state"
)

// waitReason waits until GetStream shows status with a statusReason of
// code and returns the view.
func (f *fixture) waitReason(status, code string) view {
	f.t.Helper()
	var last view
	f.waitFor(status+" with "+code, func() bool {
		v, err := f.getStream()
		last = v
		return err == nil && v.status == status && v.code == code
	})
	return last
}

// TestPrerequisiteUnmetWhileCreating: a prerequisite the stream may not fix
// itself (a table that needs REPLICA IDENTITY FULL) keeps it CREATING with
// a statusReason naming the table and the statement; once that has run,
// the stream starts with no restart and the reason is gone.
func TestPrerequisiteUnmetWhileCreating(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noFull: true})
	f.createTable()
	f.start()
	v := f.waitReason("CREATING", "SOURCE_PREREQUISITE_UNMET")
	wantReason(t, v, "SOURCE_PREREQUISITE_UNMET", `source prerequisite replica_identity of public.t not met: table "public"."t" has columns that PostgreSQL may TOAST and REPLICA IDENTITY DEFAULT, so an update could arrive without their values: run ALTER TABLE "public"."t" REPLICA IDENTITY FULL, or set set_replica_identity_full = true on the stream (see docs/runbook.md#source_prerequisite_unmet)`)
	f.exec(`ALTER TABLE t REPLICA IDENTITY FULL`)
	if v := f.waitStatus("ACTIVE"); v.code != "" {
		t.Errorf("ACTIVE with statusReason %+v", v)
	}
	f.insert(1)
	wantIDs(t, f.waitRecords(1), "c", "1")
}

// checkpoint reads the stream's checkpoint from its state file.
func (f *fixture) checkpoint() uint64 {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.stateDir, "streams", f.stream+".json"))
	if err != nil {
		f.t.Fatal(err)
	}
	var rec state.File
	if err := json.Unmarshal(b, &rec); err != nil {
		f.t.Fatal(err)
	}
	return rec.Checkpoint.LSN
}

// TestSlotAdvancedPastCheckpoint: while cdcd is stopped, the slot is
// advanced past the stream's checkpoint, over a committed row. At start the
// stream fails naming both positions, rather than skip that row; what was
// delivered before stays.
func TestSlotAdvancedPastCheckpoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{})
	d := f.streaming(1)
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	// Flushed at commit, so that the slot can be advanced past it.
	f.exec(`BEGIN; SET LOCAL synchronous_commit = on; INSERT INTO t VALUES (2, 'skipped'); COMMIT`)
	var advanced string
	if err := f.db.QueryRow(t.Context(), `SELECT end_lsn::text FROM pg_replication_slot_advance($1, pg_current_wal_flush_lsn())`, f.slot).Scan(&advanced); err != nil {
		t.Fatal(err)
	}
	f.start()
	v := f.waitStatus("FAILED")
	wantReason(t, v, "SOURCE_SLOT_LOST", fmt.Sprintf(`replication slot lost: slot %q has confirmed_flush_lsn %s, past the stream's checkpoint %s: something other than cdcd advanced it (pg_replication_slot_advance, or another client reading the slot), so the changes between the two are gone from it; delete the stream and create it again (see docs/runbook.md#source_slot_lost)`,
		f.slot, advanced, state.FormatLSN(f.checkpoint())))
	wantIDs(t, f.records(), "c", "1")
}

// TestUnencodableTransaction: a committed timestamp past what the record
// format holds cannot be encoded. The stream is IMPAIRED, the transaction
// counts in lag, so the stream fails at failure_threshold (2 s here), its
// reason naming the table, column, type and LSN, never the value; what was
// delivered before stays.
func TestUnencodableTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{top: `failure_threshold = "2s"`})
	f.exec(`CREATE TABLE t (id int PRIMARY KEY, at timestamptz)`)
	f.start()
	f.waitStatus("ACTIVE")
	f.exec(`INSERT INTO t VALUES (1, now())`)
	f.waitRecords(1)
	f.exec(`INSERT INTO t VALUES (2, '294270-03-14 15:09:26+00')`)
	// Only an IMPAIRED stream fails by lag (docs/lifecycle.md#transitions).
	v := f.waitReason("FAILED", "INTERNAL_ERROR")
	want := regexp.MustCompile(`^lag [0-9.]+s passed the failure threshold 2s; last error: encode transaction \d+ at [0-9A-F]+/[0-9A-F]+: encode transaction [a-z2-7]{26}: encode "public"\."t" column "at" \(type timestamptz, OID 1184, text format\): value out of range: timestamp after year 294246 has no int64 microseconds since 1970 \(a value of \d+ bytes\) \(see docs/runbook\.md#internal_error\)$`)
	if !want.MatchString(v.message) {
		t.Errorf("statusReason %q, want one matching %s", v.message, want)
	}
	wantIDs(t, f.records(), "c", "1")
}
