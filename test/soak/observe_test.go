package soak

import (
	"context"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dsql"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// statusPoll is how often the observer asks GetStream for each stream's
// status; the faults last seconds, so each shows in several polls.
const statusPoll = 250 * time.Millisecond

// observer watches the daemon from outside while the run goes on: each
// stream's status and reason through the control plane, the lag metric,
// the process's peak memory, and crashes.
type observer struct {
	s  *soak
	cp *dsql.Client

	mu      sync.Mutex
	samples []statusSample
	maxLag  float64 // seconds, the largest cdcd_behind_source_lag_seconds seen
}

// statusSample is one GetStream answer.
type statusSample struct {
	at     time.Time
	stream string // its name
	status string
	code   string // the status reason's code, "" without one
}

func newObserver(s *soak) *observer {
	return &observer{s: s, cp: testenv.ControlPlane(s.env, s.listen)}
}

// run polls until ctx ends.
func (o *observer) run(ctx context.Context) {
	tick := time.NewTicker(statusPoll)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		o.pollStatus(ctx)
		if n%4 == 0 {
			o.pollLag()
			o.s.daemon.sample()
			o.s.daemon.checkAlive(ctx)
		}
	}
}

func (o *observer) pollStatus(ctx context.Context) {
	for _, st := range o.s.streams {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		out, err := o.cp.GetStream(cctx, &dsql.GetStreamInput{
			ClusterIdentifier: aws.String(o.s.clusterID), StreamIdentifier: aws.String(st.id),
		}, func(opt *dsql.Options) { opt.RetryMaxAttempts = 1 })
		cancel()
		if err != nil {
			continue // the daemon is down or starting
		}
		smp := statusSample{at: time.Now(), stream: st.name, status: string(out.Status)}
		if out.StatusReason != nil {
			smp.code = string(out.StatusReason.Error)
		}
		o.mu.Lock()
		o.samples = append(o.samples, smp)
		o.mu.Unlock()
	}
}

// pollLag records the largest lag of any stream.
func (o *observer) pollLag() {
	lag, err := o.s.currentLag()
	if err != nil {
		return
	}
	o.mu.Lock()
	o.maxLag = max(o.maxLag, lag)
	o.mu.Unlock()
}

// codes returns the status reason codes stream showed within [from, to],
// by how many polls saw each.
func (o *observer) codes(stream string, from, to time.Time) map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int{}
	for _, smp := range o.samples {
		if smp.stream == stream && smp.code != "" && !smp.at.Before(from) && !smp.at.After(to) {
			out[smp.code]++
		}
	}
	return out
}

// last returns the latest status and code seen of stream.
func (o *observer) last(stream string) (status, code string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.samples) - 1; i >= 0; i-- {
		if smp := o.samples[i]; smp.stream == stream {
			return smp.status, smp.code
		}
	}
	return "", ""
}

func (o *observer) lag() float64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.maxLag
}
