package soak

import (
	"context"
	"slices"
	"time"

	"github.com/cdcd-dev/cdcd/retry"
)

// action is the start or the end of an episode.
type action struct {
	at    time.Duration
	ep    *episode
	begin bool
}

// actions orders the plan's starts and ends; at the same time an end comes
// before a start.
func actions(plan []*episode) []action {
	var acts []action
	for _, ep := range plan {
		acts = append(acts, action{ep.at, ep, true})
		if ep.kind != walsender {
			acts = append(acts, action{ep.at + ep.dur, ep, false})
		}
	}
	slices.SortStableFunc(acts, func(a, b action) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		return boolInt(a.begin) - boolInt(b.begin)
	})
	return acts
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// runChaos carries out the plan. When an action takes long (pg_ctl, say),
// the rest of the plan moves back by as much, so that no fault is cut
// short and none meets one it was planned apart from. If ctx ends first,
// what is still on is cleared.
func (s *soak) runChaos(ctx context.Context) {
	var shift time.Duration
	for _, a := range actions(s.plan) {
		due := s.began.Add(a.at + shift)
		if retry.Sleep(ctx, time.Until(due)) != nil {
			break
		}
		if late := time.Since(due); late > 100*time.Millisecond {
			shift += late
		}
		s.act(ctx, a)
	}
	if shift > time.Second {
		s.log.event("chaos done", "%s later than planned", shift.Round(100*time.Millisecond))
	}
	for _, ep := range s.plan {
		if !ep.began.IsZero() && ep.ended.IsZero() && ep.kind != walsender {
			s.act(context.WithoutCancel(ctx), action{ep: ep})
		}
	}
}

func (s *soak) act(ctx context.Context, a action) {
	ep := a.ep
	if a.begin {
		ep.calls = s.activity(ep.kind)
		ep.began = time.Now()
		s.log.event("begin "+string(ep.kind), "%s (%s planned)", ep.variant, ep.dur)
		if err := s.beginFault(ctx, ep); err != nil {
			s.t.Errorf("begin %s (%s): %v", ep.kind, ep.variant, err)
		}
		if ep.kind == walsender {
			ep.ended = time.Now()
		}
		return
	}
	if err := s.endFault(ctx, ep); err != nil {
		s.t.Errorf("end %s (%s): %v", ep.kind, ep.variant, err)
	}
	ep.ended = time.Now()
	for name, n := range s.activity(ep.kind) {
		ep.calls[name] = n - ep.calls[name]
	}
	s.log.event("end "+string(ep.kind), "after %s", ep.ended.Sub(ep.began).Round(10*time.Millisecond))
}
