package main

import (
	"fmt"
	"strings"
)

// target is one of the goals in BENCHMARKS.md (Targets) as this run found
// it. Targets are reported, never asserted: the machine is shared and the
// figures move.
type target struct {
	Name   string `json:"name"`
	Want   string `json:"want"`
	Got    string `json:"got"`
	Status string `json:"status"` // met, missed, or not run
}

// targetDef measures one target in a report: ok is false when the run did
// not measure it, and a caveat says why the figure cannot meet the target
// however good it is.
type targetDef struct {
	name, want string
	value      func(*report) (v float64, ok bool)
	met        func(float64) bool
	format     string
	caveat     func(*report) string
}

var targetDefs = []targetDef{
	{"drain 100k: cdcd ÷ pg_recvlogical", "≥ 1.0×", drainValue(100_000, func(d drainResult) float64 { return d.Ratio }), atLeast(1), "%.2f×", nil},
	{"drain 1M: cdcd ÷ pg_recvlogical", "≥ 1.0×", drainValue(1_000_000, func(d drainResult) float64 { return d.Ratio }), atLeast(1), "%.2f×", nil},
	{"cdcd CPU per change (largest drain)", "≤ 4 µs", largestDrainCPU, atMost(4), "%.2f µs", nil},
	{"large txn: cdcd ÷ pg_recvlogical rows/s (worst size)", "≥ 0.6×", bigValue(func(t *bigTxnResult) float64 { return t.Ratio }, worst), atLeast(0.6), "%.2f×", nil},
	{"large txn: cdcd peak RSS (largest)", "< 300 MB", bigValue(func(t *bigTxnResult) float64 { return float64(t.Cdcd.PeakRSS) / 1e6 }, largest), below(300), "%.0f MB", nil},
	{"p99 commit→ack at 10k/s", "< 50 ms", p99At(10_000), below(50), "%.1f ms", loadShort(10_000)},
	{"p99 commit→ack at 15k/s", "< 100 ms", p99At(15_000), below(100), "%.1f ms", loadShort(15_000)},
	{"encoding a 10-column row (worst case)", "< 1.5 µs", worstEncode(func(e encodeResult) float64 { return e.NsPerRecord / 1e3 }), below(1.5), "%.2f µs", nil},
	{"allocations per 10-column row (worst case)", "≤ 2", worstEncode(func(e encodeResult) float64 { return e.AllocsPerRecord }), atMost(2), "%.2f", nil},
}

// evaluate reports every target.
func evaluate(r *report) []target {
	out := make([]target, len(targetDefs))
	for i, d := range targetDefs {
		t := target{Name: d.name, Want: d.want, Got: "—", Status: "not run"}
		if v, ok := d.value(r); ok {
			t.Got, t.Status = fmt.Sprintf(d.format, v), "missed"
			caveat := ""
			if d.caveat != nil {
				caveat = d.caveat(r)
			}
			if caveat != "" {
				t.Got += " (" + caveat + ")"
			} else if d.met(v) {
				t.Status = "met"
			}
		}
		out[i] = t
	}
	return out
}

func atLeast(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
func atMost(x float64) func(float64) bool  { return func(v float64) bool { return v <= x } }
func below(x float64) func(float64) bool   { return func(v float64) bool { return v < x } }

func drainValue(changes int64, f func(drainResult) float64) func(*report) (float64, bool) {
	return func(r *report) (float64, bool) {
		for _, d := range r.Drains {
			if d.Workload.Changes == changes {
				return f(d), true
			}
		}
		return 0, false
	}
}

func largestDrainCPU(r *report) (float64, bool) {
	var best *drainResult
	for i := range r.Drains {
		if best == nil || r.Drains[i].Workload.Changes > best.Workload.Changes {
			best = &r.Drains[i]
		}
	}
	if best == nil {
		return 0, false
	}
	return best.CPUPerChangeUs, true
}

// bigValue is f of the large transactions, folded by pick: worst (the
// smallest) or largest.
func bigValue(f func(*bigTxnResult) float64, pick func(a, b float64) float64) func(*report) (float64, bool) {
	return func(r *report) (float64, bool) {
		if len(r.BigTxns) == 0 {
			return 0, false
		}
		v := f(&r.BigTxns[0])
		for i := range r.BigTxns[1:] {
			v = pick(v, f(&r.BigTxns[i+1]))
		}
		return v, true
	}
}

func worst(a, b float64) float64   { return min(a, b) }
func largest(a, b float64) float64 { return max(a, b) }

func p99At(offered int64) func(*report) (float64, bool) {
	return func(r *report) (float64, bool) {
		for _, l := range r.Latency {
			if l.Offered == offered {
				return l.P99Ms, true
			}
		}
		return 0, false
	}
}

// loadShort is the latency target's caveat: pgbench committed less than
// 95% of the offered load, so the latency was not measured at that load.
func loadShort(offered int64) func(*report) string {
	return func(r *report) string {
		for _, l := range r.Latency {
			if l.Offered == offered && l.Committed < 0.95*float64(offered) {
				return fmt.Sprintf("at %s/s committed", rate(l.Committed))
			}
		}
		return ""
	}
}

func worstEncode(f func(encodeResult) float64) func(*report) (float64, bool) {
	return func(r *report) (float64, bool) {
		worst, ok := 0.0, false
		for _, e := range r.Encode {
			worst, ok = max(worst, f(e)), true
		}
		return worst, ok
	}
}

// historyRow is the run as a row of BENCHMARKS.md's history table: date,
// commit, the drains' ratios, CPU per change, the large transaction, the
// latency percentiles, encoding; a figure not measured is "—".
func historyRow(r *report) string {
	targets := evaluate(r)
	get := func(i int) string {
		if t := targets[i]; t.Status != "not run" {
			return t.Got
		}
		return "—"
	}
	var lat []string
	for _, l := range r.Latency {
		lat = append(lat, fmt.Sprintf("%s: %.0f/%.0f", count(l.Offered), l.P50Ms, l.P99Ms))
	}
	big := "—"
	if len(r.BigTxns) > 0 {
		var each []string
		for _, t := range r.BigTxns {
			each = append(each, fmt.Sprintf("%s: %.2f×, %s", human(t.DataBytes), t.Ratio, human(t.Cdcd.PeakRSS)))
		}
		big = strings.Join(each, "; ")
	}
	cells := []string{r.Started.Format("2006-01-02"), r.Machine.Commit, get(0), get(1), get(2), big,
		strings.Join(lat, ", "), get(7) + ", " + get(8) + " allocs", "load " + r.Machine.LoadBefore}
	return "| " + strings.Join(cells, " | ") + " |"
}
