package capture

import (
	"fmt"

	"github.com/cdcd-dev/cdcd/record"
)

// Spilling (bounded memory). The changes of transactions not yet committed are
// counted against Config.MemoryBudget; once the total passes it, the
// transaction whose change tipped it over moves its changes to an encrypted
// spill file (record.ChangeSpill) and appends every later change there, one
// message at a time. At commit it is handed over with Txn.Spilled, which the
// Handler reads back and closes (deleting the file). A streamed transaction
// that aborts deletes its file; one whose subtransaction aborts after some
// of its changes were spilled skips them when read back, by the
// subtransaction xid each spilled change is tagged with. A session that
// ends drops its assembler, and discard deletes the files of the
// transactions still open; what a crash leaves, the daemon sweeps at start.

// changeMem estimates what a change holds in memory: the tuple bytes
// (which alias the copy of their message), the datums and the change
// itself. Counting tuple bytes alone would let narrow rows take several
// times the budget.
func changeMem(c *record.Change) int {
	const change, datum, framing = 64, 32, 8
	n := change
	for _, t := range []record.Tuple{c.Old, c.New} {
		n += len(t) * (datum + framing)
		for i := range t {
			n += len(t[i].Data)
		}
	}
	return n
}

// spillable reports whether the open transactions hold more than the
// budget.
func (a *assembler) spillable() bool {
	return a.store != nil && a.budget > 0 && a.held > a.budget
}

// spillOpen moves the open (protocol 1) transaction's changes held in
// memory to its spill file, starting one if it has none and the budget is
// exceeded.
func (a *assembler) spillOpen() error {
	if a.spill == nil {
		if !a.spillable() {
			return nil
		}
		s, err := record.NewChangeSpill(a.store)
		if err != nil {
			return fmt.Errorf("spill transaction %d: %w", a.txn.Xid, err)
		}
		a.spill = s
		a.log.Info("transaction exceeds the memory budget; spilling it to disk", "xid", a.txn.Xid, "memory_budget", a.budget)
	}
	for i := range a.txn.Changes {
		if err := a.spill.Add(&a.txn.Changes[i], 0); err != nil {
			return fmt.Errorf("spill transaction %d: %w", a.txn.Xid, err)
		}
	}
	a.txn.Changes = nil // small batches from now on: no need to keep room
	a.held -= a.mem
	a.mem, a.bytes = 0, 0
	return nil
}

// finishOpen hands the open transaction's spill over in t.
func (a *assembler) finishOpen(t *record.Txn) error {
	if a.spill == nil {
		return nil
	}
	if err := a.spillOpen(); err != nil {
		return err
	}
	r, err := a.spill.Finish(nil)
	if err != nil {
		return fmt.Errorf("spill transaction %d: %w", t.Xid, err)
	}
	a.met.spilled.Inc()
	a.met.changes.Add(float64(a.spill.Len()))
	t.Spilled, t.Changes, a.spill = r, nil, nil
	return nil
}

// spillStream is spillOpen for a streamed transaction.
func (a *assembler) spillStream(st *streamTxn) error {
	if st.spill == nil {
		if !a.spillable() {
			return nil
		}
		s, err := record.NewChangeSpill(a.store)
		if err != nil {
			return fmt.Errorf("spill streamed transaction %d: %w", st.xid, err)
		}
		st.spill = s
		a.log.Info("streamed transaction exceeds the memory budget; spilling it to disk", "xid", st.xid, "memory_budget", a.budget)
	}
	for i := range st.changes {
		if err := st.spill.Add(&st.changes[i], st.subxids[i]); err != nil {
			return fmt.Errorf("spill streamed transaction %d: %w", st.xid, err)
		}
	}
	st.changes, st.subxids = nil, nil
	a.held -= st.mem
	st.mem, st.bytes = 0, 0
	return nil
}

// finishStream hands a committed streamed transaction's spill over in t.
func (a *assembler) finishStream(st *streamTxn, t *record.Txn) error {
	if st.spill == nil {
		a.held -= st.mem
		st.mem = 0
		return nil
	}
	if err := a.spillStream(st); err != nil {
		return err
	}
	var keep func(uint32) bool
	if aborted := st.abortedSubs; len(aborted) > 0 {
		keep = func(subxid uint32) bool { return !aborted[subxid] }
	}
	r, err := st.spill.Finish(keep)
	if err != nil {
		return fmt.Errorf("spill streamed transaction %d: %w", st.xid, err)
	}
	a.met.spilled.Inc()
	a.met.changes.Add(float64(st.spill.Len()))
	t.Spilled, t.Changes, st.spill = r, nil, nil
	return nil
}

// dropStream forgets an aborted streamed transaction and deletes its spill.
func (a *assembler) dropStream(st *streamTxn) {
	a.held -= st.mem
	st.mem = 0
	if st.spill != nil {
		if err := st.spill.Remove(); err != nil {
			a.log.Warn("could not delete the spill file of an aborted transaction", "xid", st.xid, "err", err)
		}
		st.spill = nil
	}
}

// discard deletes the spill files of the transactions still open, when the
// session ends: they are received again from the slot.
func (a *assembler) discard() {
	if a.spill != nil {
		if err := a.spill.Remove(); err != nil {
			a.log.Warn("could not delete a spill file", "err", err)
		}
		a.spill = nil
	}
	for _, st := range a.streams {
		a.dropStream(st)
	}
}
