package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/sink"
	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/test/kinesisfake"
)

// These tests hold the handler to what capture relies on before it
// confirms a position to PostgreSQL (docs/delivery.md#confirmation):
// Delivered is only what Kinesis accepted, and Persist returns nil only
// once the checkpoint is written, Persisted never running ahead of it.

// TestHandlerPersistFailureHoldsThePosition: when the checkpoint cannot be
// written, Persist returns the error, which capture passes up instead of
// confirming, and Persisted stays where it was, so capture tries again at
// its next status update. The Persist that succeeds then writes the
// checkpoint with the ts_ns that belongs to its LSN.
func TestHandlerPersistFailureHoldsThePosition(t *testing.T) {
	p, snk, life := testHandler(t, state.Checkpoint{LSN: 100, TsNs: 5})
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	for i, end := range []uint64{200, 300} {
		if err := p.Handle(ctx, txnAt(end, base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	snk.delivered = 300

	errDisk := errors.New("no space left on device")
	life.cpErr = errDisk
	for attempt := range 2 {
		if err := p.Persist(ctx, 300); !errors.Is(err, errDisk) {
			t.Fatalf("attempt %d: Persist = %v, want the checkpoint's error", attempt, err)
		}
		if got := p.Persisted(); got != 100 {
			t.Fatalf("attempt %d: Persisted = %d after a failed checkpoint, want 100", attempt, got)
		}
	}
	if len(life.cps) != 0 {
		t.Fatalf("checkpoints written: %+v", life.cps)
	}

	life.cpErr = nil
	if err := p.Persist(ctx, 300); err != nil {
		t.Fatal(err)
	}
	want := []state.Checkpoint{{LSN: 300, TsNs: base.Add(time.Second).UnixNano()}}
	if !slices.Equal(life.cps, want) || p.Persisted() != 300 {
		t.Fatalf("checkpoints %+v, Persisted %d; want %+v and 300", life.cps, p.Persisted(), want)
	}
}

// TestHandlerDeliveredIsWhatKinesisAccepted runs the handler on a real
// sink against a Kinesis that refuses the record of one transaction:
// Delivered stops at the end of the transaction before it, although a
// later transaction's record is accepted, and moves on only once Kinesis
// accepts the refused record. The checkpoint follows Delivered.
func TestHandlerDeliveredIsWhatKinesisAccepted(t *testing.T) {
	var mu sync.Mutex
	refuse, refusals := map[string]bool{"2": true}, 0 // by row id
	fake := kinesisfake.New(t, kinesisfake.Options{Keep: true, Fail: func(_ int, e kinesisfake.Entry) (string, string) {
		mu.Lock()
		defer mu.Unlock()
		if refuse[rowID(t, e.Data)] {
			refusals++
			return "ProvisionedThroughputExceededException", "refused by the test"
		}
		return "", ""
	}})
	snk, err := sink.New(sink.Config{
		StreamName: "s", Ordering: record.Unordered, Linger: time.Millisecond,
		Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(5 * time.Millisecond) },
	}, fake.Client())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = snk.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })

	p, life := testHandlerOn(t, state.Checkpoint{LSN: 100}, sinkSubmitter{snk})
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, end := range []uint64{200, 300, 400} {
		if err := p.Handle(ctx, txnInserting(end, base.Add(time.Duration(i)*time.Second), i+1)); err != nil {
			t.Fatal(err)
		}
	}

	// Rows 1 and 3 landed and row 2 was refused several times: Delivered
	// covers the first transaction only.
	waitFor(t, "rows 1 and 3 accepted, row 2 refused three times", func() bool {
		landed := map[string]bool{}
		for _, e := range fake.Entries() {
			landed[rowID(t, e.Data)] = true
		}
		mu.Lock()
		defer mu.Unlock()
		return landed["1"] && landed["3"] && refusals >= 3
	})
	if got := p.Delivered(); got != 200 {
		t.Fatalf("Delivered = %d while the transaction ending at 300 is refused, want 200", got)
	}
	if err := p.Persist(ctx, p.Delivered()); err != nil {
		t.Fatal(err)
	}
	if got, want := life.cps[len(life.cps)-1], (state.Checkpoint{LSN: 200, TsNs: base.UnixNano()}); got != want {
		t.Fatalf("checkpoint %+v, want %+v", got, want)
	}

	mu.Lock()
	clear(refuse)
	mu.Unlock()
	waitFor(t, "Delivered to reach 400", func() bool { return p.Delivered() == 400 })
	if err := p.Persist(ctx, p.Delivered()); err != nil {
		t.Fatal(err)
	}
	if got, want := life.cps[len(life.cps)-1], (state.Checkpoint{LSN: 400, TsNs: base.Add(2 * time.Second).UnixNano()}); got != want {
		t.Fatalf("checkpoint %+v, want %+v", got, want)
	}
}

// rowID is after.id of a record, as JSON text.
func rowID(t *testing.T, data []byte) string {
	var r struct {
		After map[string]json.RawMessage `json:"after"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Errorf("Kinesis got something that is not a record: %v: %q", err, data)
	}
	return string(r.After["id"])
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
