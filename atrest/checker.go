package atrest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/retry"
)

// Defaults for CheckerOptions.
const (
	DefaultCheckInterval  = time.Minute
	DefaultRetryInterval  = time.Second
	DefaultTransientLimit = 3
)

// Log attribute keys, constant so that log queries keep working.
const (
	logKeyStream   = "stream"
	logKeyKey      = "key"
	logKeyError    = "error"
	logKeyFailures = "failures"
)

// Reporter is what a Checker reports the key's health to: the stream's
// lifecycle, with faults with CLUSTER_CMK_INACCESSIBLE and recoveries of
// that code's owner, codes.OwnerClusterKey. A report the lifecycle does not
// apply (the stream failed or is being deleted, where the key's health no
// longer matters) returns nil.
type Reporter interface {
	Fault(code codes.Code, err error) error
	Recover(owner codes.Owner) error
}

// CheckerOptions configure a Checker. Zero values take the defaults.
type CheckerOptions struct {
	// Interval is the time between checks while the key is usable.
	Interval time.Duration
	// RetryInterval is the first wait after a failed check; it doubles up
	// to Interval, so that recovery is noticed soon without hammering KMS.
	RetryInterval time.Duration
	// TransientLimit is how many transient failures in a row (throttling,
	// KMS or network trouble) make a fault.
	TransientLimit int
	Logger         *slog.Logger
	Metrics        *Metrics
}

// Checker watches whether a stream's cluster key is usable and reports
// CLUSTER_CMK_INACCESSIBLE faults and recoveries. It learns from its own
// checks (Check, Run) and from failures of the Keyring's Writers and
// Readers. Its methods are safe for concurrent use.
//
// A fault is reported again on every failing check, which keeps the
// reason's message current. A recovery is reported on the first passing
// check after a fault, and on the first passing check of all: a stream
// may carry CLUSTER_CMK_INACCESSIBLE from before a restart, and only the
// checker can clear it.
type Checker struct {
	k        *Keyring
	r        Reporter
	interval time.Duration
	retry    time.Duration
	limit    int
	log      *slog.Logger
	metrics  *Metrics
	kick     chan struct{}

	mu         sync.Mutex
	faulted    bool
	confirmed  bool // a passing check has been reported
	transients int
	last       error
}

// NewChecker returns a Checker for k reporting to r, and makes k report
// failures on use to it; a Keyring has at most one Checker.
func NewChecker(k *Keyring, r Reporter, opts CheckerOptions) (*Checker, error) {
	if k == nil || r == nil {
		return nil, errors.New("new key checker: nil keyring or reporter")
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultCheckInterval
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = min(DefaultRetryInterval, opts.Interval)
	}
	if opts.TransientLimit <= 0 {
		opts.TransientLimit = DefaultTransientLimit
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Checker{
		k:        k,
		r:        r,
		interval: opts.Interval,
		retry:    opts.RetryInterval,
		limit:    opts.TransientLimit,
		log:      opts.Logger.With(logKeyStream, k.streamID, logKeyKey, k.keyARN),
		metrics:  opts.Metrics,
		kick:     make(chan struct{}, 1),
	}
	k.setErrorHook(c.onUse)
	return c, nil
}

// Check probes the key once (Keyring.Probe, bounded by the keyring's call
// timeout) and reports the outcome. It returns the probe's error; Classify
// tells whether it was a fault or a transient failure that was not yet
// reported. Call it while a stream is CREATING: a fault then fails the
// stream (docs/lifecycle.md#codes), and on a transient error the creator may call it again.
func (c *Checker) Check(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, c.k.timeout)
	defer cancel()
	err := c.k.Probe(pctx)
	if err != nil && ctx.Err() != nil {
		return err // the caller gave up: no verdict on the key
	}
	c.record(err)
	return err
}

// Err is the last outcome: nil while the key is usable (or before any
// check), else the last failure.
func (c *Checker) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Run checks at once and then every Interval until ctx ends, sooner after a
// failure or when a Writer or Reader fails to get a key. It returns nil
// when ctx ends; the caller owns the goroutine and waits for it.
func (c *Checker) Run(ctx context.Context) error {
	b := retry.Schedule{Initial: c.retry, Max: c.interval, Multiplier: 2}.BackOff()
	for {
		select {
		case <-c.kick: // this check covers any failure on use so far
		default:
		}
		wait, kick := c.interval, c.kick
		if err := c.Check(ctx); err != nil {
			// Already retrying: failures on use need no earlier check.
			wait, kick = b.NextBackOff(), nil
		} else {
			b.Reset()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-kick:
			t.Stop()
		case <-t.C:
		}
	}
}

// onUse is the Keyring's error hook: a Writer or Reader could not get a
// data key.
func (c *Checker) onUse(err error) {
	c.record(err)
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// record applies one outcome to the health state and reports changes.
func (c *Checker) record(err error) {
	class := Classify(err)
	switch class {
	case ClassCanceled:
		return
	case ClassForeign:
		// Only Probe gets here (Readers keep these to themselves): KMS
		// refused a data key it had just made, so the key is broken.
		class = ClassInaccessible
	}
	c.metrics.check(c.k.streamID, class)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = err
	switch class {
	case ClassNone:
		c.transients = 0
		if c.faulted || !c.confirmed {
			if c.faulted {
				c.log.Info("cluster key usable again")
			}
			c.faulted, c.confirmed = false, true
			c.reported("recover", c.r.Recover(codes.OwnerClusterKey))
		}
	case ClassTransient:
		c.transients++
		if c.transients < c.limit {
			c.log.Debug("cluster key check failed, retrying", logKeyError, err, logKeyFailures, c.transients)
			return
		}
		c.fault(fmt.Errorf("%d failures in a row, last: %w", c.transients, err))
	case ClassInaccessible:
		// New frames must wait for a key that KMS still hands out.
		c.k.retire()
		c.fault(err)
	}
}

// fault reports err; the caller holds mu.
func (c *Checker) fault(err error) {
	if !c.faulted {
		c.log.Warn("cluster key unusable", logKeyError, err)
	}
	c.faulted = true
	name := c.k.keyARN
	if name == "" {
		name = "(ephemeral)"
	}
	c.reported("fault", c.r.Fault(codes.ClusterCMKInaccessible, fmt.Errorf("cluster key %s: %w", name, err)))
}

// reported logs a Reporter error.
func (c *Checker) reported(what string, err error) {
	if err != nil {
		c.log.Error("cluster key "+what+" not reported", logKeyError, err)
	}
}
