package soak

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dsql"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/retry"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// Bounds on the phases around the run, so that the soak always ends.
const (
	startTimeout     = 2 * time.Minute // the daemon's first start, to both streams ACTIVE
	chaosOverrun     = 5 * time.Minute // how far the plan may run late before it is cut
	catchUpTimeout   = 5 * time.Minute // every change in Kinesis after the faults end
	settleAfterStart = 3 * time.Second // a started daemon reports within this
)

// run starts the daemon, then runs the workload and the chaos plan for the
// run's duration.
func (s *soak) run() {
	s.plan = planChaos(s.opt.seed, s.opt.duration, s.opt.pgStopDuringOutage)
	for _, ep := range s.plan {
		s.log.event("plan "+string(ep.kind), "at +%s for %s: %s", ep.at, ep.dur, ep.variant)
	}
	s.daemon.start()
	s.waitActive()

	// The test's context ends before its cleanups stop the daemon, so the
	// observer never takes that for a crash.
	obsCtx, stopObs := context.WithCancel(s.t.Context())
	var obsWG sync.WaitGroup
	obsWG.Go(func() { s.obs.run(obsCtx) })
	s.stopObserver = func() { stopObs(); obsWG.Wait() }
	s.t.Cleanup(s.stopObserver)

	s.began = time.Now()
	s.log.started(s.began)
	workCtx, stopWork := context.WithCancel(context.Background())
	waitWork := s.work.run(workCtx)
	chaosCtx, cancel := context.WithTimeout(context.Background(), s.opt.duration+chaosOverrun)
	s.runChaos(chaosCtx)
	cancel()
	if wait := time.Until(s.began.Add(s.opt.duration)); wait > 0 {
		time.Sleep(wait)
	}
	stopWork()
	waitWork()
	s.log.event("workload stopped", "%d transactions, %d lost to faults, %d large (%d failed), %d truncates",
		s.work.commits.Load(), s.work.failures.Load(), s.work.bigs.Load(), s.work.bigFailed.Load(), s.work.truncates.Load())
}

