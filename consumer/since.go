package consumer

import (
	"flag"
	"fmt"
	"time"
)

// SinceFlag returns a flag.Value that sets *t from an RFC 3339 time or a
// duration back from now ("15m": 15 minutes ago).
func SinceFlag(t *time.Time) flag.Value {
	return sinceValue{t}
}

type sinceValue struct{ t *time.Time }

func (v sinceValue) String() string {
	if v.t == nil || v.t.IsZero() {
		return ""
	}
	return v.t.Format(time.RFC3339Nano)
}

func (v sinceValue) Set(s string) (err error) {
	*v.t, err = parseSince(s, time.Now())
	return err
}

// parseSince reads an RFC 3339 time, or a duration d meaning now − d.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2025-01-15T10:30:00Z) nor a duration back from now (15m)", s)
	}
	return now.Add(-d), nil
}
