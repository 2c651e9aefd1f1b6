package record

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
)

// history is a source table's changes as a stream would carry them, with
// the table's true final state.
type history struct {
	records []*Message
	truth   map[string]RowImage // RowKey → row
}

// genHistory simulates nTx committed transactions on public.t (key id)
// and emits what write-set compaction yields (docs/records.md#compaction): one record per
// touched row per transaction, upserts as c/u/r and, rarely, an op no
// consumer knows yet; truncates only when withTruncate.
func genHistory(rng *rand.Rand, nTx, nKeys int, withTruncate bool) history {
	h := history{truth: map[string]RowImage{}}
	for tx := range nTx {
		ts := int64(1_700_000_000_000_000_000 + 1000*(tx+1))
		emit := func(op string, before, after RowImage) {
			m := fullMsg(op, ts, before, after)
			m.Source.TxID = strconv.Itoa(tx)
			h.records = append(h.records, m)
		}
		if withTruncate && tx > 0 && rng.IntN(15) == 0 {
			emit("t", nil, nil)
			clear(h.truth)
		}
		for _, k := range rng.Perm(nKeys)[:1+rng.IntN(min(4, nKeys))] {
			id := RowImage{{Name: "id", Value: json.RawMessage(strconv.Itoa(k))}}
			key := id.Key()
			_, exists := h.truth[key]
			if exists && rng.IntN(3) == 0 {
				emit("d", id, nil)
				delete(h.truth, key)
				continue
			}
			text, _ := json.Marshal(randomText(rng, 40))
			row := append(id[:1:1],
				ColumnValue{Name: "big", Value: json.RawMessage(strconv.FormatInt(rng.Int64(), 10))},
				ColumnValue{Name: "v", Value: text})
			op := "c"
			switch {
			case tx < nTx/10:
				op = "r" // initial snapshot reads
			case rng.IntN(20) == 0:
				op = "x" // an op added after this consumer was written
			case exists:
				op = "u"
			}
			emit(op, nil, row)
			h.truth[key] = row
		}
	}
	return h
}

// deliver encodes records as a stream would deliver them: some chunked
// into fragments, every piece possibly redelivered, all shuffled
// (UNORDERED with at-least-once delivery).
func deliver(rng *rand.Rand, records []*Message) [][]byte {
	var stream [][]byte
	for _, m := range records {
		m.TsNs = m.Source.TsNs + 1000
		if (m.Before != nil || m.After != nil) && rng.IntN(4) == 0 {
			stream = append(stream, chunkRecords(rng, m, 5)...)
			continue
		}
		stream = append(stream, wireJSON(m))
		if rng.IntN(5) == 0 {
			// A redelivery differs only in processing time.
			dup := *m
			dup.TsNs += 7777
			stream = append(stream, wireJSON(&dup))
		}
	}
	for range len(stream) / 3 {
		stream = append(stream, stream[rng.IntN(len(stream))])
	}
	rng.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })
	return stream
}

// consume runs a stream through Decode and Reassembler, handing each
// complete record to apply.
func consume(t *testing.T, stream [][]byte, apply func(*Message)) {
	t.Helper()
	r := NewReassembler(ReassemblerConfig{})
	for _, data := range stream {
		m, err := Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		full, err := r.Add(m)
		if err != nil {
			t.Fatal(err)
		}
		if full != nil {
			apply(full)
		}
	}
	if s := r.Stats(); s.PendingChunks != 0 {
		t.Fatalf("records left incomplete: %+v", s)
	}
}

func liveRows(s *MemStore) map[string]RowImage {
	out := map[string]RowImage{}
	for _, r := range s.Rows() {
		out[r.Key.Row] = r.Row
	}
	return out
}

// TestConvergenceUnknownOpIsUpsert: a consumer that knows only c and d and
// treats every other op as an upsert of after (docs/records.md#operations) ends with the same
// replica as the full consumer, and both with the source's final state,
// however the stream is shuffled and duplicated.
func TestConvergenceUnknownOpIsUpsert(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 42))
		h := genHistory(rng, 60, 12, false)
		stream := deliver(rng, h.records)

		full := NewMemStore(0)
		fullApplier := &Applier{Store: full, KeyColumns: pkID}
		dedupe := NewDeduper(DeduperConfig{KeyColumns: pkID})
		consume(t, stream, func(m *Message) {
			if seen, err := dedupe.Seen(m); err != nil || seen {
				return
			}
			if _, err := fullApplier.Apply(ctx, m); err != nil {
				t.Fatal(err)
			}
		})

		// The minimal consumer: "d" deletes, anything else is "c". It also
		// skips deduplication, leaning on last-writer-wins alone.
		minimal := NewMemStore(0)
		minimalApplier := &Applier{Store: minimal, KeyColumns: pkID}
		consume(t, stream, func(m *Message) {
			cd := *m
			if cd.Op != "d" {
				cd.Op = "c"
			}
			if _, err := minimalApplier.Apply(ctx, &cd); err != nil {
				t.Fatal(err)
			}
		})

		if !reflect.DeepEqual(full.Rows(), minimal.Rows()) {
			t.Fatalf("seed %d: stores differ\nfull    %v\nminimal %v", seed, full.Rows(), minimal.Rows())
		}
		if got := liveRows(full); !reflect.DeepEqual(got, h.truth) {
			t.Fatalf("seed %d: replica %v\nwant %v", seed, got, h.truth)
		}
	}
}

// TestConvergenceWithTruncates: truncate records (docs/records.md#chunking opt-in),
// shuffled with everything else, still converge.
func TestConvergenceWithTruncates(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		h := genHistory(rng, 80, 10, true)
		store := NewMemStore(0)
		a := &Applier{Store: store, KeyColumns: pkID}
		consume(t, deliver(rng, h.records), func(m *Message) {
			if _, err := a.Apply(ctx, m); err != nil {
				t.Fatal(err)
			}
		})
		if got := liveRows(store); !reflect.DeepEqual(got, h.truth) {
			t.Fatalf("seed %d: replica %v\nwant %v", seed, fmt.Sprint(got), fmt.Sprint(h.truth))
		}
	}
}
