package soak

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/retry"
	"github.com/cdcd-dev/cdcd/test/faultproxy"
)

// fastStopTimeout bounds pg_ctl stop -m fast: a shutdown never waits on cdcd
// (docs/delivery.md#confirmation), so one that takes this long is a fault.
const fastStopTimeout = 30 * time.Second

// beginFault injects ep's fault.
func (s *soak) beginFault(ctx context.Context, ep *episode) error {
	switch ep.kind {
	case sigkill:
		s.daemon.kill()
	case pgRestart:
		return s.stopPG(ep.param)
	case walsender:
		return s.killWalsenders(ctx)
	case outage:
		r := faultproxy.Rule{Err: ep.param}
		if ep.param == "drop" {
			r = faultproxy.Rule{Drop: true}
		}
		s.proxy.Inject(r)
	case accessDenied:
		s.proxy.Inject(faultproxy.Rule{Op: "PutRecords", Err: "AccessDeniedException"})
	case throttling:
		s.failEntries(ep, faultproxy.CodeThroughputExceeded)
	case keyDenied:
		if ep.fraction == 0 {
			s.proxy.Inject(faultproxy.Rule{Op: "PutRecords", Err: ep.param})
		} else {
			s.failEntries(ep, ep.param)
		}
	case clusterKey:
		_, err := s.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(s.key)})
		return err
	case roleDenied:
		s.sts.Deny(role)
	case spillFull:
		return s.fillSpill(ctx, ep)
	}
	return nil
}

// endFault clears ep's fault.
func (s *soak) endFault(ctx context.Context, ep *episode) error {
	switch ep.kind {
	case sigkill:
		s.daemon.start()
		s.afterStart()
	case pgRestart:
		return s.env.StartPG()
	case outage, accessDenied, throttling, keyDenied:
		s.proxy.Clear()
	case clusterKey:
		_, err := s.kms.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(s.key)})
		return err
	case roleDenied:
		s.sts.Allow(role)
	case spillFull:
		return s.freeSpill()
	}
	return nil
}

// failEntries fails ep.fraction of the PutRecords entries with code, each
// entry decided anew on every attempt.
func (s *soak) failEntries(ep *episode, code string) {
	r := rand.New(rand.NewPCG(uint64(s.opt.seed), uint64(ep.at)))
	s.proxy.FailRecordsWith("PutRecords", func(int, faultproxy.Entry) string {
		if r.Float64() < ep.fraction {
			return code
		}
		return ""
	})
}

// stopPG stops PostgreSQL. A fast shutdown that does not complete within
// fastStopTimeout fails the run and is ended with -m immediate.
func (s *soak) stopPG(mode string) error {
	err := s.env.StopPG(mode, fastStopTimeout)
	if err == nil || mode != "fast" {
		return err
	}
	s.t.Errorf("pg_ctl stop -m fast did not complete within %s: %v", fastStopTimeout, err)
	s.log.event("pg_ctl stop -m immediate", "after the fast shutdown timed out")
	return s.env.StopPG("immediate", fastStopTimeout)
}

// killWalsenders ends the walsenders of the run's slots, waiting up to 2 s
// for one to be there (a daemon that just restarted).
func (s *soak) killWalsenders(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	slots := make([]string, len(s.streams))
	for i, st := range s.streams {
		slots[i] = st.slot
	}
	return s.withConn(ctx, func(c *pgx.Conn) error {
		for deadline := time.Now().Add(2 * time.Second); ; {
			var n int
			err := c.QueryRow(ctx, `SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots
				WHERE slot_name = ANY($1) AND active_pid IS NOT NULL`, slots).Scan(&n)
			if err != nil {
				return err
			}
			if n > 0 || time.Now().After(deadline) {
				s.log.event("walsenders terminated", "%d", n)
				return nil
			}
			if err := retry.Sleep(ctx, 250*time.Millisecond); err != nil {
				return err
			}
		}
	})
}

// spillState is whether the spill directory is to be full, so that a
// daemon started meanwhile gets a full one too.
type spillState struct {
	mu   sync.Mutex
	full bool
}

// fillSpill fills the running daemon's spill tmpfs and starts a large
// transaction that has to spill into it, noting its table in ep.
func (s *soak) fillSpill(ctx context.Context, ep *episode) error {
	if s.spill == nil {
		s.log.event("skip spill_full", "not injectable here (see above)")
		return nil
	}
	s.spillState.mu.Lock()
	s.spillState.full = true
	s.spillState.mu.Unlock()
	err := s.fillCurrent()
	ep.table = s.work.startBig(ctx, "during spill_full")
	return err
}

// afterStart gives a daemon that just started the faults that live in its
// process: a full spill directory.
func (s *soak) afterStart() {
	s.spillState.mu.Lock()
	full := s.spillState.full
	s.spillState.mu.Unlock()
	if full {
		if err := s.fillCurrent(); err != nil {
			s.t.Errorf("fill the restarted daemon's spill directory: %v", err)
		}
	}
}

func (s *soak) fillCurrent() error {
	p := s.daemon.current()
	if p == nil {
		return nil // afterStart fills the next one
	}
	n, err := s.spill.fill(p.Pid())
	if err == nil {
		s.log.event("spill filled", "%d MiB of filler in pid %d's tmpfs", n>>20, p.Pid())
	}
	return err
}

func (s *soak) freeSpill() error {
	if s.spill == nil {
		return nil
	}
	s.spillState.mu.Lock()
	s.spillState.full = false
	s.spillState.mu.Unlock()
	if p := s.daemon.current(); p != nil {
		return s.spill.free(p.Pid())
	}
	return nil
}
