package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/state"
)

// spillHarness is a harness streaming items (id int PRIMARY KEY, v text)
// whose stream spills past 1 MiB, with delivery settings added.
func spillHarness(t *testing.T, delivery string) *harness {
	h := newHarness(t, harnessOptions{tables: []string{"public.items"}})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	h.appendConfig("memory_budget = 1048576\n" + delivery)
	return h
}

// appendConfig adds lines to the config file's last table, [stream.delivery].
func (h *harness) appendConfig(lines string) {
	h.t.Helper()
	f, err := os.OpenFile(h.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(lines + "\n"); err != nil {
		h.t.Fatal(err)
	}
}

// impairBySpill starts the daemon, commits one transaction of 150 rows of
// 10 kB (past the 1 MiB budget) and then the row 151, and checks that the
// stream goes IMPAIRED with SPILL_FULL and a message holding each of want,
// and that neither the slot nor the checkpoint reaches the end of the
// large transaction. It returns the daemon and the WAL position after the
// last row.
func (h *harness) impairBySpill(want ...string) (*daemon, uint64) {
	h.t.Helper()
	d := h.start()
	h.waitStatus("ACTIVE", "", 30*time.Second)
	h.exec(`INSERT INTO items SELECT g, repeat('x', 10000) FROM generate_series(1, 150) g`)
	large := h.walInsertLSN()
	h.exec(`INSERT INTO items VALUES (151, 'after')`)
	last := h.walInsertLSN()
	h.waitStatus("IMPAIRED", "SPILL_FULL", 30*time.Second)
	// GetStream shows the state file's reason; the SDK's StatusReason
	// has no message field.
	_, rec := h.stateFile()
	for _, w := range want {
		if rec.StatusReason == nil || !strings.Contains(rec.StatusReason.Message, w) {
			h.t.Errorf("status reason %+v does not say %q", rec.StatusReason, w)
		}
	}
	if slot, file := h.confirmed(); slot >= large || file >= large {
		h.t.Fatalf("slot confirmed %s, checkpoint %s: at or past %s, a transaction that was not delivered",
			state.FormatLSN(slot), state.FormatLSN(file), state.FormatLSN(large))
	}
	return d, last
}

// expectDelivered waits until every row and the last position are
// delivered and the stream is ACTIVE.
func (h *harness) expectDelivered(last uint64) {
	h.t.Helper()
	h.waitConfirmedPast(last-1, 60*time.Second)
	h.waitIDs(151, 60*time.Second)
	h.waitStatus("ACTIVE", "", 30*time.Second)
}

// TestSpillCap: a transaction that does not fit spill_max_bytes impairs the
// stream with SPILL_FULL, naming the cap, and holds it there with nothing
// confirmed past what came before; after a restart with a larger cap,
// everything is delivered and the stream is ACTIVE again
// (docs/delivery.md#spill-cap).
func TestSpillCap(t *testing.T) {
	t.Parallel() // its own database, slot and Kinesis stream
	h := spillHarness(t, "spill_max_bytes = 1048576")
	d, last := h.impairBySpill("spill_max_bytes = 1048576", "raise spill_max_bytes")
	d.stop(t)

	cfg, err := os.ReadFile(h.config)
	if err != nil {
		t.Fatal(err)
	}
	raised := strings.Replace(string(cfg), "spill_max_bytes = 1048576", "spill_max_bytes = 67108864", 1)
	if err := os.WriteFile(h.config, []byte(raised), 0o600); err != nil {
		t.Fatal(err)
	}
	d = h.start()
	h.expectDelivered(last)
	d.stop(t)
}

// TestSpillDiskFull: a spill directory whose filesystem fills up (a tmpfs
// with a file taking most of it) impairs the stream with SPILL_FULL
// instead of reconnecting silently, confirms nothing past the transaction
// that needed the room, and recovers without a restart once the space is
// back. Mounting needs root, which the suite has (test/infra runs
// PostgreSQL through runuser).
func TestSpillDiskFull(t *testing.T) {
	t.Parallel() // its own database, slot and Kinesis stream
	h := spillHarness(t, "")
	spill := filepath.Join(h.stateDir, "spill")
	if err := os.MkdirAll(spill, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", spill).CombinedOutput(); err != nil {
		t.Fatalf("mount a 4 MiB tmpfs on the spill directory: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", spill).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", spill, err, out)
		}
	})
	filler := filepath.Join(spill, "filler")
	if err := os.WriteFile(filler, make([]byte, 3<<20+512<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	d, last := h.impairBySpill("filesystem is full", "free space")
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	h.expectDelivered(last)
	d.stop(t)
}
