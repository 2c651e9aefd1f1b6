package pipeline

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dsql"
	"github.com/aws/aws-sdk-go-v2/service/dsql/types"

	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/test/promtest"
)

// TestDeletedStreamLeavesNoSeries: once a stream is deleted through the
// control plane, the registry /metrics serves holds no series of it in any
// family of state, capture, sink or the pipeline, and another stream's
// series are as they were.
func TestDeletedStreamLeavesNoSeries(t *testing.T) {
	var met *metrics // set before any stream starts
	f := newFixture(t, func(c *SupervisorConfig) {
		c.Runner = funcRunner{
			run: func(ctx context.Context, s *state.Stream) error {
				// What the daemon's RunStream does with the handles, in
				// short: the eager series exist, lag is set, a TRUNCATE
				// skipped.
				sm := met.stream(s.ID())
				sm.pipe.lag.Set(1)
				sm.pipe.truncates.Inc()
				_ = s.Created()
				<-ctx.Done()
				return nil
			},
			teardown: func(_ context.Context, s *state.Stream) error {
				met.forget(s.ID())
				return nil
			},
		}
	})
	var err error
	if met, err = newMetrics(f.prom); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	var ids []string
	for range 2 {
		out, err := f.client.CreateStream(ctx, createInput(cluster))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, aws.ToString(out.StreamIdentifier))
		waitStatus(t, f.client, ids[len(ids)-1], types.StreamStatusActive)
	}
	gone, kept := ids[0], ids[1]

	before := promtest.Series(t, f.prom, gone)
	for _, prefix := range []string{"cdcd_stream_", "cdcd_capture_", "cdcd_slot_", "cdcd_published_", "cdcd_put_records_",
		"cdcd_sink_", "cdcd_behind_source_lag_seconds", "cdcd_truncates_skipped_total"} {
		if !hasPrefix(before, prefix) {
			t.Errorf("before the deletion, stream %s has no %s* series: %v", gone, prefix, before)
		}
	}
	keptBefore := promtest.Series(t, f.prom, kept)

	if _, err := f.client.DeleteStream(ctx, &dsql.DeleteStreamInput{
		ClusterIdentifier: aws.String(cluster), StreamIdentifier: aws.String(gone),
	}); err != nil {
		t.Fatal(err)
	}
	// Not found means DELETED, which the Supervisor sets only after the
	// Runner's Teardown, and state forgets its series in the same step.
	if err := dsql.NewStreamNotExistsWaiter(f.client, fastNotExists).Wait(ctx, getInput(gone), time.Minute); err != nil {
		t.Fatal(err)
	}
	left := promtest.Series(t, f.prom, gone)
	if len(left) != 0 {
		t.Errorf("series of the deleted stream remain: %v", left)
	}
	if now := promtest.Series(t, f.prom, kept); !maps.Equal(now, keptBefore) {
		t.Errorf("series of stream %s changed: %v, want %v", kept, now, keptBefore)
	}
}

func hasPrefix(families map[string]int, prefix string) bool {
	for name := range families {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}
