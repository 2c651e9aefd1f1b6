package atrest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcd-dev/cdcd/atrest"
	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/ident"
	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// requireKMS returns a client for local-kms (test/infra/up.sh). It asks
// for the KMS endpoint alone, not every server testenv.Require wants, so
// these tests run wherever local-kms does; like testenv.Require it skips
// without one, and fails under CI, where a skip would hide a broken setup.
func requireKMS(t *testing.T) *kms.Client {
	t.Helper()
	endpoint := os.Getenv(testenv.VarKMSEndpoint)
	if endpoint == "" {
		msg := testenv.VarKMSEndpoint + " not set: run `make test`, or `make infra-up` and `. .cache/env`, to start local-kms"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set, so this is an error, not a skip)")
		}
		t.Skip(msg)
	}
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = testenv.DefaultRegion
	}
	return testenv.KMSClient(t, testenv.Env{KMSEndpoint: endpoint, Region: region}, "")
}

var (
	clusterID = ident.DeriveID("atrest integration cluster")
	streamID  = ident.DeriveID("atrest integration stream")
)

func newStream(t *testing.T, status state.Status) *state.Stream {
	t.Helper()
	s, err := state.NewStream(state.File{
		Definition: state.Definition{ClusterID: clusterID, StreamID: streamID, Format: "JSON", Ordering: "UNORDERED"},
		Status:     status,
	}, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitStatus waits until stream is in want, failing after timeout.
func waitStatus(t *testing.T, stream *state.Stream, want state.Status) state.View {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		snap, changed := stream.Watch()
		if snap.Status == want {
			return snap
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("stream is %s (%+v), want %s", snap.Status, snap.StatusReason, want)
		}
	}
}

func keyOp(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestKMSCheckerFaultsAndRecovers(t *testing.T) {
	client := requireKMS(t)
	arn := testenv.CreateKey(t, client)
	ctx := t.Context()

	k, err := atrest.NewKMS(client, arn, clusterID, streamID, atrest.Options{CallTimeout: 5 * time.Second})
	keyOp(t, "new keyring", err)
	stream := newStream(t, state.Active)
	c, err := atrest.NewChecker(k, stream, atrest.CheckerOptions{Interval: 100 * time.Millisecond, RetryInterval: 20 * time.Millisecond})
	keyOp(t, "new checker", err)
	keyOp(t, "first check of a healthy key", c.Check(ctx))

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	key := aws.String(arn)
	_, err = client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: key})
	keyOp(t, "disable key", err)
	snap := waitStatus(t, stream, state.Impaired)
	if snap.StatusReason.Code != codes.ClusterCMKInaccessible {
		t.Fatalf("impaired with %s, want %s", snap.StatusReason.Code, codes.ClusterCMKInaccessible)
	}
	_, err = client.EnableKey(ctx, &kms.EnableKeyInput{KeyId: key})
	keyOp(t, "enable key", err)
	waitStatus(t, stream, state.Active)

	// Pending deletion is as unusable as disabled (KMSInvalidStateException).
	_, err = client.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: key, PendingWindowInDays: aws.Int32(7)})
	keyOp(t, "schedule key deletion", err)
	snap = waitStatus(t, stream, state.Impaired)
	if snap.StatusReason.Code != codes.ClusterCMKInaccessible {
		t.Fatalf("impaired with %s, want %s", snap.StatusReason.Code, codes.ClusterCMKInaccessible)
	}
	// AWS leaves a key Disabled after CancelKeyDeletion (local-kms leaves it
	// Enabled): enable it as an operator would.
	_, err = client.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: key})
	keyOp(t, "cancel key deletion", err)
	_, err = client.EnableKey(ctx, &kms.EnableKeyInput{KeyId: key})
	keyOp(t, "enable key", err)
	waitStatus(t, stream, state.Active)
}

func TestKMSCreatingStreamFailsOnDisabledKey(t *testing.T) {
	client := requireKMS(t)
	arn := testenv.CreateKey(t, client)
	ctx := t.Context()
	_, err := client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(arn)})
	keyOp(t, "disable key", err)

	k, err := atrest.NewKMS(client, arn, clusterID, streamID, atrest.Options{})
	keyOp(t, "new keyring", err)
	stream := newStream(t, state.Creating)
	c, err := atrest.NewChecker(k, stream, atrest.CheckerOptions{})
	keyOp(t, "new checker", err)
	if err := c.Check(ctx); atrest.Classify(err) != atrest.ClassInaccessible {
		t.Fatalf("Check = %v, want an inaccessible key", err)
	}
	snap := stream.View()
	if snap.Status != state.Failed || snap.StatusReason.Code != codes.ClusterCMKInaccessible {
		t.Fatalf("stream is %s (%+v), want FAILED with %s", snap.Status, snap.StatusReason, codes.ClusterCMKInaccessible)
	}
}

