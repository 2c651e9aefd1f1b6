package record

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// memStore is a RunStore in memory that counts the runs alive, so tests
// can check that every run was deleted.
type memStore struct {
	mu      sync.Mutex
	live    int
	created int
}

func (s *memStore) Create() (RunWriter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live++
	s.created++
	return &memRun{s: s}, nil
}

func (s *memStore) alive() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

type memRun struct {
	s       *memStore
	entries [][]byte
	i       int
	gone    bool
}

func (r *memRun) Write(p []byte) error {
	r.entries = append(r.entries, bytes.Clone(p))
	return nil
}
func (r *memRun) Finish() (RunReader, error) { return r, nil }
func (r *memRun) Remove() error              { return r.Close() }
func (r *memRun) Next() ([]byte, error) {
	if r.i >= len(r.entries) {
		return nil, io.EOF
	}
	r.i++
	return r.entries[r.i-1], nil
}

// NextInto reads as atrest's spill files do, into buf, after spoiling
// what buf held: a caller that keeps an entry past the next read sees
// garbage.
func (r *memRun) NextInto(buf []byte) ([]byte, error) {
	for i := range buf[:cap(buf)] {
		buf[:cap(buf)][i] = 0xFF
	}
	p, err := r.Next()
	if err != nil {
		return nil, err
	}
	return append(buf[:0], p...), nil
}

func (r *memRun) Close() error {
	if !r.gone {
		r.gone = true
		r.s.mu.Lock()
		r.s.live--
		r.s.mu.Unlock()
	}
	return nil
}

