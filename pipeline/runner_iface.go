package pipeline

import (
	"context"
	"errors"
	"time"

	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/state/api"
)

// Runner is the seam where the daemon plugs in capture and delivery. The
// Supervisor owns the goroutines; the Runner only does the work.
type Runner interface {
	// RunStream delivers the stream until ctx is done. It reports into s:
	// Created once the slot and target are ready (when s starts in
	// CREATING), Fault/Recover/Lag while delivering, Checkpoint before
	// confirming an LSN. The Supervisor cancels ctx when the stream fails
	// or is deleted. Returning while ctx is live is reported as an
	// INTERNAL_ERROR fault, and the stream is run again with backoff.
	RunStream(ctx context.Context, s *state.Stream) error
	// Teardown releases what the stream holds on the source (slot,
	// publication) and in the Runner (its metric series) after Run has
	// returned; the Supervisor retries it until it succeeds, and after a
	// restart if the daemon stops first.
	Teardown(ctx context.Context, s *state.Stream) error
	// Describe returns live source and target details for GetStream, from
	// memory: it must not block on the network.
	Describe(s *state.Stream) (*api.SourceInfo, *api.TargetInfo)
}

// IdleRunner delivers nothing: it marks a CREATING stream ACTIVE after
// Delay. The conformance tests use it, and it is what a daemon without
// pipelines would show.
type IdleRunner struct{ Delay time.Duration }

var _ Runner = IdleRunner{}

// RunStream implements Runner.
func (p IdleRunner) RunStream(ctx context.Context, s *state.Stream) error {
	if s.View().Status == state.Creating {
		t := time.NewTimer(p.Delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := s.Created(); err != nil && !errors.Is(err, state.ErrInvalidTransition) {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

// Teardown implements Runner.
func (IdleRunner) Teardown(context.Context, *state.Stream) error { return nil }

// Describe implements Runner.
func (IdleRunner) Describe(*state.Stream) (*api.SourceInfo, *api.TargetInfo) { return nil, nil }
