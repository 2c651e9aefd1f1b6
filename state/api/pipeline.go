package api

import (
	"context"
	"errors"
	"time"

	"github.com/cdcd-dev/cdcd/state"
)

// Pipeline is the seam where the daemon plugs in capture and delivery. The
// Registry owns the goroutines; the Pipeline only does the work.
type Pipeline interface {
	// Run delivers the stream until ctx is done. It reports into s:
	// Created once the slot and target are ready (when s starts in
	// CREATING), Fault/Recover/Lag while delivering, Checkpoint before
	// confirming an LSN. The Registry cancels ctx when the stream fails
	// or is deleted. Returning while ctx is live is reported as an
	// INTERNAL_ERROR fault.
	Run(ctx context.Context, s *state.Stream) error
	// Teardown releases what the stream holds on the source (slot,
	// publication) after Run has returned; the Registry retries it until
	// it succeeds, and after a restart if the daemon stops first.
	Teardown(ctx context.Context, s *state.Stream) error
	// Describe returns live source and target details for GetStream, from
	// memory: it must not block on the network.
	Describe(s *state.Stream) (*SourceInfo, *TargetInfo)
}

// IdlePipeline delivers nothing: it marks a CREATING stream ACTIVE after
// Delay. The conformance tests use it, and it is what a daemon without
// pipelines would show.
type IdlePipeline struct{ Delay time.Duration }

var _ Pipeline = IdlePipeline{}

// Run implements Pipeline.
func (p IdlePipeline) Run(ctx context.Context, s *state.Stream) error {
	if s.Snapshot().Status == state.Creating {
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

// Teardown implements Pipeline.
func (IdlePipeline) Teardown(context.Context, *state.Stream) error { return nil }

// Describe implements Pipeline.
func (IdlePipeline) Describe(*state.Stream) (*SourceInfo, *TargetInfo) { return nil, nil }
