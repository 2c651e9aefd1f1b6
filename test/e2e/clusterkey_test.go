package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// clusterKeyHarness is a harness whose cluster has a key of its own,
// checked every second, streaming the table items; kinesisEndpoint, when
// set, replaces the Kinesis endpoint (a fault proxy in front of it).
func clusterKeyHarness(t *testing.T, kinesisEndpoint string) (*harness, *kms.Client, string) {
	env := testenv.Require(t)
	client := testenv.KMSClient(t, env, env.KMSEndpoint)
	key := testenv.CreateKey(t, client)
	h := newHarness(t, harnessOptions{
		tables: []string{"public.items"}, shards: 1, kinesisEndpoint: kinesisEndpoint,
		aws:     fmt.Sprintf("kms_endpoint = %q", env.KMSEndpoint),
		cluster: fmt.Sprintf("cluster_key_arn = %q\ncluster_key_check_interval = \"1s\"", key),
	})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	return h, client, key
}

// TestClusterKeyDisabledAndEnabled: a disabled cluster key impairs the
// stream with CLUSTER_CMK_INACCESSIBLE and holds delivery; enabling it
// returns the stream to ACTIVE with every change delivered. A key scheduled
// for deletion behaves like a disabled one.
func TestClusterKeyDisabledAndEnabled(t *testing.T) {
	t.Parallel()
	h, client, key := clusterKeyHarness(t, "")
	ctx := context.Background()
	d := h.start()
	h.waitStatus("ACTIVE", "", 30*time.Second)
	id := 0
	insert := func(n int) {
		for range n {
			id++
			h.exec(`INSERT INTO items VALUES ($1, 'x')`, id)
		}
	}
	insert(10)
	h.waitIDs(id, 30*time.Second)

	if _, err := client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("IMPAIRED", "CLUSTER_CMK_INACCESSIBLE", 30*time.Second)
	delivered := id
	insert(10) // captured while impaired, delivered after recovery
	h.expectNoIDsAbove(delivered, 3*time.Second)
	if _, err := client.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("ACTIVE", "", 30*time.Second)
	h.waitIDs(id, 30*time.Second)

	if _, err := client.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(key), PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("IMPAIRED", "CLUSTER_CMK_INACCESSIBLE", 30*time.Second)
	delivered = id
	insert(5)
	h.expectNoIDsAbove(delivered, 3*time.Second)
	if _, err := client.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	// local-kms leaves a cancelled key Enabled; AWS leaves it Disabled.
	if _, err := client.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("ACTIVE", "", 30*time.Second)
	h.waitIDs(id, 30*time.Second)
	d.stop(t)
}

// TestClusterKeyDisabledWhileCreating: a key that cannot be used before
// creation finishes sends the stream straight to FAILED, and FAILED
// survives a restart: with the key usable again, the restarted daemon runs
// no pipeline for the stream (its slot stays unused, nothing reaches
// Kinesis) and leaves its state file as it was.
func TestClusterKeyDisabledWhileCreating(t *testing.T) {
	t.Parallel()
	h, client, key := clusterKeyHarness(t, "")
	if _, err := client.DisableKey(context.Background(), &kms.DisableKeyInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	d := h.startNoWait()
	h.waitStatus("FAILED", "CLUSTER_CMK_INACCESSIBLE", 30*time.Second)
	h.exec(`INSERT INTO items VALUES (1, 'x')`)
	d.stop(t)
	failed, _ := h.stateFile()
	slot := h.slotState()
	if slot.active {
		t.Fatal("slot still active after the daemon stopped")
	}
	if _, err := client.EnableKey(context.Background(), &kms.EnableKeyInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}

	d = h.startNoWait()
	h.waitStatus("FAILED", "CLUSTER_CMK_INACCESSIBLE", 30*time.Second)
	h.exec(`INSERT INTO items VALUES (2, 'x')`)
	// A pipeline started for the stream would take the slot (creating it
	// if the failed creation left none) within a second or two.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if now := h.slotState(); now != slot {
			t.Fatalf("slot %s changed after the restart of a FAILED stream: %+v, was %+v", h.slot, now, slot)
		}
	}
	if recs := h.tail(time.Second); len(recs) != 0 {
		t.Errorf("a FAILED stream delivered %d records after a restart:\n%s", len(recs), dump(recs))
	}
	if raw, _ := h.stateFile(); !bytes.Equal(raw, failed) {
		t.Errorf("the restart rewrote the FAILED stream's state file:\n%s\nwas\n%s", raw, failed)
	}
	d.stop(t)
	if raw, _ := h.stateFile(); !bytes.Equal(raw, failed) {
		t.Errorf("stopping the daemon rewrote the FAILED stream's state file:\n%s\nwas\n%s", raw, failed)
	}
}

// expectNoIDsAbove reads Kinesis for window and fails if a record with an
// id above delivered reaches it: delivery is held.
func (h *harness) expectNoIDsAbove(delivered int, window time.Duration) {
	h.t.Helper()
	for deadline := time.Now().Add(window); time.Now().Before(deadline); {
		for _, r := range h.tail(500 * time.Millisecond) {
			if id, _ := strconv.Atoi(string(r.After["id"])); id > delivered {
				h.t.Fatalf("record for id %d reached Kinesis while delivery is held: %s", id, r.raw)
			}
		}
	}
}
