package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dsql"
	"github.com/aws/aws-sdk-go-v2/service/dsql/types"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/ident"
	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/state/api"
)

// funcRunner is a Pipeline with function fields; nil fields behave like
// IdleRunner with no delay.
type funcRunner struct {
	run      func(ctx context.Context, s *state.Stream) error
	teardown func(ctx context.Context, s *state.Stream) error
	describe func(s *state.Stream) (*api.SourceInfo, *api.TargetInfo)
}

func (p funcRunner) RunStream(ctx context.Context, s *state.Stream) error {
	if p.run != nil {
		return p.run(ctx, s)
	}
	return IdleRunner{}.RunStream(ctx, s)
}

func (p funcRunner) Teardown(ctx context.Context, s *state.Stream) error {
	if p.teardown != nil {
		return p.teardown(ctx, s)
	}
	return nil
}

func (p funcRunner) Describe(s *state.Stream) (*api.SourceInfo, *api.TargetInfo) {
	if p.describe != nil {
		return p.describe(s)
	}
	return nil, nil
}

// waitStatus polls GetStream until want, with a deadline that only guards
// against hanging; the test asserts the outcome, not the speed.
func waitStatus(t *testing.T, c *dsql.Client, id string, want types.StreamStatus) *dsql.GetStreamOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		out, err := c.GetStream(ctx, getInput(id))
		if err != nil {
			t.Fatal(err)
		}
		if out.Status == want {
			return out
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stream %s is %s, never %s", id, out.Status, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestRestartKeepsAPICreatedStream(t *testing.T) {
	f := newFixture(t, nil)
	ctx := ctxT(t)
	in := createInput(cluster)
	in.ClientToken = aws.String("token-before-restart")
	out, err := f.client.CreateStream(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	id := *out.StreamIdentifier
	before := waitStatus(t, f.client, id, types.StreamStatusActive)
	s, _ := f.reg.Stream(id)
	if err := s.Checkpoint(state.Checkpoint{LSN: 0x16_B374D848, TsNs: 1705318200000000000}); err != nil {
		t.Fatal(err)
	}

	f.restart(nil)
	after := waitStatus(t, f.client, id, types.StreamStatusActive)
	if aws.ToString(after.Arn) != aws.ToString(before.Arn) || !after.CreationTime.Equal(*before.CreationTime) ||
		after.Ordering != before.Ordering || after.Tags["team"] != "orders" {
		t.Fatalf("after restart %+v\nbefore %+v", after, before)
	}
	rec, err := f.store.Load(id)
	if err != nil || rec.Checkpoint.LSN != 0x16_B374D848 || rec.Checkpoint.TsNs != 1705318200000000000 {
		t.Fatalf("checkpoint after restart: %+v, %v", rec.Checkpoint, err)
	}
	// The client token still finds the stream.
	again, err := f.client.CreateStream(ctx, in)
	if err != nil || *again.StreamIdentifier != id {
		t.Fatalf("retry after restart: %v, %v", again, err)
	}
}

func TestRestartKeepsFailed(t *testing.T) {
	var runs sync.WaitGroup
	runs.Add(1)
	f := newFixture(t, func(c *SupervisorConfig) {
		c.Runner = funcRunner{run: func(ctx context.Context, s *state.Stream) error {
			defer runs.Done()
			_ = s.Created()
			_ = s.Fault(codes.KinesisStreamNotFound, errors.New("stream orders not found"))
			<-ctx.Done() // the Supervisor stops a FAILED stream's pipeline
			return nil
		}}
	})
	out, err := f.client.CreateStream(ctxT(t), createInput(cluster))
	if err != nil {
		t.Fatal(err)
	}
	id := *out.StreamIdentifier
	got := waitStatus(t, f.client, id, types.StreamStatusFailed)
	if got.StatusReason == nil || got.StatusReason.Error != types.StreamFailureErrorCode(codes.KinesisStreamNotFound) || got.StatusReason.UpdatedAt == nil {
		t.Fatalf("statusReason = %+v", got.StatusReason)
	}
	runs.Wait() // returns only because FAILED cancelled the pipeline

	started := make(chan string, 1)
	f.restart(func(c *SupervisorConfig) {
		c.Runner = funcRunner{run: func(ctx context.Context, s *state.Stream) error {
			started <- s.ID()
			<-ctx.Done()
			return nil
		}}
	})
	got = waitStatus(t, f.client, id, types.StreamStatusFailed)
	if got.StatusReason == nil || got.StatusReason.Error != "KINESIS_STREAM_NOT_FOUND" {
		t.Fatalf("after restart statusReason = %+v", got.StatusReason)
	}
	select {
	case sid := <-started:
		t.Fatalf("a pipeline started for FAILED stream %s", sid)
	default:
	}
	// FAILED is terminal but deletable.
	if _, err := f.client.DeleteStream(ctxT(t), &dsql.DeleteStreamInput{ClusterIdentifier: aws.String(cluster), StreamIdentifier: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	if err := dsql.NewStreamNotExistsWaiter(f.client, fastNotExists).Wait(ctxT(t), getInput(id), time.Minute); err != nil {
		t.Fatal(err)
	}
}

func TestFailureThreshold(t *testing.T) {
	f := newFixture(t, func(c *SupervisorConfig) {
		c.FailureThreshold = time.Second
		c.Runner = funcRunner{run: func(ctx context.Context, s *state.Stream) error {
			_ = s.Created()
			_ = s.Fault(codes.KinesisThroughputExceeded, errors.New("rate exceeded"))
			start := time.Now()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
					_ = s.Lag(time.Since(start))
				}
			}
		}}
	})
	out, err := f.client.CreateStream(ctxT(t), createInput(cluster))
	if err != nil {
		t.Fatal(err)
	}
	got := waitStatus(t, f.client, *out.StreamIdentifier, types.StreamStatusFailed)
	if got.StatusReason == nil || got.StatusReason.Error != "KINESIS_THROUGHPUT_EXCEEDED" {
		t.Fatalf("statusReason = %+v", got.StatusReason)
	}
	snap := mustStream(t, f.reg, *out.StreamIdentifier).View()
	if snap.Lag <= time.Second {
		t.Fatalf("failed at lag %v, threshold 1s", snap.Lag)
	}
}

func mustStream(t *testing.T, r *Supervisor, id string) *state.Stream {
	t.Helper()
	s, ok := r.Stream(id)
	if !ok {
		t.Fatalf("no stream %s", id)
	}
	return s
}

func TestDeletingResumesAfterRestart(t *testing.T) {
	f := newFixture(t, func(c *SupervisorConfig) {
		c.Runner = funcRunner{teardown: func(ctx context.Context, _ *state.Stream) error {
			<-ctx.Done() // the daemon stops in the middle of teardown
			return ctx.Err()
		}}
	})
	ctx := ctxT(t)
	out, err := f.client.CreateStream(ctx, createInput(cluster))
	if err != nil {
		t.Fatal(err)
	}
	id := *out.StreamIdentifier
	waitStatus(t, f.client, id, types.StreamStatusActive)
	if _, err := f.client.DeleteStream(ctx, &dsql.DeleteStreamInput{ClusterIdentifier: aws.String(cluster), StreamIdentifier: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	// Deleting a DELETING stream is idempotent.
	del, err := f.client.DeleteStream(ctx, &dsql.DeleteStreamInput{ClusterIdentifier: aws.String(cluster), StreamIdentifier: aws.String(id)})
	if err != nil || del.Status != types.StreamStatusDeleting {
		t.Fatalf("second delete: %+v, %v", del, err)
	}

	torn := make(chan string, 1)
	f.restart(func(c *SupervisorConfig) {
		c.Runner = funcRunner{teardown: func(_ context.Context, s *state.Stream) error {
			torn <- s.ID()
			return nil
		}}
	})
	if err := dsql.NewStreamNotExistsWaiter(f.client, fastNotExists).Wait(ctx, getInput(id), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := <-torn; got != id {
		t.Fatalf("tore down %s", got)
	}
}

// TestSupervisorRestartsReturnedRun: a pipeline that returns while its
// stream should run is an INTERNAL_ERROR (which leaves a CREATING stream
// CREATING with the code as its reason: it is retried, not failed) and is
// started again, and the new run's success clears the code.
func TestSupervisorRestartsReturnedRun(t *testing.T) {
	tests := []struct {
		name    string
		restart bool // create the stream ACTIVE, then restart with the test's runner
		between types.StreamStatus
		code    string
	}{
		{"creating", false, types.StreamStatusCreating, "INTERNAL_ERROR"},
		{"active", true, types.StreamStatusImpaired, "INTERNAL_ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			proceed := make(chan struct{})
			runner := funcRunner{run: func(ctx context.Context, s *state.Stream) error {
				if calls.Add(1) == 1 {
					return errors.New("slot orders in use")
				}
				select { // the test looks at the stream between the runs
				case <-proceed:
				case <-ctx.Done():
					return nil
				}
				// What a prepared run reports (run.go prepared).
				_ = s.Recover(codes.OwnerPipeline)
				if s.View().Status == state.Creating {
					_ = s.Created()
				}
				<-ctx.Done()
				return nil
			}}
			f := newFixture(t, func(c *SupervisorConfig) {
				if !tt.restart {
					c.Runner = runner
				}
			})
			out, err := f.client.CreateStream(ctxT(t), createInput(cluster))
			if err != nil {
				t.Fatal(err)
			}
			id := *out.StreamIdentifier
			if tt.restart {
				waitStatus(t, f.client, id, types.StreamStatusActive)
				f.restart(func(c *SupervisorConfig) { c.Runner = runner })
			}
			// The second run starts after the fault is applied.
			for deadline := time.Now().Add(time.Minute); calls.Load() < 2; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the returned run was not started again")
				}
			}
			got, err := f.client.GetStream(ctxT(t), getInput(id))
			if err != nil {
				t.Fatal(err)
			}
			code := ""
			if got.StatusReason != nil {
				code = string(got.StatusReason.Error)
			}
			if got.Status != tt.between || code != tt.code {
				t.Fatalf("between the runs: %s %q, want %s %q", got.Status, code, tt.between, tt.code)
			}
			close(proceed)
			waitStatus(t, f.client, id, types.StreamStatusActive)
			if n := calls.Load(); n != 2 {
				t.Fatalf("RunStream called %d times, want 2", n)
			}
		})
	}
}

func TestAdopt(t *testing.T) {
	f := newFixture(t, nil)
	def := state.Definition{
		ClusterID: cluster, StreamID: ident.DeriveID(cluster, "orders"), Format: "JSON", Ordering: "ROW",
		Target: state.Target{StreamARN: kinesisA, RoleARN: roleA}, ConfigFile: "/etc/cdcd.toml",
	}
	a, err := f.reg.Adopt(def)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.reg.Adopt(def)
	if err != nil || a != b {
		t.Fatalf("second Adopt: %v, same stream %v", err, a == b)
	}
	def.Ordering = "UNORDERED"
	var ce *api.ConflictError
	if _, err := f.reg.Adopt(def); !errors.As(err, &ce) {
		t.Fatalf("changed definition: %v", err)
	}
	if err := f.reg.DeleteManaged(a.ID()); err != nil {
		t.Fatal(err)
	}
	if err := dsql.NewStreamNotExistsWaiter(f.client, fastNotExists).Wait(ctxT(t), getInput(a.ID()), time.Minute); err != nil {
		t.Fatal(err)
	}
}
