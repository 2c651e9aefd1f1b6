package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/ident"
	"github.com/cdcd-dev/cdcd/test/promtest"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	testCluster = "kmabugltfmjdaj2siqr2qbxgju"
	testStream  = "ffthunp5stx6ffs2vyfqoatmfu"
)

// logSink is a slog.Handler that keeps records for assertions.
type logSink struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (h *logSink) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *logSink) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logSink) WithGroup(string) slog.Handler      { return h }

// lastAttr is the value of key in the last record logged, if any.
func (h *logSink) lastAttr(key string) (slog.Value, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var v slog.Value
	found := false
	if n := len(h.recs); n > 0 {
		h.recs[n-1].Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				v, found = a.Value, true
			}
			return !found
		})
	}
	return v, found
}

func (h *logSink) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		out = append(out, r.Message)
	}
	return out
}

// fakeStore is a Persister with function fields for failure injection.
type fakeStore struct {
	mu    sync.Mutex
	saves []File
	err   error
}

func (f *fakeStore) Save(r File) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.saves = append(f.saves, r)
	return nil
}

func (f *fakeStore) SaveCheckpoint(string, Checkpoint) error { return f.err }

func (f *fakeStore) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.saves)
}

func testRecord(st Status) File {
	r := File{
		Definition: Definition{
			ClusterID: testCluster, StreamID: testStream,
			ARN:    ident.StreamARN("aws", "us-east-1", "123456789012", testCluster, testStream),
			Format: "JSON", Ordering: "UNORDERED",
			Target: Target{
				StreamARN: "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
				RoleARN:   "arn:aws:iam::123456789012:role/cdcd-orders",
			},
			CreationTime: time.Date(2025, 1, 15, 11, 30, 0, 0, time.UTC),
		},
		Status: st,
	}
	if st.HasReason() {
		r.StatusReason = &Reason{Code: codes.KinesisAccessDenied, Message: "denied", UpdatedAt: r.Definition.CreationTime}
	}
	return r
}

type harness struct {
	s     *Stream
	logs  *logSink
	store *fakeStore
	reg   *prometheus.Registry
	m     *Metrics
	clock *time.Time
}

