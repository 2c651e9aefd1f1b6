package soak

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// kind is a kind of fault.
type kind string

const (
	sigkill      kind = "sigkill"
	pgRestart    kind = "pg_restart"
	walsender    kind = "walsender_kill"
	outage       kind = "kinesis_outage"
	accessDenied kind = "access_denied"
	throttling   kind = "throttling"
	keyDenied    kind = "target_key_denied"
	clusterKey   kind = "cluster_key_disabled"
	roleDenied   kind = "role_denied"
	spillFull    kind = "spill_full"
)

// smokeDuration is the run `go test ./...` makes when nothing asks for
// another: short enough for make test, long enough for every cheap fault.
const smokeDuration = 60 * time.Second

// longRun is the duration from which the plan includes the faults that
// need more than the sink's ImpairAfter to show their code.
const longRun = 5 * time.Minute

// episode is one fault: planned, then injected and cleared.
type episode struct {
	kind     kind
	variant  string        // the fault's form, in words
	param    string        // for the injector: an error code or pg_ctl's mode
	fraction float64       // for per-entry failures: the share of entries failed
	at, dur  time.Duration // planned start, from the run's start, and length

	// From docs/lifecycle.md#codes: the code the fault must show while it
	// lasts, or why none is checked.
	expect string
	exempt string
	// needs is how long the daemon must run unbroken within the fault for
	// the code to show.
	needs time.Duration

	began, ended time.Time
	seen         map[string]map[string]int // by stream: codes seen, polls each
	// calls counts, by stream, the calls it made while the fault lasted to
	// the service the fault breaks (activity); nil for the faults that
	// show without.
	calls map[string]int
	// table is the table a spill_full fault's large transaction writes:
	// only the stream that publishes it spills.
	table string
}

// planChaos lays out the run's faults from the seed: the delivery faults
// and PostgreSQL restarts one after another, the SIGKILLs, walsender kills
// and full spill directories across them.
func planChaos(seed int64, total time.Duration, pgDuringOutage bool) []*episode {
	r := rand.New(rand.NewPCG(uint64(seed), 0x50a6))
	plan := planExclusive(r, total, pgDuringOutage)
	plan = append(plan, planInstants(r, total, sigkill, max(2, roundDiv(total, 25*time.Second)), plan)...)
	plan = append(plan, planInstants(r, total, walsender, max(1, roundDiv(total, 45*time.Second)), plan)...)
	plan = append(plan, planSpill(r, total, plan)...)
	slices.SortStableFunc(plan, func(a, b *episode) int { return int(a.at - b.at) })
	for _, ep := range plan {
		ep.expect, ep.exempt, ep.needs = expectation(ep)
	}
	return plan
}

// planExclusive lays out rounds of the faults that stop delivery, each
// round every kind once in a seeded order, and PostgreSQL restarts among
// them: none overlaps another (a stream shows one reason at a time). With
// pgDuringOutage, a restart also falls inside each Kinesis outage and
// access denial (and, in a short run, only there).
func planExclusive(r *rand.Rand, total time.Duration, pgDuringOutage bool) []*episode {
	long := total >= longRun
	var plan []*episode
	at, restarts := 3*time.Second, 0
	for round := 0; ; round++ {
		items := []*episode{
			outageFault(r, long), throttleFault(r, long, round),
			{kind: accessDenied, variant: "AccessDeniedException on PutRecords", dur: span(r, long, 4, 5, 10)},
			keyFault(r, long),
			{kind: clusterKey, variant: "DisableKey", dur: span(r, long, 5, 6, 12)},
			{kind: roleDenied, variant: "AssumeRole denied", dur: span(r, long, 8, 10, 20)},
		}
		if long || !pgDuringOutage {
			items = append(items, pgFault(r, long, "fast"), pgFault(r, long, "immediate"))
		}
		r.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
		for _, ep := range items {
			overlapped := pgDuringOutage && (ep.kind == outage || ep.kind == accessDenied)
			if overlapped {
				ep.dur = max(ep.dur, 6*time.Second)
			}
			// A restart's slot also holds pg_ctl's stop and start.
			slot := ep.dur
			if ep.kind == pgRestart {
				slot += 3 * time.Second
			}
			if at+slot > total-2*time.Second {
				return plan
			}
			ep.at = at
			plan = append(plan, ep)
			if overlapped {
				// Once the fault has shown its code: a restart inside it.
				pg := pgFault(r, false, []string{"fast", "immediate"}[restarts%2])
				pg.at, pg.variant = at+1500*time.Millisecond, pg.variant+", during "+string(ep.kind)
				plan = append(plan, pg)
				restarts++
			}
			at += slot + span(r, long, 1.5, 3, 8)
		}
	}
}

