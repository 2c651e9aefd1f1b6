package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

func clusterKeyHarness(t *testing.T) (*harness, *kms.Client, string) {
	env := testenv.Require(t)
	client := testenv.KMSClient(t, env, env.KMSEndpoint)
	key := testenv.CreateKey(t, client)
	h := newHarness(t, harnessOptions{
		tables: []string{"public.items"}, shards: 1,
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
	h, client, key := clusterKeyHarness(t)
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
	insert(10) // captured while impaired, delivered after recovery
	if _, err := client.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("ACTIVE", "", 30*time.Second)
	h.waitIDs(id, 30*time.Second)

	if _, err := client.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(key), PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("IMPAIRED", "CLUSTER_CMK_INACCESSIBLE", 30*time.Second)
	insert(5)
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
// survives a restart.
func TestClusterKeyDisabledWhileCreating(t *testing.T) {
	h, client, key := clusterKeyHarness(t)
	if _, err := client.DisableKey(context.Background(), &kms.DisableKeyInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	d := h.startNoWait()
	h.waitStatus("FAILED", "CLUSTER_CMK_INACCESSIBLE", 30*time.Second)
	d.stop(t)
	if _, err := client.EnableKey(context.Background(), &kms.EnableKeyInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	d = h.startNoWait()
	time.Sleep(2 * time.Second) // a FAILED stream must not be resumed by a restart
	h.waitStatus("FAILED", "CLUSTER_CMK_INACCESSIBLE", 5*time.Second)
	d.stop(t)
}
