package atrest

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestNewKMSRejects(t *testing.T) {
	_, f := newKMSModel()
	tests := []struct {
		name      string
		api       KMSAPI
		key       string
		cluster   string
		stream    string
		opts      Options
		wantInErr string
	}{
		{"nil client", nil, testKeyARN, testCluster, testStream, Options{}, "nil KMS client"},
		{"empty key", f, "", testCluster, testStream, Options{}, "empty key ARN"},
		{"bad cluster", f, testKeyARN, "Cluster", testStream, Options{}, "cluster identifier"},
		{"bad stream", f, testKeyARN, testCluster, "../etc", Options{}, "stream identifier"},
		{"negative rotation", f, testKeyARN, testCluster, testStream, Options{RotateBytes: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewKMS(tt.api, tt.key, tt.cluster, tt.stream, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantInErr)
			}
		})
	}
}

func TestKeyringSendsContextAndForgetsPlaintext(t *testing.T) {
	m, f := newKMSModel()
	gen := f.GenerateDataKeyFn
	var got map[string]string
	var plain []byte
	f.GenerateDataKeyFn = func(ctx context.Context, in *kms.GenerateDataKeyInput) (*kms.GenerateDataKeyOutput, error) {
		out, err := gen(ctx, in)
		got, plain = maps.Clone(in.EncryptionContext), out.Plaintext
		return out, err
	}
	k, err := NewKMS(f, m.keyARN, testCluster, testStream, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.lease(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cdcd:cluster": testCluster, "cdcd:stream": testStream}
	if !maps.Equal(got, want) {
		t.Errorf("encryption context = %v, want %v", got, want)
	}
	for _, b := range plain {
		if b != 0 {
			t.Fatal("the SDK's plaintext data key was not cleared after use")
		}
	}
}

func TestKeyringRotation(t *testing.T) {
	now := time.Unix(1700000000, 0)
	clock := func() time.Time { return now }
	k, m := newTestKeyring(t, Options{RotateBytes: 100, RotateAfter: time.Minute, Now: clock})

	first, s0, err := k.lease()
	if err != nil {
		t.Fatal(err)
	}
	again, s1, _ := k.lease()
	if again != first || s1 != s0+1 {
		t.Fatalf("second lease: same key %v, serials %d then %d; want the same key and the next serial", again == first, s0, s1)
	}

	first.used.Add(100)
	byBytes, _, _ := k.lease()
	if byBytes == first {
		t.Fatal("key not rotated after RotateBytes")
	}

	now = now.Add(time.Minute)
	byTime, _, _ := k.lease()
	if byTime == byBytes {
		t.Fatal("key not rotated after RotateAfter")
	}

	k.retire()
	byRetire, _, _ := k.lease()
	if byRetire == byTime {
		t.Fatal("key not rotated after retire")
	}
	if got := m.generated.Load(); got != 4 {
		t.Errorf("GenerateDataKey calls = %d, want 4", got)
	}
}

func TestKeyringRetriesTransientOnly(t *testing.T) {
	tests := []struct {
		name      string
		failures  int // the first calls fail with code, then calls succeed
		code      string
		wantCalls int64
		wantErr   bool
	}{
		{"throttled then ok", 3, "ThrottlingException", 4, false},
		{"internal then ok", 1, "KMSInternalException", 2, false},
		{"disabled", 1, "DisabledException", 1, true},
		{"denied", 1, "AccessDeniedException", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, _ := newTestKeyring(t, Options{})
			f := k.src.(*kmsSource).api.(*fakeKMS)
			gen := f.GenerateDataKeyFn
			var calls atomic.Int64
			f.GenerateDataKeyFn = func(ctx context.Context, in *kms.GenerateDataKeyInput) (*kms.GenerateDataKeyOutput, error) {
				if calls.Add(1) <= int64(tt.failures) {
					return nil, apiError(tt.code)
				}
				return gen(ctx, in)
			}
			_, _, err := k.lease()
			if (err != nil) != tt.wantErr {
				t.Fatalf("lease err = %v, want error %v", err, tt.wantErr)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("GenerateDataKey calls = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestKeyringGivesUpOnPersistentThrottling(t *testing.T) {
	k, m := newTestKeyring(t, Options{CallTimeout: 20 * time.Millisecond})
	m.setFail(apiError("ThrottlingException"))
	_, _, err := k.lease()
	if Classify(err) != ClassTransient || !strings.Contains(err.Error(), "ThrottlingException") {
		t.Fatalf("lease err = %v, want the throttling error after the call timeout", err)
	}
}

// TestKeyringRetryEndsWithTheTellingError pins what retry returns when its
// context ends: the last transient error rather than the deadline that cut
// an attempt short, but a cancellation as it is.
func TestKeyringRetryEndsWithTheTellingError(t *testing.T) {
	throttled := apiError("ThrottlingException")
	tests := []struct {
		name  string
		later func(ctx context.Context, cancel context.CancelFunc) error // calls after the first
		want  error
	}{
		{"deadline cuts an attempt", func(ctx context.Context, _ context.CancelFunc) error { <-ctx.Done(); return ctx.Err() }, throttled},
		{"deadline ends a wait", func(context.Context, context.CancelFunc) error { return throttled }, throttled},
		{"canceled attempt", func(_ context.Context, cancel context.CancelFunc) error { cancel(); return context.Canceled }, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, _ := newTestKeyring(t, Options{})
			k.retryBase = 5 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			calls := 0
			err := k.retry(ctx, func(ctx context.Context) error {
				calls++
				if calls == 1 {
					return throttled
				}
				return tt.later(ctx, cancel)
			})
			if !errors.Is(err, tt.want) {
				t.Fatalf("retry = %v after %d calls, want %v", err, calls, tt.want)
			}
		})
	}
}

func TestKeyringCountsDataKeys(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := newTestKeyring(t, Options{Metrics: metrics})
	k.lease()
	k.retire()
	k.lease()
	if got := counterValue(t, metrics.dataKeys.WithLabelValues(testStream)); got != 2 {
		t.Errorf("data keys generated = %v, want 2", got)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering the metrics twice succeeded")
	}
}

func TestKeyringOpenUsesCacheThenKMS(t *testing.T) {
	dir := t.TempDir()
	k, m := newTestKeyring(t, Options{})
	path := writeFile(t, dir, k, frameSize, [][]byte{[]byte("one"), []byte("two")})

	// The writing keyring still holds the key: no Decrypt.
	readAll(t, path, k)
	if got := m.decrypted.Load(); got != 0 {
		t.Errorf("Decrypt calls with the writer's keyring = %d, want 0", got)
	}

	// Another process with the same cluster key and stream: one Decrypt.
	path = writeFile(t, dir, k, frameSize, [][]byte{[]byte("three")})
	other, err := NewKMS(k.src.(*kmsSource).api, testKeyARN, testCluster, testStream, Options{})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, path, other)
	if got := m.decrypted.Load(); got != 1 {
		t.Errorf("Decrypt calls with a fresh keyring = %d, want 1", got)
	}
}

func TestKeyringOpenRefusesAnotherStreamsFile(t *testing.T) {
	dir := t.TempDir()
	k, _ := newTestKeyring(t, Options{})
	path := writeFile(t, dir, k, frameSize, [][]byte{[]byte("secret")})

	other, err := NewKMS(k.src.(*kmsSource).api, testKeyARN, testCluster, testStream[:25]+"x", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var reported atomic.Int64
	other.setErrorHook(func(error) { reported.Add(1) })
	r, err := Open(path, other)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Next(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Next with another stream's context: err = %v, want ErrCorrupt", err)
	}
	if reported.Load() != 0 {
		t.Error("a foreign wrapped key was reported as a cluster key failure")
	}
}

func TestEphemeralKeyringsDoNotShare(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, NewEphemeral(), frameSize, [][]byte{[]byte("gone with the process")})
	r, err := Open(path, NewEphemeral())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Next(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Next with another process's ephemeral keyring: err = %v, want ErrCorrupt", err)
	}
}

// counterValue reads a counter without prometheus/testutil, whose
// dependencies are not in go.sum.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