// genTxn makes a random transaction over a small key space: inserts,
// updates (some changing the key, some with unchanged TOASTed values),
// deletes, truncates, keyless changes, relation versions, binary keys and
// values large enough to be chunked. It follows a model of the tables so
// most transactions are valid, but not all: Encode's errors must be
// EncodeSpilled's errors too.
func genTxn(r *rand.Rand) *Txn {
	mk := func(id uint32, name string, ident byte, keyed bool) *Relation {
		cols := []Column{{Name: "id", TypeOID: oidInt4, Key: keyed}, {Name: "k2", TypeOID: oidText, Key: keyed && id == 3},
			{Name: "body", TypeOID: oidText}, {Name: "qty", TypeOID: oidInt4}}
		return &Relation{ID: id, Schema: "public", Table: name, ReplicaIdentity: ident, HasKey: keyed, Columns: cols}
	}
	rels := []*Relation{mk(1, "plain", 'd', true), mk(2, "full", 'f', true), mk(3, "pair", 'd', true), mk(4, "log", 'f', false)}
	// img is set while a row has an image in the transaction that an
	// unchanged value can be filled from; shape is bumped by relation
	// versions that change the shape.
	type row struct {
		id, k2, body, qty string
		img               bool
	}
	const keys = 6
	state := make([]map[string]row, len(rels))
	for i := range state {
		state[i] = map[string]row{}
		for k := range keys {
			if r.IntN(2) == 0 {
				state[i][strconv.Itoa(k)] = row{strconv.Itoa(k), "a", "old" + strconv.Itoa(k), "1", false}
			}
		}
	}
	body := func() string {
		if r.IntN(10) == 0 {
			return strings.Repeat("é<"+strconv.Itoa(r.IntN(100)), 400) // chunked at 1 KiB records
		}
		return "b" + strconv.Itoa(r.IntN(1000))
	}
	datum := func(s string, int4 bool) Datum {
		if int4 && r.IntN(4) == 0 {
			n, _ := strconv.Atoi(s)
			return Datum{Kind: DatumBinary, Data: binary.BigEndian.AppendUint32(nil, uint32(n))}
		}
		return Datum{Kind: DatumText, Data: []byte(s)}
	}
	full := func(w row) Tuple {
		return Tuple{datum(w.id, true), datum(w.k2, false), datum(w.body, false), datum(w.qty, true)}
	}
	keyOnly := func(rel *Relation, w row) Tuple {
		if rel.ReplicaIdentity == 'f' {
			return full(w)
		}
		t := Tuple{datum(w.id, true), {Kind: DatumNull}, {Kind: DatumNull}, {Kind: DatumNull}}
		if rel.Columns[1].Key {
			t[1] = datum(w.k2, false)
		}
		return t
	}
	pick := func(m map[string]row, present bool) (string, bool) {
		for range 10 {
			k := strconv.Itoa(r.IntN(keys))
			if _, ok := m[k]; ok == present {
				return k, true
			}
		}
		return "", false
	}
	var changes []Change
	n := 1 + r.IntN(120)
	for range n {
		i := r.IntN(len(rels))
		rel, m := rels[i], state[i]
		switch op := r.IntN(20); {
		case op == 0:
			changes = append(changes, Change{Kind: Truncate, Rel: rel})
			clear(m)
		case op == 1 && i != 3:
			// A new relation version: the same shape, or a renamed column
			// that an earlier image cannot fill.
			nr := *rel
			nr.Columns = append([]Column(nil), rel.Columns...)
			if r.IntN(5) == 0 {
				nr.Columns[3].Name = "qty" + strconv.Itoa(r.IntN(9))
				for k, w := range m {
					w.img = false
					m[k] = w
				}
			}
			rels[i] = &nr
		case op < 7:
			k, ok := pick(m, false)
			if i == 3 {
				k, ok = strconv.Itoa(r.IntN(keys)), true
			}
			if !ok {
				continue
			}
			w := row{k, "a", body(), strconv.Itoa(r.IntN(50)), true}
			m[k] = w
			kind := Insert
			if r.IntN(8) == 0 {
				kind = Read // as a snapshot batch would have it
			}
			changes = append(changes, Change{Kind: kind, Rel: rel, New: full(w)})
		case op < 16:
			k, ok := pick(m, true)
			if !ok {
				continue
			}
			old := m[k]
			w := old
			w.qty = strconv.Itoa(r.IntN(50))
			// Mostly where the value can be filled; sometimes not, which
			// both encoders must refuse.
			toast := r.IntN(3) == 0 && (rel.ReplicaIdentity == 'f' || old.img || r.IntN(30) == 0)
			w.img = true
			if !toast {
				w.body = body()
			}
			ch := Change{Kind: Update, Rel: rel}
			if r.IntN(3) == 0 && i != 3 {
				if nk, ok := pick(m, false); ok {
					w.id = nk
					delete(m, k)
					ch.Old = keyOnly(rel, old)
				}
			}
			if rel.ReplicaIdentity == 'f' {
				ch.Old = full(old)
			}
			m[w.id] = w
			ch.New = full(w)
			if toast {
				ch.New[2] = Datum{Kind: DatumUnchanged}
			}
			changes = append(changes, ch)
		default:
			k, ok := pick(m, true)
			if !ok {
				continue
			}
			changes = append(changes, Change{Kind: Delete, Rel: rel, Old: keyOnly(rel, m[k])})
			if i != 3 {
				delete(m, k)
			}
		}
	}
	return txnAt(0x16B374D848+uint64(r.IntN(1000)), changes...)
}

