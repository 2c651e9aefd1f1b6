package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/test/faultproxy"
)

// TestNothingConfirmedBeyondKinesis holds the central invariant end to end
// (docs/delivery.md#confirmation): while Kinesis refuses every record,
// neither the slot's confirmed_flush_lsn nor the checkpoint in the state
// file moves past the first change Kinesis has not accepted, and the state
// file is never behind the slot; not before a SIGKILL, nor after the
// restart. Once Kinesis accepts again, every change arrives as written
// (duplicates allowed, none missing).
func TestNothingConfirmedBeyondKinesis(t *testing.T) {
	t.Parallel()
	h, proxy := proxiedHarness(t, 2)
	d := h.start()

	// Changes Kinesis accepts, each in its own transaction.
	accepted := map[string]bool{}
	for i := 1; i <= 10; i++ {
		h.exec(`INSERT INTO items VALUES ($1, $2)`, i, fmt.Sprint("a", i))
		accepted[change("c", i, fmt.Sprint("a", i))] = true
	}
	h.exec(`UPDATE items SET v = 'a-changed' WHERE id = 3`)
	accepted[change("u", 3, "a-changed")] = true
	var lastAccepted uint64 // the commit LSN of the last accepted change
	for _, r := range h.waitChanges(accepted, 60*time.Second) {
		lastAccepted = max(lastAccepted, parseLSN(t, r.Source.LSN))
	}
	// Confirmation catches up with them (to the end of that transaction,
	// past its commit LSN), so the bound below is not met merely because
	// nothing is ever confirmed.
	h.waitConfirmedPast(lastAccepted, 30*time.Second)

	// Kinesis refuses every record, entry by entry, so the proxy sees each
	// refused record and its source.lsn, the transaction's commit LSN.
	proxy.ResetCounts()
	proxy.FailRecords("PutRecords", func(int, faultproxy.Entry) bool { return true })
	refused := map[string]bool{}
	h.exec(`BEGIN; INSERT INTO items VALUES (11, 'b11'), (12, 'b12'); UPDATE items SET v = 'b-changed' WHERE id = 1; COMMIT`)
	refused[change("c", 11, "b11")], refused[change("c", 12, "b12")], refused[change("u", 1, "b-changed")] = true, true, true
	for i := 13; i <= 20; i++ {
		h.exec(`INSERT INTO items VALUES ($1, $2)`, i, fmt.Sprint("b", i))
		refused[change("c", i, fmt.Sprint("b", i))] = true
	}
	h.exec(`DELETE FROM items WHERE id = 2`)
	refused[change("d", 2, "")] = true
	// The bound: the commit LSN of the first refused transaction. A slot
	// confirmed up to it still sends that transaction again.
	bound := h.waitRefused(proxy, refused, 30*time.Second)
	if bound <= lastAccepted {
		t.Fatalf("refused changes at %s, not after the last accepted one at %s", state.FormatLSN(bound), state.FormatLSN(lastAccepted))
	}
	h.expectConfirmedWithin(bound, 5*time.Second)
	if got := h.changes(h.tail(time.Second)); !maps.Equal(got, accepted) {
		t.Fatalf("Kinesis holds changes it refused:\n%v", slices.Sorted(maps.Keys(got)))
	}

	// SIGKILL: no drain, no final checkpoint. The restarted daemon resumes
	// from the state file while Kinesis still refuses, now whole calls.
	d.kill()
	proxy.Clear()
	proxy.Inject(faultproxy.Rule{Op: "PutRecords", Err: "AccessDeniedException"})
	d = h.start()
	h.waitStatus("IMPAIRED", "KINESIS_ACCESS_DENIED", 30*time.Second)
	h.expectConfirmedWithin(bound, 3*time.Second)

	proxy.Clear()
	want := maps.Clone(accepted)
	maps.Copy(want, refused)
	if got := h.changes(h.waitChanges(want, 60*time.Second)); !maps.Equal(got, want) {
		t.Errorf("Kinesis holds changes that were never written:\n%v", slices.Sorted(maps.Keys(got)))
	}
	d.stop(t)
}

