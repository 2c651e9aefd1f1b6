package main

import (
	"slices"
	"time"
)

// latencyStats summarises commit→acknowledgement latencies.
type latencyStats struct {
	N             int
	P50, P95, P99 time.Duration
	Max           time.Duration
}

// summarize sorts d in place and takes its percentiles.
func summarize(d []time.Duration) latencyStats {
	slices.Sort(d)
	s := latencyStats{N: len(d)}
	if len(d) == 0 {
		return s
	}
	s.P50, s.P95, s.P99 = percentile(d, 50), percentile(d, 95), percentile(d, 99)
	s.Max = d[len(d)-1]
	return s
}

// percentile is the nearest-rank p-th percentile of sorted, non-empty d:
// the smallest value that at least p% of the values do not exceed.
// Integer arithmetic: in floating point 0.95×100 is just above 95, and its
// ceiling one rank too high.
func percentile(d []time.Duration, p int) time.Duration {
	rank := (p*len(d) + 99) / 100
	return d[min(max(rank, 1), len(d))-1]
}
