package capture

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"testing"

	"github.com/jackc/pglogrepl"

	"github.com/cdcd-dev/cdcd/atrest"
	"github.com/cdcd-dev/cdcd/record"
)

// readSpill moves a spilled transaction's changes into Changes, deleting
// the spill.
func readSpill(t *testing.T, txn *record.Txn) {
	t.Helper()
	if txn.Spilled == nil {
		return
	}
	for {
		c, err := txn.Spilled.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		// A change read back lives until the next read: keep copies.
		c.Old, c.New = cloneTuple(c.Old), cloneTuple(c.New)
		txn.Changes = append(txn.Changes, c)
	}
	if err := txn.Spilled.Close(); err != nil {
		t.Fatal(err)
	}
	txn.Spilled = nil
}

func cloneTuple(t record.Tuple) record.Tuple {
	if t == nil {
		return nil
	}
	c := slices.Clone(t)
	for i := range c {
		c[i].Data = bytes.Clone(c[i].Data)
	}
	return c
}

func spillFiles(t *testing.T, dir string) int {
	t.Helper()
	e, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(e)
}

// TestAssemblerSpillsPastBudget: with a budget that a few changes exceed,
// every transaction is handed over spilled, with the very changes (and
// relations) it has in memory without a budget; aborted work leaves no
// file, and a session that ends mid-transaction deletes its files.
func TestAssemblerSpillsPastBudget(t *testing.T) {
	cases := []struct {
		name string
		msgs []pglogrepl.Message
		open int // transactions left open at the end
	}{
		{
			name: "protocol 1, relation change mid-transaction",
			msgs: []pglogrepl.Message{
				&pglogrepl.BeginMessage{Xid: 11}, relMsg(1, 'd', "id"),
				&pglogrepl.InsertMessage{RelationID: 1, Tuple: tup("a")}, &pglogrepl.InsertMessage{RelationID: 1, Tuple: tup("b")},
				relMsg(1, 'd', "id", "extra"),
				&pglogrepl.InsertMessage{RelationID: 1, Tuple: tup("c", "x")}, &pglogrepl.InsertMessage{RelationID: 1, Tuple: tup("d", "y")},
				&pglogrepl.CommitMessage{TransactionEndLSN: 50},
			},
		},
		{
			name: "streamed, with subtransaction aborts before and after spilling",
			msgs: []pglogrepl.Message{
				sStart(10, true), sRel(10, relMsg(1, 'd', "id")),
				sInsert(10, 1, "top1"), sInsert(12, 1, "sub12"), sInsert(13, 1, "sub13"), sInsert(10, 1, "top2"),
				sStop(),
				sAbort(10, 12),
				sStart(10, false), sInsert(14, 1, "sub14"), sInsert(15, 1, "sub15"), sStop(),
				sAbort(10, 15),
				sStart(20, true), sRel(20, relMsg(1, 'd', "id")), sInsert(20, 1, "other"), sStop(),
				sAbort(20, 20),
				sCommit(10, 70),
			},
		},
		{
			name: "session ends with transactions open",
			msgs: []pglogrepl.Message{
				sStart(10, true), sRel(10, relMsg(1, 'd', "id")), sInsert(10, 1, "a"), sInsert(10, 1, "b"), sStop(),
				&pglogrepl.BeginMessage{Xid: 11}, relMsg(1, 'd', "id"),
				&pglogrepl.InsertMessage{RelationID: 1, Tuple: tup("a")}, &pglogrepl.InsertMessage{RelationID: 1, Tuple: tup("b")},
			},
			open: 2,
		},
	}
	keys := pkLookup("id")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want []*record.Txn
			a := newAssembler(keys, nil, nil, nil)
			for _, m := range tc.msgs {
				txn, err := a.handle(m)
				if err != nil {
					t.Fatal(err)
				}
				if txn != nil {
					want = append(want, txn)
				}
			}

			dir := t.TempDir()
			store, err := atrest.NewSpillStore(dir, nil, atrest.SpillOptions{})
			if err != nil {
				t.Fatal(err)
			}
			a = newAssembler(keys, nil, nil, nil)
			a.store, a.budget = store, 200 // a change of one short column costs ~110
			var got []*record.Txn
			for _, m := range tc.msgs {
				txn, err := a.handle(m)
				if err != nil {
					t.Fatal(err)
				}
				if txn != nil {
					if txn.Spilled == nil || txn.Changes != nil {
						t.Fatalf("transaction %d not spilled", txn.Xid)
					}
					readSpill(t, txn)
					got = append(got, txn)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d transactions, want %d", len(got), len(want))
			}
			for i := range got {
				if values(got[i]) != values(want[i]) {
					t.Errorf("transaction %d: %s, want %s", i, values(got[i]), values(want[i]))
				}
				for j := range got[i].Changes {
					g, w := got[i].Changes[j].Rel, want[i].Changes[j].Rel
					if len(g.Columns) != len(w.Columns) {
						t.Errorf("transaction %d change %d: relation of %d columns, want %d", i, j, len(g.Columns), len(w.Columns))
					}
				}
			}
			if n := spillFiles(t, dir); n != tc.open {
				t.Fatalf("%d spill files, want %d for the open transactions", n, tc.open)
			}
			a.discard()
			if n := spillFiles(t, dir); n != 0 {
				t.Fatalf("%d spill files after discard", n)
			}
			if a.held != 0 && tc.open == 0 {
				t.Errorf("held = %d with nothing open", a.held)
			}
		})
	}
}

// TestAssemblerUnderBudgetStaysInMemory: a transaction under the budget is
// handed over in memory, as without one.
func TestAssemblerUnderBudgetStaysInMemory(t *testing.T) {
	dir := t.TempDir()
	store, err := atrest.NewSpillStore(dir, nil, atrest.SpillOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := newAssembler(pkLookup("id"), nil, nil, nil)
	a.store, a.budget = store, 1<<20
	txn := mustHandle(t, a, &pglogrepl.BeginMessage{Xid: 1}, relMsg(1, 'd', "id"),
		&pglogrepl.InsertMessage{RelationID: 1, Tuple: tup("a")}, &pglogrepl.CommitMessage{TransactionEndLSN: 9})
	if txn.Spilled != nil || values(txn) != "a" || spillFiles(t, dir) != 0 || a.held != 0 {
		t.Fatalf("spilled %v, values %q, files %d, held %d", txn.Spilled != nil, values(txn), spillFiles(t, dir), a.held)
	}
}
