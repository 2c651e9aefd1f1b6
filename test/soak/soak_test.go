// Package soak runs the cdcd daemon for a while under a seeded workload and
// seeded faults (SIGKILLs, PostgreSQL restarts, Kinesis, KMS and STS
// failures, a full spill directory), then reads every Kinesis record back
// with a reader of its own and checks the invariants: nothing lost,
// duplicates identical but for the processing time, legal lifecycle
// transitions, each fault's documented status code, ROW order per key.
//
// `make soak` runs it for SOAK_DURATION (10m); `make test` runs it for 60 s
// as a smoke test. Flags (after the package on the go test line):
//
//	-soak.duration 10m          how long the workload and the faults run
//	-soak.seed N                replay a run (the seed is logged first)
//	-soak.pgstop-during-outage  also restart PostgreSQL while Kinesis refuses
//
// SOAK_DURATION and SOAK_SEED stand in for the first two flags.
package soak

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// binary is the cdcd executable built once for the package.
var binary string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithCdcd(m, &binary)) }

var (
	flagDuration           = flag.Duration("soak.duration", 0, "how long the workload and the faults run (default $SOAK_DURATION, else 60s)")
	flagSeed               = flag.Int64("soak.seed", 0, "seed of the workload and the faults (default $SOAK_SEED, else from the clock)")
	flagPGStopDuringOutage = flag.Bool("soak.pgstop-during-outage", false, "also restart PostgreSQL while Kinesis refuses delivery")
)

// options are one run's parameters.
type options struct {
	duration time.Duration
	seed     int64
	// pgStopDuringOutage lets PostgreSQL restarts overlap the faults that
	// stop Kinesis from accepting records.
	pgStopDuringOutage bool
}

func soakOptions(t *testing.T) options {
	t.Helper()
	o := options{duration: *flagDuration, seed: *flagSeed, pgStopDuringOutage: *flagPGStopDuringOutage}
	if o.duration == 0 {
		o.duration = smokeDuration
		if v := os.Getenv("SOAK_DURATION"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				t.Fatalf("SOAK_DURATION=%q is not a positive duration", v)
			}
			o.duration = d
		}
	}
	if o.seed == 0 {
		o.seed = time.Now().UnixNano() % 1_000_000_000
		if v := os.Getenv("SOAK_SEED"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("SOAK_SEED=%q is not an integer", v)
			}
			o.seed = n
		}
	}
	return o
}

func (o options) String() string {
	return fmt.Sprintf("seed %d, duration %s, pgstop-during-outage %v", o.seed, o.duration, o.pgStopDuringOutage)
}

// TestSoak is the soak: setup, workload and chaos for the run's duration,
// then every fault cleared, the daemon caught up, and the checks.
func TestSoak(t *testing.T) {
	env := testenv.Require(t)
	opt := soakOptions(t)
	t.Logf("soak: %s (replay: make soak SOAK_DURATION=%s SOAK_SEED=%d)", opt, opt.duration, opt.seed)
	s := newSoak(t, env, opt)
	s.run()
	s.finish()
	s.check()
}
