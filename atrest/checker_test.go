package atrest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/state"
)

const (
	faultCMK   = "fault " + string(codes.ClusterCMKInaccessible)
	recoverKey = "recover " + string(codes.OwnerClusterKey)
)

func newTestChecker(t *testing.T, opts CheckerOptions) (*Checker, *kmsModel, *recorder) {
	t.Helper()
	k, m := newTestKeyring(t, Options{})
	rec := &recorder{}
	c, err := NewChecker(k, rec, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, m, rec
}

func TestCheckerOutcomes(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		fails []error // one check per entry; nil is a success
		want  []string
	}{
		// The first passing check reports recovery: it clears a code the
		// stream carries from before a restart.
		{"healthy", []error{nil, nil}, []string{recoverKey}},
		{"disabled then enabled", []error{apiError("DisabledException"), nil, nil},
			[]string{faultCMK, recoverKey}},
		{"fault repeats while unusable", []error{apiError("KMSInvalidStateException"), apiError("AccessDeniedException"), nil},
			[]string{faultCMK, faultCMK, recoverKey}},
		{"throttling below the limit", []error{apiError("ThrottlingException"), apiError("ThrottlingException"), nil, apiError("ThrottlingException")},
			[]string{recoverKey}},
		{"throttling that persists", []error{apiError("ThrottlingException"), apiError("KMSInternalException"), apiError("ThrottlingException"), nil},
			[]string{faultCMK, recoverKey}},
		{"foreign blob on probe", []error{apiError("InvalidCiphertextException")}, []string{faultCMK}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, m, rec := newTestChecker(t, CheckerOptions{TransientLimit: 3})
			c.k.timeout = 10 * time.Millisecond // persistent throttling gives up fast
			for i, fail := range tt.fails {
				m.setFail(fail)
				err := c.Check(ctx)
				if (err == nil) != (fail == nil) {
					t.Fatalf("check %d: err = %v, want failure %v", i, err, fail)
				}
				if !errors.Is(c.Err(), err) {
					t.Fatalf("check %d: Err() = %v, want %v", i, c.Err(), err)
				}
			}
			if got := rec.take(); !slices.Equal(got, tt.want) {
				t.Errorf("reported %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckerFaultMessageNamesKey(t *testing.T) {
	c, m, rec := newTestChecker(t, CheckerOptions{})
	m.setFail(apiError("DisabledException"))
	c.Check(context.Background())
	if len(rec.errs) != 1 || rec.errs[0] == nil {
		t.Fatalf("reported %v", rec.errs)
	}
	if msg := rec.errs[0].Error(); !strings.Contains(msg, testKeyARN) || !strings.Contains(msg, "DisabledException") {
		t.Errorf("fault message %q should name the key and the KMS error", msg)
	}
}

func TestCheckerCanceledReportsNothing(t *testing.T) {
	c, m, rec := newTestChecker(t, CheckerOptions{})
	m.setFail(apiError("DisabledException"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Check(ctx); err == nil {
		t.Fatal("Check with a canceled context succeeded")
	}
	if got := rec.take(); got != nil {
		t.Errorf("reported %v after a canceled check", got)
	}
}

func TestCheckerRetiresKeySoWritersStop(t *testing.T) {
	c, m, rec := newTestChecker(t, CheckerOptions{})
	w, err := create(t.TempDir(), c.k, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Remove()
	if err := w.Write([]byte("before the key was disabled")); err != nil {
		t.Fatal(err)
	}
	m.setFail(apiError("DisabledException"))
	c.Check(context.Background())
	rec.take()

	err = w.Write([]byte("after: must not be sealed with the old data key"))
	if Classify(err) != ClassInaccessible {
		t.Fatalf("Write after the key was disabled: err = %v, want DisabledException", err)
	}
	// The Writer's failure reached the Checker on use.
	if got := rec.take(); !slices.Equal(got, []string{faultCMK}) {
		t.Errorf("reported %v on use, want one fault", got)
	}
	if _, err := Create(t.TempDir(), c.k); Classify(err) != ClassInaccessible {
		t.Errorf("Create with the key disabled: err = %v", err)
	}
}

func TestCheckerRun(t *testing.T) {
	c, m, rec := newTestChecker(t, CheckerOptions{Interval: 5 * time.Millisecond, RetryInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	waitFor := func(what string, ok func([]string) bool) {
		t.Helper()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		timeout := time.After(5 * time.Second)
		for {
			rec.mu.Lock()
			seen := slices.Clone(rec.events)
			rec.mu.Unlock()
			if ok(seen) {
				return
			}
			select {
			case <-tick.C:
			case <-timeout:
				t.Fatalf("%s: reported %v", what, seen)
			}
		}
	}
	m.setFail(apiError("DisabledException"))
	waitFor("fault", func(ev []string) bool { return slices.Contains(ev, faultCMK) })
	m.setFail(nil)
	waitFor("recover after the fault", func(ev []string) bool {
		i := slices.Index(ev, faultCMK)
		return i >= 0 && slices.Contains(ev[i:], recoverKey)
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestCheckerFailsCreatingStream(t *testing.T) {
	k, m := newTestKeyring(t, Options{})
	stream := newStream(t, state.Creating)
	c, err := NewChecker(k, stream, CheckerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.setFail(apiError("DisabledException"))
	c.Check(context.Background())
	snap := stream.View()
	if snap.Status != state.Failed || snap.StatusReason == nil || snap.StatusReason.Code != codes.ClusterCMKInaccessible {
		t.Fatalf("stream is %s (%+v), want FAILED with CLUSTER_CMK_INACCESSIBLE", snap.Status, snap.StatusReason)
	}
	// FAILED is terminal: a later recovery is not an error for the Checker.
	m.setFail(nil)
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if stream.View().Status != state.Failed {
		t.Error("a FAILED stream left FAILED")
	}
}

func TestCheckerImpairsActiveStream(t *testing.T) {
	k, m := newTestKeyring(t, Options{})
	stream := newStream(t, state.Active)
	c, _ := NewChecker(k, stream, CheckerOptions{})
	m.setFail(apiError("AccessDeniedException"))
	c.Check(context.Background())
	if s := stream.View().Status; s != state.Impaired {
		t.Fatalf("stream is %s, want IMPAIRED", s)
	}
	m.setFail(nil)
	c.Check(context.Background())
	if s := stream.View().Status; s != state.Active {
		t.Fatalf("stream is %s, want ACTIVE", s)
	}
}

// TestCheckerClearsCodeFromBeforeRestart: a stream saved IMPAIRED with
// CLUSTER_CMK_INACCESSIBLE and another owner's code starts again; the
// checker's first passing check clears its own code and only that.
func TestCheckerClearsCodeFromBeforeRestart(t *testing.T) {
	k, _ := newTestKeyring(t, Options{})
	rec := testStreamRecord(state.Impaired)
	rec.StatusReason = &state.Reason{Code: codes.ClusterCMKInaccessible, Message: "key disabled"}
	rec.OtherReasons = []state.Reason{{Code: codes.SourceUnavailable, Message: "connection refused"}}
	stream, err := state.NewStream(rec, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := NewChecker(k, stream, CheckerOptions{})
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap := stream.View()
	if snap.Status != state.Impaired || snap.StatusReason.Code != codes.SourceUnavailable || len(snap.OtherReasons) != 0 {
		t.Fatalf("after a passing check: %s %+v %+v; want IMPAIRED with SOURCE_UNAVAILABLE only", snap.Status, snap.StatusReason, snap.OtherReasons)
	}
}

func TestCheckerMetrics(t *testing.T) {
	metrics, err := NewMetrics(prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c, m, _ := newTestChecker(t, CheckerOptions{Metrics: metrics})
	c.Check(context.Background())
	m.setFail(apiError("NotFoundException"))
	c.Check(context.Background())
	for result, want := range map[string]float64{"ok": 1, "inaccessible": 1, "transient": 0} {
		if got := counterValue(t, metrics.checks.WithLabelValues(testStream, result)); got != want {
			t.Errorf("checks{result=%q} = %v, want %v", result, got, want)
		}
	}
}

func TestNewCheckerRejectsNil(t *testing.T) {
	if _, err := NewChecker(nil, &recorder{}, CheckerOptions{}); err == nil {
		t.Error("nil keyring accepted")
	}
	if _, err := NewChecker(NewEphemeral(), nil, CheckerOptions{}); err == nil {
		t.Error("nil reporter accepted")
	}
}

// testStreamRecord is a stream's record in status s, without a reason.
func testStreamRecord(s state.Status) state.File {
	return state.File{
		Definition: state.Definition{
			ClusterID: testCluster,
			StreamID:  testStream,
			Format:    "JSON",
			Ordering:  "UNORDERED",
		},
		Status: s,
	}
}

// newStream returns an in-memory stream (no Store) in status s.
func newStream(t testing.TB, s state.Status) *state.Stream {
	t.Helper()
	stream, err := state.NewStream(testStreamRecord(s), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return stream
}