// TestEncodeSpilledMatchesEncode: for random transactions, with budgets
// that make many runs and merge rounds or none at all, EncodeSpilled
// emits exactly Encode's records (same order, partition keys and bytes)
// and leaves no run behind.
func TestEncodeSpilledMatchesEncode(t *testing.T) {
	var stats struct{ ok, failed, records, runs, chunked, placeholders int }
	for seed := range uint64(600) {
		r := rand.New(rand.NewPCG(seed, 99))
		txn := genTxn(r)
		for _, mode := range []struct {
			ordering     Ordering
			emitTruncate bool
		}{{Row, false}, {Unordered, true}} {
			enc := newTestEncoder(t, func(c *Config) {
				c.Ordering, c.EmitTruncate, c.MaxRecordBytes = mode.ordering, mode.emitTruncate, 1024
			})
			want, wantErr := enc.Encode(txn, 77, testNow)
			store := &memStore{}
			opts := SpillOptions{Store: store, Budget: 256 << r.IntN(8), MaxFanIn: 2 + r.IntN(3), BatchBytes: r.IntN(4000)}
			in := *txn
			if seed%2 == 1 { // read back from a spill, as capture hands large transactions over
				in.Spilled = spillAll(t, store, txn.Changes)
			}
			var got []Record
			calls := 0
			res, err := enc.EncodeSpilled(context.Background(), &in, 77, testNow, opts, func(recs []Record) error {
				calls++
				got = append(got, recs...)
				return nil
			})
			name := fmt.Sprintf("seed %d %s emitTruncate=%v budget %d", seed, mode.ordering, mode.emitTruncate, opts.Budget)
			if n := store.alive(); n != 0 {
				t.Fatalf("%s: %d runs not deleted", name, n)
			}
			if (wantErr != nil) != (err != nil) {
				t.Fatalf("%s: Encode error %v, EncodeSpilled error %v", name, wantErr, err)
			}
			if wantErr != nil {
				stats.failed++
				continue
			}
			stats.ok++
			for _, ch := range txn.Changes {
				if ch.Kind == Update && ch.Old != nil && ch.Rel.ReplicaIdentity != 'f' && ch.New[2].Kind == DatumUnchanged {
					stats.placeholders++
				}
			}
			stats.records += len(got)
			stats.runs += store.created
			if res.TsNs != want.TsNs || len(res.SkippedTruncates) != len(want.SkippedTruncates) {
				t.Fatalf("%s: TsNs %d skipped %d, want %d and %d", name, res.TsNs, len(res.SkippedTruncates), want.TsNs, len(want.SkippedTruncates))
			}
			for i := range res.SkippedTruncates {
				if res.SkippedTruncates[i] != want.SkippedTruncates[i] {
					t.Fatalf("%s: skipped truncate %d differs", name, i)
				}
			}
			if len(got) != len(want.Records) {
				t.Fatalf("%s: %d records, want %d\n got: %s\nwant: %s", name, len(got), len(want.Records), dumpRecords(got), dumpRecords(want.Records))
			}
			for i := range got {
				if got[i].PartitionKey != want.Records[i].PartitionKey || !bytes.Equal(got[i].Data, want.Records[i].Data) {
					t.Fatalf("%s: record %d differs\n got: %s %s\nwant: %s %s", name, i,
						got[i].PartitionKey, got[i].Data, want.Records[i].PartitionKey, want.Records[i].Data)
				}
				if bytes.HasPrefix(got[i].Data, []byte(`{"type":"fragment"`)) {
					stats.chunked++
				}
			}
		}
	}
	t.Logf("%d encoded alike, %d refused by both; %d records (%d fragments), %d runs, %d key changes resolved across passes",
		stats.ok, stats.failed, stats.records, stats.chunked, stats.runs, stats.placeholders)
	if stats.ok < 1000 || stats.chunked == 0 || stats.placeholders == 0 {
		t.Fatalf("the generator made too few valid or chunked transactions: %+v", stats)
	}
}

func dumpRecords(recs []Record) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "\n  %s %.200s", r.PartitionKey[:6], r.Data)
	}
	return b.String()
}

