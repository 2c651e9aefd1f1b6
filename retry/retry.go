// Package retry is cdcd's one way to wait and try again: backoff/v4's
// exponential schedule, driven by RetryNotify under a context. Every loop
// that retries an operation (reconnecting to the source, starting a stream,
// tearing one down, calling KMS) uses Do, so they all stop when their
// context ends and none sleeps without watching it.
package retry

import (
	"cmp"
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Schedule is an exponential backoff from Initial, growing by Multiplier
// (with ±50% jitter) up to Max, with no limit on the number of attempts.
type Schedule struct {
	Initial, Max time.Duration
	// Multiplier is how much each wait grows over the one before; zero
	// means 1.5.
	Multiplier float64
}

// Reconnect is the schedule for reaching a server that may be down for a
// while: the source, the target at stream start, a teardown's slot drop.
func Reconnect() Schedule { return Schedule{Initial: 500 * time.Millisecond, Max: 30 * time.Second} }

// BackOff returns a fresh backoff.BackOff for the schedule.
func (s Schedule) BackOff() backoff.BackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(s.Initial),
		backoff.WithMaxInterval(max(s.Initial, s.Max)),
		backoff.WithMultiplier(cmp.Or(s.Multiplier, backoff.DefaultMultiplier)),
		backoff.WithMaxElapsedTime(0),
	)
}

// Do runs op until it returns nil (Do returns nil), returns an error
// wrapped with Permanent (Do returns that error, unwrapped), or ctx ends
// (Do returns ctx's error). notify, if not nil, sees each failure and the
// wait before the next attempt.
func Do(ctx context.Context, s Schedule, op func() error, notify func(err error, wait time.Duration)) error {
	return DoWith(ctx, s.BackOff(), op, notify)
}

// DoWith is Do with a caller-held BackOff, for loops that Reset it when an
// attempt made progress before failing.
func DoWith(ctx context.Context, b backoff.BackOff, op func() error, notify func(err error, wait time.Duration)) error {
	return backoff.RetryNotify(op, backoff.WithContext(b, ctx), notify)
}

// Permanent marks err as not worth retrying: Do returns it at once.
func Permanent(err error) error { return backoff.Permanent(err) }

// Sleep waits d or until ctx ends, whichever is first, and returns ctx's
// error in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
