package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dsql"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/cdcd-dev/cdcd/test/faultproxy"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// statusNow is the stream's status and status reason code ("" for none).
func (h *harness) statusNow() (status, code string) {
	h.t.Helper()
	cluster, stream := h.streamIDs()
	out, err := h.controlPlane().GetStream(context.Background(), &dsql.GetStreamInput{ClusterIdentifier: &cluster, StreamIdentifier: &stream})
	if err != nil {
		h.t.Fatal(err)
	}
	if out.StatusReason != nil {
		code = string(out.StatusReason.Error)
	}
	return string(out.Status), code
}

// editState rewrites the stream's state file while the daemon is stopped.
func (h *harness) editState(edit func(rec map[string]any)) {
	h.t.Helper()
	raw, _ := h.stateFile()
	var rec map[string]any
	if err := json.Unmarshal(raw, &rec); err != nil {
		h.t.Fatal(err)
	}
	edit(rec)
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		h.t.Fatal(err)
	}
	_, stream := h.streamIDs()
	if err := os.WriteFile(filepath.Join(h.stateDir, "streams", stream+".json"), b, 0o600); err != nil {
		h.t.Fatal(err)
	}
}

func reason(code string) map[string]any {
	return map[string]any{"error": code, "message": code + " before the restart", "updatedAt": "2025-01-15T11:30:00Z"}
}

// TestThrottledDescribeKeepsCreating: Kinesis throttles
// DescribeStreamSummary while the stream is CREATING; the stream stays
// CREATING while cdcd retries, and becomes ACTIVE once the throttling ends.
func TestThrottledDescribeKeepsCreating(t *testing.T) {
	t.Parallel()
	h, proxy := proxiedHarness(t, 1)
	proxy.Inject(faultproxy.Rule{Op: "DescribeStreamSummary", Err: "LimitExceededException"})
	d := h.startNoWait()
	deadline := time.Now().Add(60 * time.Second)
	for proxy.Faults("DescribeStreamSummary") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("DescribeStreamSummary throttled %d times, want 3 retries", proxy.Faults("DescribeStreamSummary"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status, code := h.statusNow(); status != "CREATING" || code != "" {
		t.Fatalf("throttled while creating: %s %s, want CREATING", status, code)
	}
	proxy.Clear()
	h.waitStatus("ACTIVE", "", 60*time.Second)
	h.exec(`INSERT INTO items VALUES (1, 'x')`)
	h.waitIDs(1, 30*time.Second)
	d.stop(t)
}

// TestRestartReevaluatesSavedCauses: a stream saved IMPAIRED starts again
// showing its causes, and each owner clears its own once it has evidence,
// without a record to deliver: a file written before otherReasons
// existed, then one with several causes.
func TestRestartReevaluatesSavedCauses(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{tables: []string{"public.items"}})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	d := h.start()
	h.waitStatus("ACTIVE", "", 30*time.Second)
	d.stop(t)

	for i, causes := range [][]string{
		{"KINESIS_THROUGHPUT_EXCEEDED"},
		{"SOURCE_UNAVAILABLE", "KINESIS_ACCESS_DENIED", "INTERNAL_ERROR", "ROLE_ACCESS_DENIED"},
	} {
		h.editState(func(rec map[string]any) {
			rec["status"], rec["statusReason"] = "IMPAIRED", reason(causes[0])
			delete(rec, "otherReasons")
			var others []any
			for _, c := range causes[1:] {
				others = append(others, reason(c))
			}
			if others != nil {
				rec["otherReasons"] = others
			}
		})
		d = h.start()
		h.waitStatus("ACTIVE", "", 30*time.Second)
		h.exec(`INSERT INTO items VALUES ($1, 'x')`, i+1)
		h.waitIDs(i+1, 30*time.Second)
		d.stop(t)
	}
}

// TestKeyRecoveryKeepsKinesisFault: while Kinesis denies PutRecords, the
// cluster key is disabled and enabled again. The key's code shows while
// it is the more severe; its recovery clears only its own code, so the
// stream stays IMPAIRED with the Kinesis code until Kinesis accepts again.
func TestKeyRecoveryKeepsKinesisFault(t *testing.T) {
	t.Parallel()
	proxy := faultproxy.New(testenv.Require(t).KinesisEndpoint).Start(t)
	h, client, key := clusterKeyHarness(t, proxy.URL())
	ctx := context.Background()
	d := h.start()
	h.waitStatus("ACTIVE", "", 30*time.Second)

	proxy.Inject(faultproxy.Rule{Op: "PutRecords", Err: "AccessDeniedException"})
	h.exec(`INSERT INTO items VALUES (1, 'x')`)
	h.waitStatus("IMPAIRED", "KINESIS_ACCESS_DENIED", 30*time.Second)
	if _, err := client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("IMPAIRED", "CLUSTER_CMK_INACCESSIBLE", 30*time.Second)
	if _, err := client.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("IMPAIRED", "KINESIS_ACCESS_DENIED", 30*time.Second)
	time.Sleep(3 * time.Second) // several passing key checks
	if status, code := h.statusNow(); status != "IMPAIRED" || code != "KINESIS_ACCESS_DENIED" {
		t.Fatalf("after passing key checks: %s %s, want IMPAIRED KINESIS_ACCESS_DENIED", status, code)
	}
	proxy.Clear()
	h.waitStatus("ACTIVE", "", 30*time.Second)
	h.waitIDs(1, 30*time.Second)
	d.stop(t)
}
