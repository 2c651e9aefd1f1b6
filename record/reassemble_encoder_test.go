package record

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReassembleEncoderOutput closes the loop with the producer: a
// transaction encoded under a small record limit (so rows are chunked),
// shuffled and duplicated, reassembles to exactly what the same
// transaction encodes to without a limit.
func TestReassembleEncoderOutput(t *testing.T) {
	rel := &Relation{
		ID: 1, Schema: "public", Table: "docs", ReplicaIdentity: 'd', HasKey: true,
		Columns: []Column{
			{Name: "id", TypeOID: 20, TypMod: -1, Key: true},
			{Name: "body", TypeOID: 25, TypMod: -1},
			{Name: "n", TypeOID: 1700, TypMod: -1},
		},
	}
	text := func(s string) Datum { return Datum{Kind: DatumText, Data: []byte(s)} }
	rng := rand.New(rand.NewPCG(1, 2))
	var changes []Change
	for i := range 12 {
		body := strings.Repeat(randomText(rng, 50)+"ü☃😀\"\\", 1+rng.IntN(150))
		row := Tuple{text(strconv.Itoa(i)), text(body), text("12345678901234567890.5")}
		changes = append(changes, Change{Kind: Insert, Rel: rel, New: row})
	}
	// Deletes of rows that existed before the transaction carry the key.
	changes = append(changes, Change{Kind: Delete, Rel: rel, Old: Tuple{text("9223372036854775807"), {Kind: DatumNull}, {Kind: DatumNull}}})
	txn := &Txn{Xid: 7, CommitLSN: 0x16B374D848, EndLSN: 0x16B374D900, CommitTime: time.Unix(1705318200, 123456000), Changes: changes}

	encode := func(maxBytes int) [][]byte {
		enc, err := NewEncoder(Config{
			SystemID: 7312345678901234567, Cluster: "abcdefghijklmnopqrstuvwxyz", Database: "shop",
			Ordering: Unordered, MaxRecordBytes: maxBytes,
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := enc.Encode(txn, 0, time.Unix(1705318201, 0))
		if err != nil {
			t.Fatal(err)
		}
		var data [][]byte
		for _, r := range out.Records {
			data = append(data, r.Data)
		}
		return data
	}
	want := decodeAll(t, encode(10<<20))
	chunked := encode(MinMaxRecordBytes)
	if len(chunked) <= len(want) {
		t.Fatalf("nothing was chunked: %d records vs %d", len(chunked), len(want))
	}
	for range len(chunked) / 2 {
		chunked = append(chunked, chunked[rng.IntN(len(chunked))])
	}
	rng.Shuffle(len(chunked), func(i, j int) { chunked[i], chunked[j] = chunked[j], chunked[i] })

	r := NewReassembler(ReassemblerConfig{})
	got := map[string][]byte{}
	for _, m := range decodeAll(t, chunked) {
		full, err := r.Add(m)
		if err != nil {
			t.Fatal(err)
		}
		if full != nil {
			k, err := RowKey(full, nil)
			if err != nil {
				t.Fatal(err)
			}
			got[full.Op+k] = wireJSON(full)
		}
	}
	if s := r.Stats(); s.PendingChunks != 0 {
		t.Fatalf("left pending: %+v", s)
	}
	if len(got) != len(want) {
		t.Fatalf("reassembled %d distinct records, want %d", len(got), len(want))
	}
	for _, w := range want {
		k, _ := RowKey(w, nil)
		if g := got[w.Op+k]; !bytes.Equal(g, wireJSON(w)) {
			t.Errorf("record %s:\n got %s\nwant %s", k, g, wireJSON(w))
		}
	}
}
