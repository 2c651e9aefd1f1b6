package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/cdcd-dev/cdcd/atrest"
	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/state"
)

// keyGate holds delivery while the cluster key cannot be used. The key
// protects the change data cdcd keeps at rest; a stream whose key is
// unusable is IMPAIRED with CLUSTER_CMK_INACCESSIBLE, as a DSQL stream is
// when it cannot read its cluster, so it must not go on delivering as if
// nothing happened. It is the Checker's Reporter and forwards to the stream.
type keyGate struct {
	st *state.Stream

	mu    sync.Mutex
	ok    bool
	ready chan struct{} // closed while ok
}

func newKeyGate(st *state.Stream) *keyGate {
	g := &keyGate{st: st, ok: true, ready: make(chan struct{})}
	close(g.ready)
	return g
}

// Fault implements atrest.Reporter.
func (g *keyGate) Fault(code codes.Code, err error) error {
	g.mu.Lock()
	if g.ok {
		g.ok, g.ready = false, make(chan struct{})
	}
	g.mu.Unlock()
	return applied(g.st.Fault(code, err))
}

// Recover implements atrest.Reporter.
func (g *keyGate) Recover(owner codes.Owner) error {
	g.mu.Lock()
	if !g.ok {
		g.ok = true
		close(g.ready)
	}
	g.mu.Unlock()
	return applied(g.st.Recover(owner))
}

// applied drops a rejected transition: the stream failed or is being
// deleted, where the key's health no longer matters.
func applied(err error) error {
	if errors.Is(err, state.ErrInvalidTransition) {
		return nil
	}
	return err
}

// Wait blocks until the key is usable or ctx ends.
func (g *keyGate) Wait(ctx context.Context) error {
	g.mu.Lock()
	ready := g.ready
	g.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var _ atrest.Reporter = (*keyGate)(nil)

// keyring is the stream's at-rest keyring: data keys from the cluster key,
// or, without one, wrapped by a key that lives only in this process. It
// makes no KMS call.
func (d *Daemon) keyring(cl *config.Cluster, def state.Definition) (*atrest.Keyring, error) {
	if cl.ClusterKeyARN == "" {
		return atrest.NewEphemeral(), nil
	}
	client := kms.NewFromConfig(d.aws, func(o *kms.Options) {
		if d.cfg.AWS.KMSEndpoint != "" {
			o.BaseEndpoint = aws.String(d.cfg.AWS.KMSEndpoint)
		}
	})
	ring, err := atrest.NewKMS(client, cl.ClusterKeyARN, def.ClusterID, def.StreamID, atrest.Options{})
	if err != nil {
		return nil, fmt.Errorf("cluster %s cluster_key_arn: %w", cl.Name, err)
	}
	return ring, nil
}

// clusterKey sets up the checker of the stream's cluster key, whose
// keyring is ring, or returns nil when the cluster has no key. The first
// check runs now: a key that is unusable while the stream is CREATING
// fails it (docs/lifecycle.md#codes).
func (d *Daemon) clusterKey(ctx context.Context, cl *config.Cluster, st *state.Stream, ring *atrest.Keyring, log *slog.Logger) (*atrest.Checker, *keyGate, error) {
	gate := newKeyGate(st)
	if cl.ClusterKeyARN == "" {
		return nil, gate, nil
	}
	checker, err := atrest.NewChecker(ring, gate, atrest.CheckerOptions{
		Interval: cl.ClusterKeyCheckInterval.Duration, Logger: log.With("component", "cluster-key"),
	})
	if err != nil {
		return nil, nil, err
	}
	if err := checker.Check(ctx); err != nil {
		log.Warn("cluster key check failed", "key", cl.ClusterKeyARN, "err", err)
	}
	return checker, gate, nil
}
