package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/state"
)

// TestHandlerSnapshotCheckpointOrdersStreamAfterRows: a retried snapshot's
// rows are read after changes that streaming then replays from the slot's
// consistent point (docs/records.md#snapshot-retries). The checkpoint
// written at that point carries the last batch's source.ts_ns, so that a
// handler restarted from it still orders those changes after every row.
func TestHandlerSnapshotCheckpointOrdersStreamAfterRows(t *testing.T) {
	ctx := context.Background()
	read := time.Date(2024, 1, 1, 0, 0, 10, 0, time.UTC)
	replayed := read.Add(-5 * time.Second) // committed before the rows were read
	p, _, life := testHandler(t, state.Checkpoint{})
	for range 2 {
		batch := txnInserting(8, read, 1)
		batch.Xid, batch.EndLSN, batch.Changes[0].Kind = 0, 0, record.Read
		if err := p.HandleSnapshot(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.SnapshotDone(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Persist(ctx, 100); err != nil {
		t.Fatal(err)
	}
	last := read.UnixNano() + 1 // the second batch follows the first
	if got := life.cps[len(life.cps)-1]; got.LSN != 100 || got.TsNs != last {
		t.Fatalf("checkpoint at the consistent point: LSN %d, ts_ns %d; want 100, %d", got.LSN, got.TsNs, last)
	}

	// A restart from that checkpoint, then the replayed change.
	p, snk, life := testHandler(t, life.cps[len(life.cps)-1])
	if err := p.Handle(ctx, txnAt(200, replayed)); err != nil {
		t.Fatal(err)
	}
	snk.delivered = 200
	if err := p.Persist(ctx, 200); err != nil {
		t.Fatal(err)
	}
	if ts := life.cps[0].TsNs; ts != last+1 {
		t.Fatalf("replayed change at ts_ns %d, want %d: after the snapshot's rows", ts, last+1)
	}
}
