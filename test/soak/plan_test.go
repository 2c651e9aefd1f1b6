package soak

import (
	"fmt"
	"testing"
	"time"
)

// TestPlan checks the chaos plans the soak makes, without running them:
// the smoke run gets every kind of fault, the 10-minute run at least 20
// SIGKILLs and each long fault whose code needs ImpairAfter, and the
// constraints between faults hold for every seed tried.
func TestPlan(t *testing.T) {
	for seed := int64(1); seed <= 200; seed++ {
		for _, total := range []time.Duration{smokeDuration, 3 * time.Minute, 10 * time.Minute} {
			for _, pgDuringOutage := range []bool{false, true} {
				plan := planChaos(seed, total, pgDuringOutage)
				if err := checkPlan(plan, total, pgDuringOutage); err != nil {
					t.Fatalf("seed %d, %s, pgstop-during-outage %v: %v\n%s", seed, total, pgDuringOutage, err, showPlan(plan))
				}
			}
		}
	}
}

func checkPlan(plan []*episode, total time.Duration, pgDuringOutage bool) error {
	count := map[kind]int{}
	modes := map[string]int{}
	for _, ep := range plan {
		count[ep.kind]++
		if ep.kind == pgRestart {
			modes[ep.param]++
		}
		if ep.at < 0 || ep.at+ep.dur > total {
			return fmt.Errorf("%s at %s for %s outside the run", ep.kind, ep.at, ep.dur)
		}
		if ep.expect == "" && ep.exempt == "" {
			return fmt.Errorf("%s (%s) has neither a code nor an exemption", ep.kind, ep.variant)
		}
	}
	for _, k := range []kind{sigkill, pgRestart, walsender, outage, accessDenied, throttling, keyDenied, clusterKey, roleDenied, spillFull} {
		if count[k] == 0 {
			return fmt.Errorf("no %s", k)
		}
	}
	if modes["fast"] == 0 || modes["immediate"] == 0 {
		return fmt.Errorf("PostgreSQL restarts %v: want -m fast and -m immediate", modes)
	}
	if total >= 10*time.Minute && count[sigkill] < 20 {
		return fmt.Errorf("%d SIGKILLs in %s, want at least 20", count[sigkill], total)
	}
	if total >= longRun && !hasCode(plan, "INTERNAL_ERROR") && !hasCode(plan, "KINESIS_THROUGHPUT_EXCEEDED") {
		return fmt.Errorf("no fault long enough for a code that needs ImpairAfter")
	}
	return checkOverlaps(plan, pgDuringOutage)
}

func hasCode(plan []*episode, code string) bool {
	for _, ep := range plan {
		if ep.expect == code {
			return true
		}
	}
	return false
}

// checkOverlaps: no two faults of one kind overlap (a SIGKILL's restart
// comes before the next); the faults that stop delivery never overlap each other,
// nor a PostgreSQL restart unless pgDuringOutage; neither a SIGKILL nor a
// full spill directory falls within a fault whose code needs ImpairAfter.
func checkOverlaps(plan []*episode, pgDuringOutage bool) error {
	delivery := map[kind]bool{outage: true, accessDenied: true, throttling: true, keyDenied: true, clusterKey: true, roleDenied: true}
	for i, a := range plan {
		for _, b := range plan[i+1:] {
			overlap := a.at < b.at+b.dur && b.at < a.at+a.dur
			switch {
			case !overlap:
			case a.kind == b.kind && !delivery[a.kind]:
				return fmt.Errorf("two %s overlap: at %s and %s", a.kind, a.at, b.at)
			case delivery[a.kind] && delivery[b.kind]:
				return fmt.Errorf("%s and %s overlap", a.kind, b.kind)
			case (a.kind == pgRestart && delivery[b.kind] || b.kind == pgRestart && delivery[a.kind]) && !pgDuringOutage:
				return fmt.Errorf("a PostgreSQL restart overlaps %s and %s", a.kind, b.kind)
			}
			if overlap && (a.needs >= impairAfter && (b.kind == sigkill || b.kind == spillFull) ||
				b.needs >= impairAfter && (a.kind == sigkill || a.kind == spillFull)) {
				return fmt.Errorf("%s within %s, whose code needs ImpairAfter", b.kind, a.kind)
			}
		}
	}
	return nil
}

func showPlan(plan []*episode) string {
	s := ""
	for _, ep := range plan {
		s += fmt.Sprintf("%8s %6s %-22s %s\n", ep.at, ep.dur, ep.kind, ep.variant)
	}
	return s
}