func outageFault(r *rand.Rand, long bool) *episode {
	ep := &episode{kind: outage, param: "AccessDeniedException", variant: "AccessDeniedException on every call",
		dur: span(r, long, 4, 6, 15)}
	if long && r.IntN(3) > 0 {
		ep.dur = span(r, long, 0, 40, 50)
		ep.param, ep.variant = "ServiceUnavailable", "503 ServiceUnavailable on every call"
		if r.IntN(2) == 0 {
			ep.param, ep.variant = "drop", "every connection dropped unanswered"
		}
	}
	return ep
}

// throttleFault fails a fraction of the entries; every other round of a
// long run fails all of them for longer than ImpairAfter.
func throttleFault(r *rand.Rand, long bool, round int) *episode {
	if long && round%2 == 0 {
		return &episode{kind: throttling, fraction: 1, variant: "every entry throttled", dur: span(r, long, 0, 40, 45)}
	}
	f := float64(4+r.IntN(7)) / 20
	return &episode{kind: throttling, fraction: f, variant: fmt.Sprintf("%.2f of entries throttled", f), dur: span(r, long, 5, 10, 20)}
}

func keyFault(r *rand.Rand, long bool) *episode {
	ep := &episode{kind: keyDenied, param: "KMSAccessDeniedException", dur: span(r, long, 4, 5, 12)}
	if r.IntN(2) == 0 {
		ep.variant = "KMSAccessDeniedException on PutRecords"
		return ep
	}
	ep.fraction = float64(10+r.IntN(11)) / 20
	ep.variant = fmt.Sprintf("KMSAccessDeniedException on %.2f of entries", ep.fraction)
	return ep
}

// pgFault stops PostgreSQL with pg_ctl stop -m mode, keeps it down for a
// few seconds, so that cdcd's reconnect fails and reports it, and starts it.
func pgFault(r *rand.Rand, long bool, mode string) *episode {
	d := span(r, long, 3, 3, 6)
	return &episode{kind: pgRestart, param: mode, variant: fmt.Sprintf("-m %s, down %s", mode, d), dur: d}
}

// planInstants spreads n faults of kind k over the run, evenly with
// jitter, out of the way of the exclusive faults they must not meet.
func planInstants(r *rand.Rand, total time.Duration, k kind, n int, exclusive []*episode) []*episode {
	var out []*episode
	step := total / time.Duration(n)
	for i := range n {
		jitter := time.Duration((r.Float64() - 0.5) * 0.7 * float64(step))
		at := clamp(step*time.Duration(i)+step/2+jitter, 2*time.Second, total-3*time.Second).Round(100 * time.Millisecond)
		ep := &episode{kind: k, variant: "pg_terminate_backend on the slots' walsenders"}
		if k == sigkill {
			ep.dur = span(r, true, 0, 0.2, 2) // until the restart
			ep.variant = fmt.Sprintf("SIGKILL, restart after %s", ep.dur)
		}
		if ep.at = avoid(at, ep.dur, total, k, append(slices.Clip(exclusive), out...)); ep.at >= 0 {
			out = append(out, ep)
		}
	}
	return out
}

// avoid moves a fault of kind k lasting dur to the nearest start in
// [2 s, total - dur - 3 s] where it keeps out of the faults it must not
// meet, or returns -1: one of its own kind (a SIGKILL must end in a
// restart before the next); a SIGKILL and a full spill directory (which
// holds a stream back from Kinesis) keep out of a fault whose code needs
// ImpairAfter, whose clock they set back; a walsender kill keeps out of a
// PostgreSQL restart and a SIGKILL (there is no walsender to kill).
func avoid(at, dur, total time.Duration, k kind, exclusive []*episode) time.Duration {
	blocked := func(at time.Duration) bool {
		for _, ep := range exclusive {
			_, _, needs := expectation(ep)
			hit := k == ep.kind || k == walsender && (ep.kind == pgRestart || ep.kind == sigkill) ||
				(k == sigkill || k == spillFull) && needs >= impairAfter
			if hit && at+dur > ep.at-time.Second && at < ep.at+ep.dur+5*time.Second {
				return true
			}
		}
		return false
	}
	for d := time.Duration(0); d < total; d += time.Second {
		for _, c := range []time.Duration{at + d, at - d} {
			if c >= 2*time.Second && c+dur <= total-3*time.Second && !blocked(c) {
				return c
			}
		}
	}
	return -1
}

