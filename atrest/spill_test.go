package atrest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/record"
)

// marker is in every row; it must never reach the disk in the clear.
const marker = "PLAINTEXT-MARKER-7f3a"

// watched is a SpillStore that, whenever a run is created, checks every file in
// the directory for the marker: by then the earlier runs are on disk.
type watched struct {
	*SpillStore
	t     *testing.T
	files int
}

func (w *watched) Create() (record.RunWriter, error) {
	w.scan()
	return w.SpillStore.Create()
}

func (w *watched) scan() {
	w.t.Helper()
	entries, err := os.ReadDir(w.Dir())
	if err != nil {
		w.t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(w.Dir(), e.Name()))
		if err != nil {
			continue // read back and deleted meanwhile
		}
		w.files++
		if bytes.Contains(b, []byte(marker)) || bytes.Contains(b, []byte("orders")) {
			w.t.Fatalf("%s holds plaintext", e.Name())
		}
	}
}

func empty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("%d spill files left in %s", len(entries), dir)
	}
}

func bigTxn() *record.Txn {
	rel := &record.Relation{ID: 9, Schema: "public", Table: "orders", ReplicaIdentity: 'f', HasKey: true,
		Columns: []record.Column{{Name: "id", TypeOID: 23, Key: true}, {Name: "note", TypeOID: 25}}}
	text := func(s string) record.Datum { return record.Datum{Kind: record.DatumText, Data: []byte(s)} }
	var changes []record.Change
	for i := range 3000 {
		id := strconv.Itoa(i % 700) // most rows change several times
		row := record.Tuple{text(id), text(marker + strconv.Itoa(i))}
		switch {
		case i < 700:
			changes = append(changes, record.Change{Kind: record.Insert, Rel: rel, New: row})
		case i%5 == 0:
			changes = append(changes, record.Change{Kind: record.Delete, Rel: rel, Old: record.Tuple{text(id), text(marker)}})
		default:
			changes = append(changes, record.Change{Kind: record.Update, Rel: rel, Old: record.Tuple{text(id), text(marker)}, New: row})
		}
	}
	return &record.Txn{Xid: 1, CommitLSN: 0x1000, EndLSN: 0x1030, CommitTime: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), Changes: changes}
}

// TestEncryptedRunsMatchEncode: a transaction sorted in many encrypted
// runs (and read through a ChangeSpill, as capture hands it over) encodes
// to Encode's records; no file ever holds plaintext, and none is left.
func TestEncryptedRunsMatchEncode(t *testing.T) {
	dir := t.TempDir()
	st, err := NewSpillStore(dir, nil, SpillOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store := &watched{SpillStore: st, t: t}
	txn := bigTxn()
	enc, err := record.NewEncoder(record.Config{SystemID: 1, Cluster: "abcdefghijklmnopqrstuvwxyz", Database: "db", Ordering: record.Row})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	want, err := enc.Encode(txn, 0, now)
	if err != nil {
		t.Fatal(err)
	}

	cs, err := record.NewChangeSpill(store)
	if err != nil {
		t.Fatal(err)
	}
	for i := range txn.Changes {
		if err := cs.Add(&txn.Changes[i], 0); err != nil {
			t.Fatal(err)
		}
	}
	spilled := *txn
	spilled.Changes = nil
	if spilled.Spilled, err = cs.Finish(nil); err != nil {
		t.Fatal(err)
	}
	var got []record.Record
	_, err = enc.EncodeSpilled(context.Background(), &spilled, 0, now, record.SpillOptions{Store: store, Budget: 16 << 10, MaxFanIn: 4},
		func(recs []record.Record) error {
			store.scan()
			got = append(got, recs...)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if store.files < 10 {
		t.Fatalf("only %d spill files seen: the budget did not make runs", store.files)
	}
	if len(got) != len(want.Records) {
		t.Fatalf("%d records, want %d", len(got), len(want.Records))
	}
	for i := range got {
		if got[i].PartitionKey != want.Records[i].PartitionKey || !bytes.Equal(got[i].Data, want.Records[i].Data) {
			t.Fatalf("record %d: got %s, want %s", i, got[i].Data, want.Records[i].Data)
		}
	}
	empty(t, dir)
}

// TestAbandonedSpillIsDeleted: a ChangeSpill removed (the transaction
// rolled back) or closed unread leaves nothing; Sweep clears leftovers.
func TestAbandonedSpillIsDeleted(t *testing.T) {
	dir := t.TempDir()
	st, err := NewSpillStore(dir, nil, SpillOptions{})
	if err != nil {
		t.Fatal(err)
	}
	txn := bigTxn()
	for _, finish := range []bool{false, true} {
		cs, err := record.NewChangeSpill(st)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			if err := cs.Add(&txn.Changes[i], 0); err != nil {
				t.Fatal(err)
			}
		}
		if finish {
			r, err := cs.Finish(nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
		} else if err := cs.Remove(); err != nil {
			t.Fatal(err)
		}
		empty(t, dir)
	}
	if _, err := record.NewChangeSpill(st); err != nil {
		t.Fatal(err)
	}
	if n, err := Sweep(dir); n != 1 || err != nil {
		t.Fatalf("Sweep = %d, %v; want the 1 file left", n, err)
	}
	empty(t, dir)
}
