package sink

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/cenkalti/backoff/v4"

	"github.com/cdcd-dev/cdcd/record"
)

// countingAPI accepts everything and counts the records.
func countingAPI(n *atomic.Int64) *fakeAPI {
	return &fakeAPI{put: func(_ context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		n.Add(int64(len(in.Records)))
		return accepted(in), nil
	}}
}

// TestTxnWriterDeliveredWaitsForCommit: every part accepted is not enough;
// Delivered reaches the transaction only once it is committed.
func TestTxnWriterDeliveredWaitsForCommit(t *testing.T) {
	var n atomic.Int64
	s, _ := start(t, testConfig(record.Unordered), countingAPI(&n))
	ctx := context.Background()
	if err := s.Submit(ctx, 100, recs("k", "a")); err != nil {
		t.Fatal(err)
	}
	w, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := w.Submit(ctx, recs("k", fmt.Sprint(i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every part accepted", func() bool { return n.Load() == 7 })
	eventually(t, "the transaction before delivered", func() bool { return s.Delivered() == 100 })
	time.Sleep(20 * time.Millisecond) // give a wrong Delivered the chance to move
	if d := s.Delivered(); d != 100 {
		t.Fatalf("Delivered = %d before Commit, want 100", d)
	}
	if err := w.Commit(200); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Delivered after Commit", func() bool { return s.Delivered() == 200 })
	drain(t, s, time.Second)
}

// TestTxnWriterEmpty: a transaction committed without parts advances
// Delivered like an empty Submit.
func TestTxnWriterEmpty(t *testing.T) {
	var n atomic.Int64
	s, _ := start(t, testConfig(record.Row), countingAPI(&n))
	w, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(50); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Delivered", func() bool { return s.Delivered() == 50 })
}

// TestTxnWriterAbort: an aborted transaction never becomes Delivered; its
// replay, submitted again, does.
func TestTxnWriterAbort(t *testing.T) {
	var n atomic.Int64
	s, _ := start(t, testConfig(record.Row), countingAPI(&n))
	ctx := context.Background()
	if err := s.Submit(ctx, 100, recs("k", "a")); err != nil {
		t.Fatal(err)
	}
	w, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Submit(ctx, recs("k", "b", "c")); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	w.Abort() // idempotent
	if err := w.Submit(ctx, recs("k", "d")); err == nil {
		t.Fatal("Submit after Abort succeeded")
	}
	if err := w.Commit(200); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	drain(t, s, time.Second)
	if d := s.Delivered(); d != 100 {
		t.Fatalf("Delivered = %d after an abort, want 100", d)
	}
	// The replay.
	w, err = s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Submit(ctx, recs("k", "b", "c")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(200); err != nil {
		t.Fatal(err)
	}
	drain(t, s, time.Second)
	if d := s.Delivered(); d != 200 {
		t.Fatalf("Delivered = %d after the replay, want 200", d)
	}
}

// TestTxnWriterExclusive: one transaction in parts at a time, and no whole
// transaction in the middle of one.
func TestTxnWriterExclusive(t *testing.T) {
	var n atomic.Int64
	s, stop := start(t, testConfig(record.Unordered), countingAPI(&n))
	ctx := context.Background()
	w, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Begin(); !errors.Is(err, ErrTxnOpen) {
		t.Fatalf("second Begin: %v, want ErrTxnOpen", err)
	}
	if err := s.Submit(ctx, 10, recs("k", "a")); !errors.Is(err, ErrTxnOpen) {
		t.Fatalf("Submit while open: %v, want ErrTxnOpen", err)
	}
	if err := w.Commit(20); err != nil {
		t.Fatal(err)
	}
	if err := s.Submit(ctx, 10, recs("k", "a")); err == nil {
		t.Fatal("Submit below the committed position succeeded")
	}
	w, err = s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(5); err == nil {
		t.Fatal("Commit below the last position succeeded")
	}
	w.Abort()
	stop()
	eventually(t, "the sink to stop", func() bool {
		_, err := s.Begin()
		return errors.Is(err, ErrStopped)
	})
}

// TestTxnWriterWaitsForSpace: a part waits while the queue is full, and
// gives up with its context.
func TestTxnWriterWaitsForSpace(t *testing.T) {
	release := make(chan struct{})
	api := &fakeAPI{put: func(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
		select {
		case <-release:
			return accepted(in), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}
	cfg := testConfig(record.Unordered)
	cfg.QueueBytes = 10
	s, _ := start(t, cfg, api)
	w, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Submit(context.Background(), recs("k", strings.Repeat("x", 20))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := w.Submit(ctx, recs("k", "y")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit on a full queue: %v, want the context's error", err)
	}
	close(release)
	if err := w.Submit(context.Background(), recs("k", "y")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(1); err != nil {
		t.Fatal(err)
	}
	drain(t, s, time.Second)
}

// TestPropertyTxnWriter mixes whole transactions, transactions in parts
// and aborted ones submitted again (as after a reconnect) under the chaos
// API, and checks continuously that Delivered never covers a transaction
// that is not committed or has a record not accepted.
func TestPropertyTxnWriter(t *testing.T) {
	forSeeds(t, 100, 20, runPartsChaos)
}

func runPartsChaos(t *testing.T, seed uint64, ordering record.Ordering) {
	rng := rand.New(rand.NewPCG(seed, 0x7a27))
	cfg := Config{
		StreamName: "chaos", Ordering: ordering, MaxRecordsPerCall: 1 + rng.IntN(10), MaxRequestBytes: 200 + rng.IntN(400),
		MaxInFlight: 1 + rng.IntN(5), Linger: time.Duration(1 + rng.IntN(300_000)), QueueBytes: 50 + rng.IntN(1500),
		ImpairAfter: time.Millisecond,
		Backoff:     func() backoff.BackOff { return &backoff.ZeroBackOff{} },
	}
	cfg.MaxRecordBytes = cfg.MaxRequestBytes / 2
	c := &chaos{
		t: t, row: ordering == record.Row, maxRecs: cfg.MaxRecordsPerCall, maxBytes: cfg.MaxRequestBytes,
		rng: rand.New(rand.NewPCG(seed, 0xc4a05)), inFlight: map[string]bool{}, first: map[int]*byte{},
		accepted: map[int]int{}, lastSeq: map[string]int{}, failures: map[string]int{},
		wholeErr: []error{&types.ProvisionedThroughputExceededException{}, &types.InternalFailureException{}},
		recCodes: []string{"ProvisionedThroughputExceededException", "InternalFailure"},
	}
	s, err := New(cfg, c)
	if err != nil {
		t.Fatal(err)
	}
	c.s = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	// committed[i] is set just before transaction i's Commit (or Submit),
	// so a Delivered read before the flags cannot be ahead of them.
	var mu sync.Mutex
	var lsns []uint64
	var committed []bool
	var problems []string
	check := func() {
		d := s.Delivered()
		mu.Lock()
		defer mu.Unlock()
		for i, lsn := range lsns {
			if lsn <= d && !committed[i] {
				problems = append(problems, fmt.Sprintf("Delivered %d covers uncommitted transaction %d (lsn %d)", d, i, lsn))
			}
		}
	}
	stopWatch := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			// Not a busy loop: that would starve the chaos API's
			// yields on a small machine.
			select {
			case <-stopWatch:
				return
			case <-time.After(50 * time.Microsecond):
				check()
			}
		}
	})

	id, keys := 0, 1+rng.IntN(6)
	newRecs := func(n int) []record.Record {
		var out []record.Record
		for range n {
			key := fmt.Sprintf("k%d", rng.IntN(keys))
			pad := strings.Repeat("x", rng.IntN(cfg.MaxRecordBytes-len(key)-8))
			out = append(out, record.Record{PartitionKey: key, Data: fmt.Appendf(nil, "%d|%s", id, pad)})
			id++
		}
		return out
	}
	parts := func(w *TxnWriter, n int) ([]int, error) {
		var ids []int
		for range n {
			part := newRecs(rng.IntN(5))
			for _, r := range part {
				ids = append(ids, recordID(r.Data))
			}
			if err := w.Submit(ctx, part); err != nil {
				return nil, err
			}
		}
		return ids, nil
	}
	for i := range 20 + rng.IntN(40) {
		lsn := uint64(i+1) * 16
		mu.Lock()
		lsns = append(lsns, lsn)
		committed = append(committed, false)
		mu.Unlock()
		c.mu.Lock()
		c.txnLSN = append(c.txnLSN, lsn)
		c.txnRecs = append(c.txnRecs, nil)
		c.mu.Unlock()
		var ids []int
		switch mode := rng.IntN(4); mode {
		case 0: // whole
			recs := newRecs(rng.IntN(6))
			for _, r := range recs {
				ids = append(ids, recordID(r.Data))
			}
			c.mu.Lock()
			c.txnRecs[i] = ids
			c.mu.Unlock()
			mu.Lock()
			committed[i] = true
			mu.Unlock()
			err = s.Submit(ctx, lsn, recs)
		default: // in parts; modes 2 and 3 abort once or twice first, as a reconnect does
			for attempt := range mode {
				w, err := s.Begin()
				if err != nil {
					t.Fatal(err)
				}
				if ids, err = parts(w, rng.IntN(4)); err != nil {
					t.Fatal(err)
				}
				if attempt < mode-1 {
					w.Abort()
					check()
					continue
				}
				c.mu.Lock()
				c.txnRecs[i] = ids
				c.mu.Unlock()
				mu.Lock()
				committed[i] = true
				mu.Unlock()
				if err := w.Commit(lsn); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		check()
	}
	dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
	defer dcancel()
	if err := s.Drain(dctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	close(stopWatch)
	watch.Wait()
	check()
	c.mu.Lock()
	c.checkDelivered()
	problems = append(problems, c.problems...)
	c.mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	if want := lsns[len(lsns)-1]; s.Delivered() != want {
		t.Errorf("Delivered = %d, want %d", s.Delivered(), want)
	}
}
