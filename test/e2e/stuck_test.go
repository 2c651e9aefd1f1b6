package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dsql"
	"github.com/aws/aws-sdk-go-v2/service/dsql/types"

	"github.com/cdcd-dev/cdcd/state/api"
	"github.com/cdcd-dev/cdcd/test/stsstub"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// Every stuck stream says why in GetStream and /readyz
// (docs/lifecycle.md#status-reason).

// waitReason polls GetStream of stream until it has status and a
// statusReason with code, and returns the reason's message.
func (h *harness) waitReason(cluster, stream, status, code string, timeout time.Duration) string {
	h.t.Helper()
	cp := h.controlPlane()
	var last string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, err := api.GetStream(context.Background(), cp, cluster, stream)
		if err != nil {
			last = err.Error()
			continue
		}
		last = out.Status
		if out.StatusReason != nil {
			last += " " + out.StatusReason.Code + ": " + out.StatusReason.Message
			if out.Status == status && out.StatusReason.Code == code {
				return out.StatusReason.Message
			}
		}
	}
	h.t.Fatalf("stream %s did not reach %s with %s within %s; last: %s", stream, status, code, timeout, last)
	return ""
}

// createAPIStream creates a Kinesis stream of shards shards and, through
// the control plane, a cdcd stream on cluster writing to it as role;
// edit, if set, completes the request. It returns the stream identifier
// and the Kinesis stream's name.
func (h *harness) createAPIStream(cluster, role string, shards int32, edit func(*dsql.CreateStreamInput)) (id, kinesis string) {
	h.t.Helper()
	kinesis = testenv.StreamName(h.t) + "-api"
	testenv.CreateStream(h.t, testenv.KinesisClient(h.t, h.env, h.env.KinesisEndpoint), kinesis, shards)
	in := &dsql.CreateStreamInput{
		ClusterIdentifier: &cluster, Format: types.StreamFormatJson, Ordering: types.StreamOrderingUnordered,
		TargetDefinition: &types.TargetDefinitionMemberKinesis{Value: types.KinesisTargetDefinition{
			StreamArn: aws.String("arn:aws:kinesis:" + h.env.Region + ":000000000000:stream/" + kinesis),
			RoleArn:   aws.String(role),
		}},
	}
	if edit != nil {
		edit(in)
	}
	created, err := h.controlPlane().CreateStream(context.Background(), in)
	if err != nil {
		h.t.Fatal(err)
	}
	return aws.ToString(created.StreamIdentifier), kinesis
}

func expectContains(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, s)
		}
	}
}

// TestCreatingShowsUnmetPrerequisite: a stream created through the API on
// a cluster that may not set REPLICA IDENTITY FULL meets a table that
// needs it. It stays CREATING, and GetStream and /readyz say why, naming
// the table and the statement that fixes it; once that has run, the stream
// becomes ACTIVE without a restart, and the reason is gone.
func TestCreatingShowsUnmetPrerequisite(t *testing.T) {
	t.Parallel()
	const apiRole = "arn:aws:iam::000000000000:role/cdcd-api-stuck"
	sts := stsstub.New(t)
	sts.AddRoleWith(apiRole, stsstub.Role{TrustAllowed: true, TagSession: true})
	h := newHarness(t, harnessOptions{tables: []string{"public.items"},
		aws: fmt.Sprintf("sts_endpoint = %q\nrole_arn_allow = [%q]", sts.URL(), apiRole)})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	d := h.start()
	h.waitStatus("ACTIVE", "", 30*time.Second) // items is FULL now: the configured stream may set it
	h.exec(`CREATE TABLE docs (id int PRIMARY KEY, body text)`)

	cluster, _ := h.streamIDs()
	id, _ := h.createAPIStream(cluster, apiRole, 1, nil)
	msg := h.waitReason(cluster, id, "CREATING", "SOURCE_PREREQUISITE_UNMET", 60*time.Second)
	expectContains(t, "the statusReason", msg, `"public"."docs"`, `ALTER TABLE "public"."docs" REPLICA IDENTITY FULL`,
		"docs/runbook.md#source_prerequisite_unmet")
	expectContains(t, "/readyz", h.get(t, "/readyz"), `"ready":false`, id, `"status":"CREATING"`, "SOURCE_PREREQUISITE_UNMET",
		`REPLICA IDENTITY FULL`)

	h.exec(`ALTER TABLE docs REPLICA IDENTITY FULL`)
	cp, ctx := h.controlPlane(), context.Background()
	get := &dsql.GetStreamInput{ClusterIdentifier: &cluster, StreamIdentifier: &id}
	if err := dsql.NewStreamActiveWaiter(cp).Wait(ctx, get, time.Minute); err != nil {
		t.Fatalf("StreamActive after the fix: %v", err)
	}
	if out, err := cp.GetStream(ctx, get); err != nil || out.StatusReason != nil {
		t.Fatalf("ACTIVE stream: reason %+v, %v; want none", out.StatusReason, err)
	}
	if body := h.get(t, "/readyz"); !strings.Contains(body, `"ready":true`) {
		t.Errorf("/readyz once every stream is ACTIVE: %s", body)
	}
	d.stop(t)
}