// waitActive waits until both streams are ACTIVE after the first start.
func (s *soak) waitActive() {
	cp := s.obs.cp
	deadline := time.Now().Add(startTimeout)
	for _, st := range s.streams {
		for {
			out, err := cp.GetStream(context.Background(), &dsql.GetStreamInput{
				ClusterIdentifier: aws.String(s.clusterID), StreamIdentifier: aws.String(st.id)})
			if err == nil && out.Status == "ACTIVE" {
				break
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("stream %s not ACTIVE within %s: %+v %v", st.name, startTimeout, out, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	s.log.event("streams active", "%d", len(s.streams))
}

// finish clears every fault, makes sure PostgreSQL and the daemon run, and
// waits until Kinesis holds every change.
func (s *soak) finish() {
	ctx, cancel := context.WithTimeout(context.Background(), catchUpTimeout)
	defer cancel()
	s.proxy.Clear()
	s.sts.Allow(role)
	if _, err := s.kms.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(s.key)}); err != nil {
		s.t.Errorf("enable the cluster key: %v", err)
	}
	if err := s.freeSpill(); err != nil {
		s.t.Errorf("free the spill directory: %v", err)
	}
	s.ensurePG()
	if s.daemon.current() == nil {
		s.daemon.start()
	}
	s.log.event("faults cleared", "waiting for the daemon to catch up")
	lsn, err := s.work.finalTxn(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	s.waitConfirmed(ctx, lsn)
	s.waitLagZero(ctx)
	s.waitHealthy(ctx)
	s.stopObserver()
	s.log.event("caught up", "both slots confirmed past %s, lag 0", lsn)
}

// waitConfirmed waits until every slot is confirmed past lsn: cdcd
// confirms only what Kinesis accepted (docs/delivery.md#confirmation).
func (s *soak) waitConfirmed(ctx context.Context, lsn string) {
	slots := make([]string, len(s.streams))
	for i, st := range s.streams {
		slots[i] = st.slot
	}
	for next := time.Now(); ; time.Sleep(500 * time.Millisecond) {
		var behind []string
		err := s.withConn(ctx, func(c *pgx.Conn) error {
			rows, err := c.Query(ctx, `SELECT slot_name || ' at ' || coalesce(confirmed_flush_lsn::text, 'none')
				FROM pg_replication_slots WHERE slot_name = ANY($1) AND coalesce(confirmed_flush_lsn < $2::pg_lsn, true)`, slots, lsn)
			if err != nil {
				return err
			}
			behind, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		if err == nil && len(behind) == 0 {
			return
		}
		if ctx.Err() != nil {
			s.t.Fatalf("not caught up within %s: want every slot confirmed past %s; behind: %v (%v)", catchUpTimeout, lsn, behind, err)
		}
		if time.Now().After(next) {
			s.log.event("catching up", "behind %s: %s", lsn, strings.Join(behind, ", "))
			next = time.Now().Add(30 * time.Second)
		}
	}
}

// waitLagZero waits until the lag metric of every stream is 0.
func (s *soak) waitLagZero(ctx context.Context) {
	for {
		if lag, err := s.currentLag(); err == nil && lag == 0 {
			return
		}
		if retry.Sleep(ctx, 500*time.Millisecond) != nil {
			s.t.Errorf("cdcd_behind_source_lag_seconds not 0 within %s of the end", catchUpTimeout)
			return
		}
	}
}

// waitHealthy waits until every stream is ACTIVE once caught up: each
// cause's owner reports its success as soon as it has evidence, so a
// healthy stream does not stay IMPAIRED (docs/lifecycle.md#re-evaluation-after-a-restart).
func (s *soak) waitHealthy(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, st := range s.streams {
		var last string
		for {
			out, err := s.obs.cp.GetStream(ctx, &dsql.GetStreamInput{
				ClusterIdentifier: aws.String(s.clusterID), StreamIdentifier: aws.String(st.id)})
			if err == nil && out.Status == "ACTIVE" {
				break
			}
			if err == nil {
				last = fmt.Sprintf("%s %+v", out.Status, out.StatusReason)
			}
			if retry.Sleep(ctx, 250*time.Millisecond) != nil {
				s.t.Errorf("stream %s caught up but not ACTIVE within 30 s: %s", st.name, last)
				break
			}
		}
	}
}

// currentLag is the largest cdcd_behind_source_lag_seconds of the streams.
func (s *soak) currentLag() (float64, error) {
	m, err := testenv.Metrics(s.listen)
	if err != nil {
		return 0, err
	}
	lags := testenv.Samples(m, "cdcd_behind_source_lag_seconds")
	if len(lags) < len(s.streams) {
		return 0, fmt.Errorf("%d lag series for %d streams", len(lags), len(s.streams))
	}
	return slices.Max(lags), nil
}

// faultCounts counts the faults begun: kills, PostgreSQL restarts and
// the others by kind.
func (s *soak) faultCounts() (kills, pgRestarts int, faults map[string]int) {
	faults = map[string]int{}
	for _, ep := range s.plan {
		if ep.began.IsZero() {
			continue
		}
		switch ep.kind {
		case sigkill:
			kills++
		case pgRestart:
			pgRestarts++
		default:
			faults[string(ep.kind)]++
		}
	}
	if s.spill == nil {
		delete(faults, string(spillFull))
	}
	return kills, pgRestarts, faults
}

// checkCodes checks that each fault's documented code was outstanding on
// every stream while it lasted (shown, or kept beside a more severe one),
// unless excuse says why it could not be.
func (s *soak) checkCodes() {
	// The poller's lag behind the end; shorter than the gaps between the
	// faults that stop delivery, so the next one's code does not count.
	const grace = time.Second
	for _, ep := range s.plan {
		if ep.began.IsZero() {
			continue
		}
		ep.seen = map[string]map[string]int{}
		for _, st := range s.streams {
			ep.seen[st.name] = s.obs.codes(st.name, ep.began, ep.ended.Add(grace))
			if ep.expect == "" || ep.seen[st.name][ep.expect] > 0 {
				continue
			}
			if why := s.excuse(ep, st.name); why != "" {
				s.exempt(ep, "stream "+st.name+": "+why)
				continue
			}
			s.t.Errorf("%s (%s) at +%s for %s: stream %s never showed %s; it showed %v, made calls %v",
				ep.kind, ep.variant, s.since(ep.began).Round(time.Second), ep.ended.Sub(ep.began).Round(time.Second),
				st.name, ep.expect, ep.seen[st.name], ep.calls)
		}
	}
}

// excuse says why stream could not show ep's code, or "" when it should
// have.
func (s *soak) excuse(ep *episode, stream string) string {
	if ep.calls != nil && ep.calls[stream] == 0 {
		return "it made no call the fault breaks while it lasted (another fault held it back)"
	}
	if alive := s.daemon.longestAlive(ep.began, ep.ended, settleAfterStart); alive < ep.needs {
		return fmt.Sprintf("the daemon ran at most %s unbroken within it (restarts), %s needed", alive.Round(time.Second), ep.needs)
	}
	if ep.kind == spillFull && ep.table != "" && !s.publishes(stream, ep.table) {
		return "the large transaction that fills the spill directory writes " + ep.table + ", which it does not publish, so it had nothing to spill"
	}
	if ep.kind == pgRestart && s.overlapsKind(ep, spillFull) {
		return "a full spill directory held capture back (SPILL_FULL, its sessions backing off) while PostgreSQL was down, so no connection was tried to fail"
	}
	if ep.kind == pgRestart && s.daemon.startedWithin(ep.began, ep.ended) {
		return "the daemon started while PostgreSQL was down, and a stream whose source cannot be prepared at start stays ACTIVE without a reason (docs/lifecycle.md#status-reason, Not yet)"
	}
	return ""
}

// overlapsKind reports whether a fault of kind k was in force at some time
// during ep.
func (s *soak) overlapsKind(ep *episode, k kind) bool {
	for _, o := range s.plan {
		if o.kind == k && !o.began.IsZero() && o.began.Before(ep.ended) && !o.ended.Before(ep.began) {
			return true
		}
	}
	return false
}

// publishes reports whether the named stream publishes table.
func (s *soak) publishes(stream, table string) bool {
	for _, st := range s.streams {
		if st.name == stream {
			return slices.Contains(st.tables, table)
		}
	}
	return false
}

// exempt records why a fault's code is not required, and logs it.
func (s *soak) exempt(ep *episode, why string) {
	s.log.event("exempt "+string(ep.kind), "at +%s: %s", s.since(ep.began).Round(time.Second), why)
	if ep.exempt != "" {
		why = ep.exempt + "; " + why
	}
	ep.exempt = why
}
