package soak

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
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
// stream's status and reason through the control plane and its outstanding
// causes in its state file, the lag metric, the process's peak memory, and
// crashes.
type observer struct {
	s  *soak
	cp *dsql.Client

	mu      sync.Mutex
	samples []statusSample
	maxLag  float64 // seconds, the largest cdcd_behind_source_lag_seconds seen
}

// statusSample is one GetStream answer, with the causes outstanding in the
// stream's state file at the time.
type statusSample struct {
	at     time.Time
	stream string // its name
	status string
	code   string   // the status reason's code, "" without one
	causes []string // every outstanding code: the shown one and the others
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
		smp.causes = o.causes(st.id)
		o.mu.Lock()
		o.samples = append(o.samples, smp)
		o.mu.Unlock()
	}
}

// causes reads the codes outstanding in a stream's state file
// (docs/lifecycle.md#status-reason): GetStream shows only the most severe.
func (o *observer) causes(id string) []string {
	b, err := os.ReadFile(filepath.Join(o.s.stateDir, "streams", id+".json"))
	if err != nil {
		return nil
	}
	type reason struct {
		Code string `json:"error"`
	}
	var f struct {
		StatusReason *reason  `json:"statusReason"`
		OtherReasons []reason `json:"otherReasons"`
	}
	if json.Unmarshal(b, &f) != nil {
		return nil
	}
	var out []string
	if f.StatusReason != nil {
		out = append(out, f.StatusReason.Code)
	}
	for _, r := range f.OtherReasons {
		out = append(out, r.Code)
	}
	return out
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

// codes returns the codes outstanding for stream within [from, to], shown
// by GetStream or kept in the state file, by how many polls saw each.
func (o *observer) codes(stream string, from, to time.Time) map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int{}
	for _, smp := range o.samples {
		if smp.stream != stream || smp.at.Before(from) || smp.at.After(to) {
			continue
		}
		seen := map[string]bool{}
		for _, c := range append([]string{smp.code}, smp.causes...) {
			if c != "" && !seen[c] {
				seen[c] = true
				out[c]++
			}
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