func newHarness(t *testing.T, st Status, threshold time.Duration) *harness {
	t.Helper()
	h := &harness{logs: &logSink{}, store: &fakeStore{}, reg: prometheus.NewRegistry()}
	now := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	h.clock = &now
	var err error
	if h.m, err = NewMetrics(h.reg); err != nil {
		t.Fatal(err)
	}
	h.s, err = NewStream(testRecord(st), Options{
		Logger: slog.New(h.logs), Metrics: h.m, Store: h.store,
		FailureThreshold: threshold, FaultLogInterval: time.Minute,
		Now: func() time.Time { return *h.clock },
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// fire raises ev through the Stream's public methods.
func (h *harness) fire(ev Event) error {
	switch ev {
	case EventCreated:
		return h.s.Created()
	case EventFault:
		return h.s.Fault(codes.KinesisThroughputExceeded, errors.New("slow down"))
	case EventDenied:
		return h.s.Fault(codes.RoleAccessDenied, errors.New("assume role denied"))
	case EventFatalFault:
		return h.s.Fault(codes.KinesisStreamNotFound, errors.New("no such stream"))
	case EventRecovered:
		return h.s.Recover(codes.OwnerSink) // testRecord's cause is the sink's
	case EventCleared:
		return h.s.Recover(codes.OwnerCapture) // the sink's cause stays
	case EventLagExceeded:
		return h.s.Lag(h.s.threshold + time.Second)
	case EventDelete:
		return h.s.Delete()
	case EventDeleted:
		return h.s.Deleted()
	}
	panic(ev)
}

func TestStreamEveryStatusEveryEvent(t *testing.T) {
	for _, from := range Statuses() {
		for _, ev := range Events() {
			want := wantNext[from][ev]
			if ev == EventCleared && !from.HasReason() {
				// With no cause outstanding, any owner's recovery
				// leaves none: it is Recovered.
				want = wantNext[from][EventRecovered]
			}
			t.Run(fmt.Sprintf("%s/%s", from, ev), func(t *testing.T) {
				h := newHarness(t, from, time.Hour)
				before := h.s.View()
				err := h.fire(ev)

				got := h.s.View()
				switch {
				case want == reject && ev == EventLagExceeded:
					// Lag is a measurement, not a command: outside
					// IMPAIRED it is recorded and changes nothing.
					if err != nil || got.Status != from {
						t.Fatalf("Lag in %s = %s, %v", from, got.Status, err)
					}
				case want == reject:
					if !errors.Is(err, ErrInvalidTransition) || got.Status != from {
						t.Fatalf("got %s, %v; want rejection", got.Status, err)
					}
				default:
					if err != nil || got.Status != want {
						t.Fatalf("got %s, %v; want %s", got.Status, err, want)
					}
				}
				if got.StatusReason == nil && got.Status.HasReason() || got.StatusReason != nil && !got.Status.HoldsReason() {
					t.Errorf("status %s with reason %+v", got.Status, got.StatusReason)
				}

				changed := got.Status != from
				reasonChanged := !changed && !slices.Equal(got.Codes(), before.Codes())
				n, _ := metricValue(t, h.reg, "cdcd_stream_transitions_total",
					map[string]string{"stream": testStream, "from": string(from), "to": string(got.Status)})
				switch {
				case got.Status == Deleted:
					// A deleted stream's series are all gone, its
					// transition counters included.
					if left := promtest.Series(t, h.reg, testStream); len(left) != 0 {
						t.Errorf("series of the deleted stream remain: %v", left)
					}
				case changed && n != 1 || !changed && n != 0:
					t.Errorf("transitions_total{%s,%s} = %v", from, got.Status, n)
				}
				wantLogs, wantSaves := 0, 0
				if changed || reasonChanged {
					wantLogs, wantSaves = 1, 1
				}
				if !changed && got.Status == Creating {
					wantSaves = 0 // a CREATING stream's causes are not saved
				}
				if msgs := h.logs.messages(); len(msgs) != wantLogs {
					t.Errorf("logged %q, want %d line(s)", msgs, wantLogs)
				}
				if n := h.store.count(); n != wantSaves {
					t.Errorf("saved %d times, want %d", n, wantSaves)
				}
				impaired, ok := metricValue(t, h.reg, "cdcd_stream_impaired", map[string]string{"stream": testStream})
				if got.Status == Deleted {
					if ok {
						t.Error("deleted stream still has an impaired series")
					}
					return
				}
				if want := got.Status == Impaired; !ok || (impaired == 1) != want {
					t.Errorf("impaired = %v (present %v) in %s", impaired, ok, got.Status)
				}
				if g, _ := metricValue(t, h.reg, "cdcd_stream_status", map[string]string{"stream": testStream, "status": string(got.Status)}); g != 1 {
					t.Errorf("status{%s} = %v, want 1", got.Status, g)
				}
			})
		}
	}
}

func TestStreamCreatingFaultFailsWithCode(t *testing.T) {
	h := newHarness(t, Creating, time.Hour)
	if err := h.s.Fault(codes.KinesisKMSAccessDenied, errors.New("key disabled")); err != nil {
		t.Fatal(err)
	}
	got := h.s.View()
	if got.Status != Failed || got.StatusReason.Code != codes.KinesisKMSAccessDenied || got.StatusReason.Message != "key disabled (see docs/runbook.md#kinesis_kms_access_denied)" {
		t.Fatalf("got %s %+v", got.Status, got.StatusReason)
	}
	if !got.StatusReason.UpdatedAt.Equal(*h.clock) {
		t.Errorf("updatedAt = %v", got.StatusReason.UpdatedAt)
	}
}

func TestStreamRepeatedFaultsAreRateLimited(t *testing.T) {
	h := newHarness(t, Active, time.Hour)
	first := *h.clock
	for range 100 {
		if err := h.s.Fault(codes.KinesisThroughputExceeded, errors.New("slow down")); err != nil {
			t.Fatal(err)
		}
	}
	if msgs := h.logs.messages(); len(msgs) != 1 || h.store.count() != 1 {
		t.Fatalf("100 faults: logs %q, %d saves; want one of each", msgs, h.store.count())
	}
	*h.clock = first.Add(2 * time.Minute)
	_ = h.s.Fault(codes.KinesisThroughputExceeded, errors.New("slow down again"))
	msgs := h.logs.messages()
	if len(msgs) != 2 || msgs[1] != "stream still impaired" {
		t.Fatalf("after the interval: %q", msgs)
	}
	got := h.s.View().StatusReason
	if !got.UpdatedAt.Equal(first) || got.Message != "slow down again (see docs/runbook.md#kinesis_throughput_exceeded)" {
		t.Errorf("reason = %+v; want updatedAt of the first fault and the latest message", got)
	}

	// A different code is news: logged and saved, but not a transition.
	_ = h.s.Fault(codes.KinesisAccessDenied, errors.New("denied"))
	if got := h.s.View(); got.StatusReason.Code != codes.KinesisAccessDenied || !got.StatusReason.UpdatedAt.Equal(*h.clock) {
		t.Errorf("reason = %+v", got.StatusReason)
	}
	if n, _ := metricValue(t, h.reg, "cdcd_stream_transitions_total", map[string]string{"from": "IMPAIRED", "to": "IMPAIRED"}); n != 0 {
		t.Errorf("IMPAIRED->IMPAIRED counted %v times", n)
	}
	if len(h.logs.messages()) != 3 || h.store.count() != 2 {
		t.Errorf("code change: logs %q, %d saves", h.logs.messages(), h.store.count())
	}
}

func TestStreamLagThreshold(t *testing.T) {
	h := newHarness(t, Active, time.Hour)
	if err := h.s.Lag(48 * time.Hour); err != nil || h.s.View().Status != Active {
		t.Fatalf("an ACTIVE stream catching up failed: %v", err)
	}
	_ = h.s.Fault(codes.RoleAccessDenied, errors.New("assume role denied"))
	if err := h.s.Lag(time.Hour); err != nil || h.s.View().Status != Impaired {
		t.Fatalf("lag at the threshold: %v, %s", err, h.s.View().Status)
	}
	if err := h.s.Lag(time.Hour + time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	got := h.s.View()
	if got.Status != Failed || got.StatusReason.Code != codes.RoleAccessDenied ||
		!strings.Contains(got.StatusReason.Message, "failure threshold") ||
		!strings.Contains(got.StatusReason.Message, "assume role denied") {
		t.Fatalf("got %s %+v", got.Status, got.StatusReason)
	}
	if got.Lag != time.Hour+time.Nanosecond {
		t.Errorf("Lag = %v", got.Lag)
	}
	if err := h.s.Lag(2 * time.Hour); err != nil {
		t.Errorf("lag after FAILED: %v", err)
	}
}

func TestStreamDefaultThreshold(t *testing.T) {
	s, err := NewStream(testRecord(Impaired), Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Lag(7*24*time.Hour - time.Second)
	if s.View().Status != Impaired {
		t.Fatal("failed before 7 days")
	}
	_ = s.Lag(7*24*time.Hour + time.Second)
	if s.View().Status != Failed {
		t.Fatal("not failed after 7 days")
	}
}

func TestStreamPersistFailureStillTransitions(t *testing.T) {
	h := newHarness(t, Active, time.Hour)
	h.store.err = errors.New("disk full")
	err := h.s.Fault(codes.KinesisStreamNotFound, errors.New("gone"))
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v", err)
	}
	if h.s.View().Status != Failed {
		t.Fatal("the fault was dropped because the disk failed")
	}
}

func TestStreamWatch(t *testing.T) {
	h := newHarness(t, Creating, time.Hour)
	snap, ch := h.s.Watch()
	if snap.Status != Creating {
		t.Fatal(snap.Status)
	}
	go func() { _ = h.s.Created() }()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch channel not closed by a transition")
	}
	if snap, _ := h.s.Watch(); snap.Status != Active {
		t.Fatal(snap.Status)
	}
}

// TestStreamConcurrent is for the race detector: a pipeline reporting and a
// control plane reading at once must leave a consistent state.
func TestStreamConcurrent(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := testRecord(Active)
	if err := st.Save(rec); err != nil {
		t.Fatal(err)
	}
	s, err := NewStream(rec, Options{Store: st, FailureThreshold: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				switch (g + i) % 4 {
				case 0:
					_ = s.Fault(codes.KinesisThroughputExceeded, errors.New("throttled"))
				case 1:
					_ = s.Recover(codes.OwnerSink)
				case 2:
					_ = s.Lag(time.Duration(i) * time.Second)
				case 3:
					snap := s.View()
					if (snap.StatusReason != nil) != snap.Status.HasReason() {
						t.Errorf("inconsistent snapshot %s %+v", snap.Status, snap.StatusReason)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			if err := s.Checkpoint(Checkpoint{LSN: uint64(100 + i), TsNs: int64(i)}); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	saved, err := st.Load(testStream)
	if err != nil {
		t.Fatal(err)
	}
	if saved.Checkpoint.LSN != 149 || s.View().Checkpoint.LSN != 149 {
		t.Errorf("checkpoint saved %v, in memory %v; want LSN 149", saved.Checkpoint, s.View().Checkpoint)
	}
	if saved.Status != s.View().Status {
		t.Errorf("saved %s, in memory %s", saved.Status, s.View().Status)
	}
}
