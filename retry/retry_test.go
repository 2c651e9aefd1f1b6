package retry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
)

func TestDo(t *testing.T) {
	fast := Schedule{Initial: time.Millisecond, Max: 2 * time.Millisecond}
	errBoom := errors.New("boom")
	tests := []struct {
		name      string
		fails     int   // attempts that fail before success
		permanent bool  // the first failure is permanent
		want      error // Do's result
		attempts  int
	}{
		{name: "first attempt succeeds", fails: 0, want: nil, attempts: 1},
		{name: "succeeds after failures", fails: 3, want: nil, attempts: 4},
		{name: "permanent error stops at once", fails: 5, permanent: true, want: errBoom, attempts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attempts, notified := 0, 0
			err := Do(context.Background(), fast, func() error {
				attempts++
				if attempts > tt.fails {
					return nil
				}
				if tt.permanent {
					return Permanent(errBoom)
				}
				return errBoom
			}, func(error, time.Duration) { notified++ })
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Do = %v, want %v", err, tt.want)
			}
			if attempts != tt.attempts {
				t.Errorf("attempts = %d, want %d", attempts, tt.attempts)
			}
			if want := tt.attempts - 1; !tt.permanent && notified != want {
				t.Errorf("notified %d times, want %d", notified, want)
			}
		})
	}
}

func TestDoStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	attempts := 0
	err := Do(ctx, Schedule{Initial: time.Hour, Max: time.Hour}, func() error {
		attempts++
		cancel()
		return errors.New("down")
	}, nil)
	if err == nil || attempts != 1 {
		t.Fatalf("Do = %v after %d attempts; want an error after 1", err, attempts)
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestScheduleMultiplier(t *testing.T) {
	for _, tt := range []struct {
		s    Schedule
		want float64
	}{
		{Schedule{Initial: time.Second, Max: time.Minute}, 1.5},
		{Schedule{Initial: time.Second, Max: time.Minute, Multiplier: 2}, 2},
	} {
		b, ok := tt.s.BackOff().(*backoff.ExponentialBackOff)
		if !ok {
			t.Fatalf("%+v.BackOff() is %T, want *backoff.ExponentialBackOff", tt.s, tt.s.BackOff())
		}
		if b.Multiplier != tt.want || b.RandomizationFactor != 0.5 || b.InitialInterval != tt.s.Initial || b.MaxInterval != tt.s.Max {
			t.Errorf("%+v.BackOff() grows by %v with jitter %v from %v to %v; want by %v with jitter 0.5",
				tt.s, b.Multiplier, b.RandomizationFactor, b.InitialInterval, b.MaxInterval, tt.want)
		}
	}
}