func TestKMSWriterFailureIsReported(t *testing.T) {
	client := requireKMS(t)
	arn := testenv.CreateKey(t, client)
	ctx := t.Context()
	k, err := atrest.NewKMS(client, arn, clusterID, streamID, atrest.Options{})
	keyOp(t, "new keyring", err)
	stream := newStream(t, state.Active)
	// A long interval: only the Writer's failure can impair the stream.
	if _, err := atrest.NewChecker(k, stream, atrest.CheckerOptions{Interval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	_, err = client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(arn)})
	keyOp(t, "disable key", err)

	if _, err := atrest.Create(t.TempDir(), k); atrest.Classify(err) != atrest.ClassInaccessible {
		t.Fatalf("Create with a disabled key: err = %v", err)
	}
	snap := stream.View()
	if snap.Status != state.Impaired || snap.StatusReason.Code != codes.ClusterCMKInaccessible {
		t.Fatalf("stream is %s (%+v), want IMPAIRED with %s", snap.Status, snap.StatusReason, codes.ClusterCMKInaccessible)
	}
}

func TestKMSSpillRoundTrip(t *testing.T) {
	client := requireKMS(t)
	arn := testenv.CreateKey(t, client)
	dir := t.TempDir()
	marker := []byte("MARKER-kms-9d2e71")

	// A small rotation limit puts several data keys in one file.
	reg := prometheus.NewPedanticRegistry()
	metrics, err := atrest.NewMetrics(reg)
	keyOp(t, "new metrics", err)
	k, err := atrest.NewKMS(client, arn, clusterID, streamID, atrest.Options{RotateBytes: 200 << 10, Metrics: metrics})
	keyOp(t, "new keyring", err)
	w, err := atrest.Create(dir, k)
	keyOp(t, "create", err)
	var want [][]byte
	for i := range 5000 {
		rec := fmt.Appendf(nil, `{"id":%d,"note":"%s"}`, i, marker)
		if i%1000 == 0 {
			rec = bytes.Repeat(rec, 3000) // spans many frames
		}
		want = append(want, rec)
		keyOp(t, "write", w.Write(rec))
	}
	keyOp(t, "close", w.Close())

	raw, err := os.ReadFile(w.Path())
	keyOp(t, "read file", err)
	if bytes.Contains(raw, marker) {
		t.Fatal("plaintext marker found in the spill file")
	}
	if n := dataKeysGenerated(t, reg); n < 3 {
		t.Errorf("%v data keys generated, want at least 3 (rotation every 200 KiB)", n)
	}

	// Another stream's keyring cannot unwrap the data keys: the
	// encryption context binds them to this stream.
	other, err := atrest.NewKMS(client, arn, clusterID, ident.DeriveID("another stream"), atrest.Options{})
	keyOp(t, "new keyring", err)
	copyPath := dir + "/spill-copy.atrest"
	keyOp(t, "copy", os.WriteFile(copyPath, raw, 0o600))
	r, err := atrest.Open(copyPath, other)
	keyOp(t, "open", err)
	if _, err := r.Next(); !errors.Is(err, atrest.ErrCorrupt) {
		t.Errorf("another stream's keyring: Next = %v, want ErrCorrupt", err)
	}
	keyOp(t, "close reader", r.Close())

	// A fresh keyring, as after a restart, unwraps with kms:Decrypt.
	fresh, err := atrest.NewKMS(client, arn, clusterID, streamID, atrest.Options{})
	keyOp(t, "new keyring", err)
	r, err = atrest.Open(w.Path(), fresh)
	keyOp(t, "open", err)
	for i := 0; ; i++ {
		rec, err := r.Next()
		if err == io.EOF {
			if i != len(want) {
				t.Fatalf("read %d records, wrote %d", i, len(want))
			}
			break
		}
		keyOp(t, "next", err)
		if !bytes.Equal(rec, want[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
	keyOp(t, "close reader", r.Close())
	if _, err := os.Stat(w.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Reader.Close left the file: %v", err)
	}

	// With the key disabled, a process that has not cached the data keys
	// cannot read the file (local-kms: AccessDeniedException; AWS:
	// DisabledException), and says so as an inaccessible key, not as a
	// corrupt file.
	_, err = client.DisableKey(t.Context(), &kms.DisableKeyInput{KeyId: aws.String(arn)})
	keyOp(t, "disable key", err)
	keyOp(t, "copy", os.WriteFile(copyPath, raw, 0o600))
	fresh, err = atrest.NewKMS(client, arn, clusterID, streamID, atrest.Options{})
	keyOp(t, "new keyring", err)
	r, err = atrest.Open(copyPath, fresh)
	keyOp(t, "open", err)
	if _, err := r.Next(); atrest.Classify(err) != atrest.ClassInaccessible {
		t.Errorf("Next with the key disabled: err = %v, want an inaccessible key", err)
	}
	keyOp(t, "close reader", r.Close())
}

func dataKeysGenerated(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	keyOp(t, "gather", err)
	var n float64
	for _, f := range families {
		if f.GetName() == "cdcd_atrest_data_keys_generated_total" {
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