// planSpill fills the spill directory about every 100 s (once in a short
// run) while a large transaction spills.
func planSpill(r *rand.Rand, total time.Duration, others []*episode) []*episode {
	long := total >= longRun
	n := max(1, roundDiv(total, 100*time.Second))
	step := total / time.Duration(n)
	var out []*episode
	for i := range n {
		d := span(r, long, 8, 10, 20)
		at := step*time.Duration(i) + step/3 + time.Duration(r.Float64()*0.3*float64(step))
		at = avoid(clamp(at, 2*time.Second, total).Round(100*time.Millisecond), d, total, spillFull, append(slices.Clip(others), out...))
		if at >= 0 {
			out = append(out, &episode{kind: spillFull, at: at, dur: d, variant: "the spill tmpfs filled up"})
		}
	}
	return out
}

// span is a duration in seconds: short in a short run, else uniform in
// [lo, hi].
func span(r *rand.Rand, long bool, short, lo, hi float64) time.Duration {
	s := short
	if long {
		s = lo + r.Float64()*(hi-lo)
	}
	return time.Duration(s * float64(time.Second)).Round(100 * time.Millisecond)
}

func roundDiv(a, b time.Duration) int { return int(math.Round(float64(a) / float64(b))) }

func clamp(d, lo, hi time.Duration) time.Duration { return max(lo, min(d, hi)) }

// impairAfter is the sink's ImpairAfter (sink.Config, default 30 s,
// docs/delivery.md#retries): throttling and internal failures impair a
// stream only once the same records have stayed undelivered that long.
const impairAfter = 30 * time.Second

// credentialLifetime is how long the STS stand-in's credentials last, so
// that a denied role shows within seconds.
const credentialLifetime = 3 * time.Second

// expectation is the code docs/lifecycle.md#codes gives a fault, how long
// the daemon must run unbroken within it for the code to show, or why no
// code is checked.
func expectation(ep *episode) (code, exempt string, needs time.Duration) {
	const immediate = 2 * time.Second
	transient := impairAfter + 2*time.Second
	switch ep.kind {
	case sigkill:
		return "", "a restart, which nothing reports", 0
	case walsender:
		return "", "a dropped connection that reopens at once is not reported", 0
	case spillFull:
		return "SPILL_FULL", "", immediate
	case pgRestart:
		return "SOURCE_UNAVAILABLE", "", immediate
	case accessDenied:
		return "KINESIS_ACCESS_DENIED", "", immediate
	case keyDenied:
		return "KINESIS_KMS_ACCESS_DENIED", "", immediate
	case clusterKey:
		return "CLUSTER_CMK_INACCESSIBLE", "", immediate
	case roleDenied:
		return "ROLE_ACCESS_DENIED", "", credentialLifetime + immediate
	case outage:
		if ep.param == "AccessDeniedException" {
			return "KINESIS_ACCESS_DENIED", "", immediate
		}
		if ep.dur < transient+5*time.Second {
			return "", fmt.Sprintf("shorter than ImpairAfter (%s) and a margin", impairAfter), 0
		}
		return "INTERNAL_ERROR", "", transient
	case throttling:
		if ep.fraction < 1 {
			return "", fmt.Sprintf("a fraction of entries gets through on retries; it impairs only if one batch keeps failing for ImpairAfter (%s), which is left to chance", impairAfter), 0
		}
		if ep.dur < transient+5*time.Second {
			return "", fmt.Sprintf("shorter than ImpairAfter (%s) and a margin", impairAfter), 0
		}
		return "KINESIS_THROUGHPUT_EXCEEDED", "", transient
	}
	return "", "unknown fault", 0
}