// TestEncodeSpilledKeyChangeNeedsImage: key changes whose new row takes
// unchanged TOASTed values from the old row's image, in a chain and in a
// swap, resolved over several passes.
func TestEncodeSpilledKeyChangeNeedsImage(t *testing.T) {
	items := itemsRel()
	txn := testTxn(
		insertOf(items, tup("1", "big", "1")),
		insertOf(items, tup("2", "huge", "2")),
		updateOf(items, tup("1", nil, nil), tup("10", toast, "3")),  // 1 → 10
		updateOf(items, tup("10", nil, nil), tup("11", toast, "4")), // 10 → 11
		updateOf(items, tup("11", nil, nil), tup("3", toast, "5")),  // 11 → 3
		// swap 2 and 3 through 9
		updateOf(items, tup("2", nil, nil), tup("9", toast, "6")),
		updateOf(items, tup("3", nil, nil), tup("2", toast, "7")),
		updateOf(items, tup("9", nil, nil), tup("3", toast, "8")),
	)
	enc := newTestEncoder(t, nil)
	want, err := enc.Encode(txn, 0, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, budget := range []int{64, 1 << 20} {
		store := &memStore{}
		var got []Record
		if _, err := enc.EncodeSpilled(context.Background(), txn, 0, testNow, SpillOptions{Store: store, Budget: budget}, func(r []Record) error {
			got = append(got, r...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if s, w := strings.Join(summarize(t, got), "\n"), strings.Join(summarize(t, want.Records), "\n"); s != w {
			t.Fatalf("budget %d:\n got %s\nwant %s", budget, s, w)
		}
		if store.alive() != 0 {
			t.Fatalf("budget %d: runs left", budget)
		}
	}
}

func TestEncodeSpilledEmitError(t *testing.T) {
	items := itemsRel()
	var changes []Change
	for i := range 100 {
		changes = append(changes, insertOf(items, tup(strconv.Itoa(i), "x", "1")))
	}
	store := &memStore{}
	stop := errors.New("stop")
	enc := newTestEncoder(t, nil)
	_, err := enc.EncodeSpilled(context.Background(), testTxn(changes...), 0, testNow, SpillOptions{Store: store, Budget: 512, BatchBytes: 1}, func([]Record) error { return stop })
	if err != stop {
		t.Fatalf("err = %v, want emit's error as is", err)
	}
	if store.alive() != 0 {
		t.Fatal("runs left after an emit error")
	}
}

func TestEncodeRefusesSpilled(t *testing.T) {
	txn := testTxn()
	txn.Spilled = SliceChanges(nil)
	if _, err := newTestEncoder(t, nil).Encode(txn, 0, testNow); !errors.Is(err, ErrMalformedChange) {
		t.Fatalf("Encode of a spilled transaction: %v, want ErrMalformedChange", err)
	}
}

// TestChangeSpillRoundTrip: changes come back as they went in, relations
// by pointer, skipping the tags Finish's filter rejects.
func TestChangeSpillRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	txn := genTxn(r)
	for len(txn.Changes) < 50 {
		txn = genTxn(r)
	}
	store := &memStore{}
	s, err := NewChangeSpill(store)
	if err != nil {
		t.Fatal(err)
	}
	for i := range txn.Changes {
		if err := s.Add(&txn.Changes[i], uint32(i%3)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Len() != len(txn.Changes) || s.Bytes() == 0 {
		t.Fatalf("Len %d Bytes %d", s.Len(), s.Bytes())
	}
	cr, err := s.Finish(func(tag uint32) bool { return tag != 1 })
	if err != nil {
		t.Fatal(err)
	}
	for i := range txn.Changes {
		if i%3 == 1 {
			continue
		}
		got, err := cr.Next()
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		want := txn.Changes[i]
		if got.Kind != want.Kind || got.Rel != want.Rel || fmt.Sprint(got.Old) != fmt.Sprint(want.Old) || fmt.Sprint(got.New) != fmt.Sprint(want.New) ||
			(got.Old == nil) != (want.Old == nil) || (got.New == nil) != (want.New == nil) {
			t.Fatalf("change %d: got %+v, want %+v", i, got, want)
		}
	}
	if _, err := cr.Next(); err != io.EOF {
		t.Fatalf("after the last change: %v, want io.EOF", err)
	}
	if err := cr.Close(); err != nil || store.alive() != 0 {
		t.Fatalf("Close: %v, %d runs left", err, store.alive())
	}
}

// TestEncodeSpilledCancel: a cancelled context stops the work with its own
// error, and deletes the runs.
func TestEncodeSpilledCancel(t *testing.T) {
	items := itemsRel()
	var changes []Change
	for i := range 5000 {
		changes = append(changes, insertOf(items, tup(strconv.Itoa(i), "x", "1")))
	}
	for _, after := range []int{0, 1, 3} {
		store := &memStore{}
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		_, err := newTestEncoder(t, nil).EncodeSpilled(ctx, testTxn(changes...), 0, testNow, SpillOptions{Store: store, Budget: 4096, BatchBytes: 1},
			func([]Record) error {
				if calls++; calls == after {
					cancel()
				}
				return nil
			})
		if after == 0 {
			cancel()
			_, err = newTestEncoder(t, nil).EncodeSpilled(ctx, testTxn(changes...), 0, testNow, SpillOptions{Store: store, Budget: 4096}, func([]Record) error { return nil })
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancel after %d batches: %v, want context.Canceled", after, err)
		}
		if store.alive() != 0 {
			t.Fatalf("cancel after %d batches: %d runs left", after, store.alive())
		}
		cancel()
	}
}

// insertsOf keeps a transaction's INSERTs as PostgreSQL could commit them:
// at most one per primary key (a table without a key takes any).
func insertsOf(txn *Txn) *Txn {
	seen := map[string]bool{}
	var kept []Change
	for _, ch := range txn.Changes {
		if ch.Kind != Insert {
			continue
		}
		if isKeyed(ch.Rel) {
			id := string(ch.New[0].Data) // genTxn's ids are int4, in text or binary
			if ch.New[0].Kind == DatumBinary {
				id = strconv.Itoa(int(binary.BigEndian.Uint32(ch.New[0].Data)))
			}
			k := fmt.Sprint(ch.Rel.ID, id)
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		kept = append(kept, ch)
	}
	return txnAt(txn.CommitLSN, kept...)
}

// TestEncodeSpilledInsertsOnly: a transaction of INSERTs only, spilled or
// not, is encoded in one pass that writes no runs, into exactly Encode's
// records.
func TestEncodeSpilledInsertsOnly(t *testing.T) {
	var records, chunked, keyless int
	for seed := range uint64(300) {
		txn := insertsOf(genTxn(rand.New(rand.NewPCG(seed, 7))))
		for _, ordering := range []Ordering{Row, Unordered} {
			enc := newTestEncoder(t, func(c *Config) { c.Ordering, c.MaxRecordBytes = ordering, 1024 })
			want, err := enc.Encode(txn, 77, testNow)
			if err != nil {
				t.Fatalf("seed %d: Encode: %v", seed, err)
			}
			for _, spilled := range []bool{false, true} {
				name := fmt.Sprintf("seed %d %s spilled=%v", seed, ordering, spilled)
				store := &memStore{}
				in := *txn
				if spilled {
					in.Spilled = spillAll(t, store, txn.Changes)
				}
				var got []Record
				opts := SpillOptions{Store: store, Budget: 256, BatchBytes: 2000}
				if _, err := enc.EncodeSpilled(context.Background(), &in, 77, testNow, opts, func(recs []Record) error {
					got = append(got, recs...)
					return nil
				}); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if runs := store.created - btoi(spilled); runs != 0 || store.alive() != 0 {
					t.Fatalf("%s: %d runs written, %d left; want none", name, runs, store.alive())
				}
				if len(got) != len(want.Records) {
					t.Fatalf("%s: %d records, want %d", name, len(got), len(want.Records))
				}
				for i := range got {
					if got[i].PartitionKey != want.Records[i].PartitionKey || !bytes.Equal(got[i].Data, want.Records[i].Data) {
						t.Fatalf("%s: record %d differs\n got: %s\nwant: %s", name, i, got[i].Data, want.Records[i].Data)
					}
					if bytes.HasPrefix(got[i].Data, []byte(`{"type":"fragment"`)) {
						chunked++
					}
					if bytes.Contains(got[i].Data, []byte(`"table":"log"`)) {
						keyless++
					}
				}
				records += len(got)
			}
		}
	}
	t.Logf("%d records, %d fragments, %d of a table without a key", records, chunked, keyless)
	if records < 1000 || chunked == 0 || keyless == 0 {
		t.Fatalf("the generator made too few records of some kind: %d records, %d fragments, %d keyless", records, chunked, keyless)
	}
}

func spillAll(t *testing.T, store RunStore, changes []Change) ChangeReader {
	t.Helper()
	s, err := NewChangeSpill(store)
	if err != nil {
		t.Fatal(err)
	}
	for i := range changes {
		if err := s.Add(&changes[i], 0); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.Finish(nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