// change names one change as a record carries it: the op and the row
// image, the after image for c and u, the key in before for d.
func change(op string, id int, v string) string {
	img := map[string]any{"id": id}
	if op != "d" {
		img["v"] = v
	}
	b, _ := json.Marshal(img)
	return op + " " + string(b)
}

// change names the record's change as change does; a record holding
// anything else gets a name no written change has.
func (r cdcRecord) change() string {
	img := r.After
	if r.Op == "d" {
		img = r.Before
	}
	b, _ := json.Marshal(img) // sorted keys, values as they came
	return r.Op + " " + string(b)
}

// changes is the set of changes the records carry.
func (h *harness) changes(recs []cdcRecord) map[string]bool {
	set := map[string]bool{}
	for _, r := range recs {
		set[r.change()] = true
	}
	return set
}

// waitChanges reads Kinesis until it holds every change in want, and
// returns what it read.
func (h *harness) waitChanges(want map[string]bool, timeout time.Duration) []cdcRecord {
	h.t.Helper()
	recs, ok := h.pollRecords(timeout, func(recs []cdcRecord) bool {
		return len(keysNotIn(want, h.changes(recs))) == 0
	})
	if !ok {
		h.t.Fatalf("changes missing from Kinesis after %s: %v", timeout, keysNotIn(want, h.changes(recs)))
	}
	return recs
}

// confirmed reads the stream's confirmed position: the slot's
// confirmed_flush_lsn first, then the checkpoint in the state file. The file
// is written before the slot is confirmed and never moves back, so read in
// this order it is at least the slot's even when both move in between.
func (h *harness) confirmed() (slot, file uint64) {
	h.t.Helper()
	slot = h.slotState().confirmed
	_, rec := h.stateFile()
	return slot, rec.Checkpoint.LSN
}

// expectConfirmedWithin checks, every 100 ms for d, that neither the slot
// nor the state file has confirmed past bound, and that the file is not
// behind the slot.
func (h *harness) expectConfirmedWithin(bound uint64, d time.Duration) {
	h.t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		slot, file := h.confirmed()
		if slot > bound || file > bound {
			h.t.Fatalf("slot confirmed %s, checkpoint %s: past %s, the first change Kinesis has not accepted",
				state.FormatLSN(slot), state.FormatLSN(file), state.FormatLSN(bound))
		}
		if slot > file {
			h.t.Fatalf("slot confirmed %s, ahead of the checkpoint %s in the state file",
				state.FormatLSN(slot), state.FormatLSN(file))
		}
	}
}

// waitRefused waits until the proxy has refused every change in refused
// and returns the lowest commit LSN among them.
func (h *harness) waitRefused(proxy *faultproxy.Proxy, refused map[string]bool, timeout time.Duration) uint64 {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		seen, low := map[string]bool{}, ^uint64(0)
		for data, c := range proxy.Entries() {
			var r cdcRecord
			if err := json.Unmarshal([]byte(data), &r); err != nil {
				h.t.Fatalf("entry sent to Kinesis is not a record: %v: %q", err, data)
			}
			if c.Forwarded > 0 {
				h.t.Fatalf("the proxy forwarded a record it was to refuse: %s", data)
			}
			if !refused[r.change()] {
				h.t.Fatalf("Kinesis was offered a change not written since it refuses: %s", data)
			}
			seen[r.change()] = true
			low = min(low, parseLSN(h.t, r.Source.LSN))
		}
		if len(seen) == len(refused) {
			return low
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("Kinesis was offered %d of the %d refused changes within %s", len(seen), len(refused), timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitConfirmedPast waits until both the slot and the state file have
// confirmed a position after lsn.
func (h *harness) waitConfirmedPast(lsn uint64, timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		slot, file := h.confirmed()
		if slot > lsn && file > lsn {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("confirmation did not pass %s within %s: slot %s, checkpoint %s",
				state.FormatLSN(lsn), timeout, state.FormatLSN(slot), state.FormatLSN(file))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// parseLSN reads an LSN as PostgreSQL prints it ("16/B374D848").
func parseLSN(t *testing.T, s string) uint64 {
	t.Helper()
	var hi, lo uint32
	if n, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); n != 2 || err != nil {
		t.Fatalf("LSN %q: %v", s, err)
	}
	return uint64(hi)<<32 | uint64(lo)
}
