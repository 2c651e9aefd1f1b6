package soak

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// eventLog writes one log line per event of the run, with its time: the
// offset from the run's start and the wall clock, to match against the
// daemon's logs.
type eventLog struct {
	t *testing.T

	mu    sync.Mutex
	start time.Time // zero until the run starts
	lines []string
}

func newEventLog(t *testing.T) *eventLog { return &eventLog{t: t} }

// started marks the run's start, from which offsets count.
func (l *eventLog) started(at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.start = at
}

// event logs what happened, e.g. event("begin kinesis_outage", "…").
func (l *eventLog) event(what, format string, args ...any) {
	now := time.Now()
	l.mu.Lock()
	offset := "setup"
	if !l.start.IsZero() {
		offset = fmt.Sprintf("+%.1fs", now.Sub(l.start).Seconds())
	}
	line := fmt.Sprintf("soak: %8s %s %-26s %s", offset, now.Format("15:04:05.000"), what, fmt.Sprintf(format, args...))
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	l.t.Log(line)
}

// all returns every line logged so far.
func (l *eventLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}
