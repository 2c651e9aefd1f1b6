package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/ident"
	"github.com/cdcd-dev/cdcd/retry"
	"github.com/cdcd-dev/cdcd/rolecreds"
	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/state/api"
)

// SupervisorConfig configures a Supervisor. Store is required.
type SupervisorConfig struct {
	Store   *state.Store
	Logger  *slog.Logger
	Metrics *state.Metrics
	// Partition, Region and Account go into stream ARNs; empty ones
	// default to "aws", "us-east-1" and "000000000000".
	Partition, Region, Account string
	// Clusters are the known cluster identifiers; creating a stream on any
	// other is ResourceNotFoundException.
	Clusters []string
	// Roles are the role ARNs CreateStream accepts (cdcd's stand-in for
	// iam:PassRole); nil allows none: an operator must say which roles cdcd
	// may write as.
	Roles *rolecreds.AllowList
	// MaxStreamsPerCluster limits streams (replication slots) per cluster;
	// zero means no limit.
	MaxStreamsPerCluster int
	// FailureThreshold is the lag at which an IMPAIRED stream fails; zero
	// means state.DefaultFailureThreshold.
	FailureThreshold time.Duration
	// Runner runs streams; nil means IdleRunner{Delay: 100ms}.
	Runner Runner
	// Now is the clock for creation times; nil means time.Now.
	Now func() time.Time
}

// Supervisor is the reference api.Controller: the live streams of one daemon,
// backed by a Store, each run by the Runner in a goroutine the Supervisor
// owns.
type Supervisor struct {
	cfg      SupervisorConfig
	log      *slog.Logger
	clusters map[string]bool
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu      sync.Mutex
	streams map[string]*entry
	closed  bool
}

var _ api.Controller = (*Supervisor)(nil)

type entry struct {
	s *state.Stream
	// stop cancels the pipeline; done is closed once it has returned.
	stop context.CancelFunc
	done chan struct{}
	// tearingDown is set, under Supervisor.mu, when teardown has started.
	tearingDown bool
}

// NewSupervisor loads every saved stream and resumes it: pipelines for
// CREATING, ACTIVE and IMPAIRED streams, teardown for DELETING ones. FAILED
// streams stay FAILED, without a pipeline, until deleted.
func NewSupervisor(cfg SupervisorConfig) (*Supervisor, error) {
	if cfg.Store == nil {
		return nil, errors.New("new supervisor: no store")
	}
	cfg.setDefaults()
	r := &Supervisor{cfg: cfg, log: cfg.Logger, clusters: map[string]bool{}, streams: map[string]*entry{}}
	for _, c := range cfg.Clusters {
		if !ident.ValidID(c) {
			return nil, fmt.Errorf("new supervisor: cluster identifier %q is not %d characters of [a-z0-9]", c, ident.IDLen)
		}
		r.clusters[c] = true
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if err := r.resume(); err != nil {
		r.cancel()
		r.wg.Wait()
		return nil, fmt.Errorf("new supervisor: %w", err)
	}
	return r, nil
}

func (cfg *SupervisorConfig) setDefaults() {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Runner == nil {
		cfg.Runner = IdleRunner{Delay: 100 * time.Millisecond}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Partition == "" {
		cfg.Partition = "aws"
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Account == "" {
		cfg.Account = "000000000000"
	}
}

// resume loads every saved stream and starts what its status calls for.
func (r *Supervisor) resume() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.cfg.Store.List() {
		s, err := state.NewStream(rec, r.streamOptions())
		if err != nil {
			return err
		}
		if rec.Status == state.Deleted {
			// Teardown finished but the file outlived it.
			if err := r.cfg.Store.Delete(rec.Definition.StreamID); err != nil {
				r.log.Error("removing deleted stream", "stream", s.ID(), "error", err)
			}
			continue
		}
		if !r.clusters[rec.Definition.ClusterID] {
			r.log.Warn("stream belongs to a cluster that is not configured", "stream", s.ID(), "cluster", rec.Definition.ClusterID)
		}
		e := &entry{s: s}
		r.streams[s.ID()] = e
		switch rec.Status {
		case state.Deleting:
			r.idle(e)
			r.startTeardown(e)
		case state.Failed:
			r.idle(e)
		default:
			r.start(e)
		}
	}
	return nil
}

func (r *Supervisor) streamOptions() state.Options {
	return state.Options{Logger: r.cfg.Logger, Metrics: r.cfg.Metrics, Store: r.cfg.Store,
		FailureThreshold: r.cfg.FailureThreshold}
}

// Close stops every pipeline and teardown and waits for them. Streams keep
// their saved status; the store stays open for the caller to close.
func (r *Supervisor) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return nil
}

// Stream returns a live stream by identifier, for the daemon's wiring.
func (r *Supervisor) Stream(streamID string) (*state.Stream, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.streams[streamID]
	if !ok {
		return nil, false
	}
	return e.s, true
}

// idle marks an entry as having no pipeline.
func (r *Supervisor) idle(e *entry) {
	e.stop = func() {}
	e.done = make(chan struct{})
	close(e.done)
}

// start runs the pipeline for e and stops it when the stream fails or is
// being deleted, so that a FAILED stream never delivers again. A pipeline
// that returns on its own is restarted with backoff: an IMPAIRED stream
// always has a pipeline working on it.
func (r *Supervisor) start(e *entry) {
	ctx, cancel := context.WithCancel(r.ctx)
	e.stop, e.done = cancel, make(chan struct{})
	s := e.s
	r.wg.Go(func() {
		defer close(e.done)
		defer cancel()
		_ = retry.Do(ctx, retry.Reconnect(), func() error { return r.run(ctx, s) }, func(err error, wait time.Duration) {
			r.log.Warn("restarting stream pipeline", "stream", s.ID(), "error", err, "retry_in", wait)
		})
	})
}

// run runs the stream's pipeline once. It returns nil once the pipeline
// has stopped because ctx ended or the stream no longer runs (FAILED,
// DELETING), and an error, after reporting it as INTERNAL_ERROR, when the
// pipeline returned while it should have gone on.
func (r *Supervisor) run(ctx context.Context, s *state.Stream) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	r.wg.Go(func() { runErr <- r.cfg.Runner.RunStream(runCtx, s) })
	for {
		snap, changed := s.Watch()
		if !runs(snap.Status) {
			cancel()
		}
		select {
		case err := <-runErr:
			if runCtx.Err() != nil || !runs(s.View().Status) {
				return nil // stopped, or its stream FAILED meanwhile
			}
			if err == nil {
				err = errors.New("returned without being stopped")
			}
			r.log.Error("stream pipeline stopped", "stream", s.ID(), "error", err)
			_ = s.Fault(codes.InternalError, fmt.Errorf("pipeline stopped: %w", err))
			if !runs(s.View().Status) {
				return nil
			}
			return err
		case <-changed:
		}
	}
}

// runs reports whether a stream in status st has a pipeline.
func runs(st state.Status) bool {
	return st == state.Creating || st == state.Active || st == state.Impaired
}

// startTeardown begins deleting e once; the caller holds r.mu.
func (r *Supervisor) startTeardown(e *entry) {
	if e.tearingDown {
		return
	}
	e.tearingDown = true
	r.wg.Go(func() { r.teardown(e) })
}

// teardown stops the pipeline, releases the source with retries, then
// marks the stream DELETED and removes its file. If the daemon stops first,
// the stream stays DELETING on disk and NewSupervisor resumes here.
func (r *Supervisor) teardown(e *entry) {
	s := e.s
	e.stop()
	select {
	case <-e.done:
	case <-r.ctx.Done():
		return
	}
	err := retry.Do(r.ctx, retry.Schedule{Initial: time.Second, Max: time.Minute}, func() error {
		return r.cfg.Runner.Teardown(r.ctx, s)
	}, func(err error, wait time.Duration) {
		r.log.Warn("stream teardown failed; retrying", "stream", s.ID(), "error", err, "retry_in", wait)
	})
	if err != nil {
		return // the daemon is stopping; the next start resumes the teardown
	}
	if err := s.Deleted(); err != nil {
		r.log.Error("marking stream deleted", "stream", s.ID(), "error", err)
	}
	if err := r.cfg.Store.Delete(s.ID()); err != nil {
		// The file says DELETED; the next start removes it.
		r.log.Error("removing stream file", "stream", s.ID(), "error", err)
		return
	}
	r.mu.Lock()
	delete(r.streams, s.ID())
	r.mu.Unlock()
}

// lookup finds a stream that exists from the client's point of view: one on
// that cluster that is not DELETED.
func (r *Supervisor) lookup(clusterID, streamID string) (*entry, error) {
	e, ok := r.streams[streamID]
	if !ok || e.s.Definition().ClusterID != clusterID || e.s.View().Status == state.Deleted {
		return nil, &api.NotFoundError{Type: "stream", ID: streamID}
	}
	return e, nil
}

func (r *Supervisor) view(s *state.Stream) api.StreamView {
	v := api.StreamView{View: s.View()}
	v.Source, v.TargetInfo = r.cfg.Runner.Describe(s)
	return v
}

func sameRequest(d state.Definition, req api.CreateRequest) bool {
	return d.Format == req.Format && d.Ordering == req.Ordering && d.Target == req.Target && maps.Equal(d.Tags, req.Tags)
}

var errClosed = errors.New("supervisor closed")

// CreateStream implements api.Controller.
func (r *Supervisor) CreateStream(_ context.Context, req api.CreateRequest) (api.StreamView, error) {
	if err := req.Validate(); err != nil {
		return api.StreamView{}, err
	}
	if !r.clusters[req.ClusterID] {
		return api.StreamView{}, &api.NotFoundError{Type: "cluster", ID: req.ClusterID}
	}
	if r.cfg.Roles == nil {
		return api.StreamView{}, &api.AccessDeniedError{Message: fmt.Sprintf(
			"role %s is not among the roles this cdcd may pass to a stream: no roles are allowed (%s)", req.Target.RoleARN, rolecreds.AllowKey)}
	}
	if err := r.cfg.Roles.Check(req.Target.RoleARN); err != nil {
		return api.StreamView{}, &api.AccessDeniedError{Message: err.Error()}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return api.StreamView{}, errClosed
	}
	n := 0
	for _, e := range r.streams {
		d := e.s.Definition()
		if d.ClusterID != req.ClusterID {
			continue
		}
		n++
		if req.ClientToken == "" || d.ClientToken != req.ClientToken {
			continue
		}
		if !sameRequest(d, req) {
			return api.StreamView{}, &api.ConflictError{ResourceType: "stream", ResourceID: d.StreamID, Message: fmt.Sprintf(
				"client token %q already created stream %s with different parameters", req.ClientToken, d.StreamID)}
		}
		return r.view(e.s), nil // a retry: the same stream, not another
	}
	if limit := r.cfg.MaxStreamsPerCluster; limit > 0 && n >= limit {
		return api.StreamView{}, &api.QuotaError{ResourceType: "cluster", ResourceID: req.ClusterID, QuotaCode: "streams-per-cluster",
			Message: fmt.Sprintf("cluster %s has %d streams, the configured maximum", req.ClusterID, limit)}
	}
	id := ident.NewStreamID()
	def := state.Definition{
		ClusterID: req.ClusterID, StreamID: id,
		ARN:    ident.StreamARN(r.cfg.Partition, r.cfg.Region, r.cfg.Account, req.ClusterID, id),
		Format: req.Format, Ordering: req.Ordering, Tags: maps.Clone(req.Tags), Target: req.Target,
		// Millisecond precision is what the API carries; storing more
		// would make the saved and the reported time differ.
		CreationTime: r.cfg.Now().UTC().Truncate(time.Millisecond),
		ClientToken:  req.ClientToken,
	}
	return r.add(def)
}

// add saves and starts a new CREATING stream; the caller holds r.mu.
func (r *Supervisor) add(def state.Definition) (api.StreamView, error) {
	rec := state.File{Version: state.FileVersion, Definition: def, Status: state.Creating}
	if err := r.cfg.Store.Save(rec); err != nil {
		return api.StreamView{}, fmt.Errorf("create stream: %w", err)
	}
	s, err := state.NewStream(rec, r.streamOptions())
	if err != nil {
		return api.StreamView{}, fmt.Errorf("create stream: %w", err)
	}
	e := &entry{s: s}
	r.streams[def.StreamID] = e
	r.start(e)
	r.log.Info("stream created", "stream", def.StreamID, "cluster", def.ClusterID,
		"target", def.Target.StreamARN, "role", def.Target.RoleARN, "ordering", def.Ordering)
	return r.view(s), nil
}

// Adopt creates a stream that a configuration file defines (def.ConfigFile
// set, def.StreamID typically ident.DeriveID of the file's entry), or
// returns it if it exists with the same definition. A saved stream whose
// definition differs is a *api.ConflictError: cdcd does not retarget a stream in
// place, since its slot position belongs to the old target.
func (r *Supervisor) Adopt(def state.Definition) (*state.Stream, error) {
	if def.ConfigFile == "" {
		return nil, errors.New("adopt stream: no config file named")
	}
	req := api.CreateRequest{ClusterID: def.ClusterID, Format: def.Format, Ordering: def.Ordering, Tags: def.Tags, Target: def.Target}
	if err := req.ValidateConfigured(); err != nil {
		return nil, fmt.Errorf("adopt stream from %s: %w", def.ConfigFile, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errClosed
	}
	if e, ok := r.streams[def.StreamID]; ok {
		have := e.s.Definition()
		if have.ClusterID != def.ClusterID || have.ConfigFile != def.ConfigFile || !sameRequest(have, req) {
			return nil, &api.ConflictError{ResourceType: "stream", ResourceID: def.StreamID, Message: fmt.Sprintf(
				"stream %s in %s differs from the saved stream; delete it (remove it from the file, then restart) to recreate it",
				def.StreamID, def.ConfigFile)}
		}
		return e.s, nil
	}
	if def.ARN == "" {
		def.ARN = ident.StreamARN(r.cfg.Partition, r.cfg.Region, r.cfg.Account, def.ClusterID, def.StreamID)
	}
	if def.CreationTime.IsZero() {
		def.CreationTime = r.cfg.Now().UTC().Truncate(time.Millisecond)
	}
	if _, err := r.add(def); err != nil {
		return nil, err
	}
	return r.streams[def.StreamID].s, nil
}

// GetStream implements api.Controller.
func (r *Supervisor) GetStream(_ context.Context, clusterID, streamID string) (api.StreamView, error) {
	r.mu.Lock()
	e, err := r.lookup(clusterID, streamID)
	r.mu.Unlock()
	if err != nil {
		return api.StreamView{}, err
	}
	return r.view(e.s), nil
}

// ListStreams implements api.Controller.
func (r *Supervisor) ListStreams(_ context.Context, clusterID string) ([]api.StreamView, error) {
	if !r.clusters[clusterID] {
		return nil, &api.NotFoundError{Type: "cluster", ID: clusterID}
	}
	return r.collect(clusterID), nil
}

// Streams implements api.Controller.
func (r *Supervisor) Streams(context.Context) ([]api.StreamView, error) { return r.collect(""), nil }

// collect views the streams of clusterID ("" for all) outside r.mu, since
// Describe belongs to the pipeline.
func (r *Supervisor) collect(clusterID string) []api.StreamView {
	r.mu.Lock()
	ss := make([]*state.Stream, 0, len(r.streams))
	for _, e := range r.streams {
		if clusterID == "" || e.s.Definition().ClusterID == clusterID {
			ss = append(ss, e.s)
		}
	}
	r.mu.Unlock()
	views := make([]api.StreamView, 0, len(ss))
	for _, s := range ss {
		if v := r.view(s); v.Status != state.Deleted {
			views = append(views, v)
		}
	}
	return views
}

// DeleteStream implements api.Controller. The client token needs no record:
// deleting a DELETING stream already returns it unchanged.
func (r *Supervisor) DeleteStream(_ context.Context, clusterID, streamID, _ string) (api.StreamView, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, err := r.lookup(clusterID, streamID)
	if err != nil {
		return api.StreamView{}, err
	}
	if f := e.s.Definition().ConfigFile; f != "" {
		return api.StreamView{}, &api.ConflictError{ResourceType: "stream", ResourceID: streamID, Message: fmt.Sprintf(
			"stream %s is managed by config file %s; edit the file to delete it", streamID, f)}
	}
	if err := e.s.Delete(); err != nil {
		if errors.Is(err, state.ErrInvalidTransition) {
			return api.StreamView{}, &api.NotFoundError{Type: "stream", ID: streamID}
		}
		// DELETING is not on disk; tearing down now could leave a saved
		// stream without its slot after a crash. The client retries.
		return api.StreamView{}, fmt.Errorf("delete stream: %w", err)
	}
	if r.closed {
		return api.StreamView{}, errClosed
	}
	// The answer shows DELETING, as DSQL's does, even when a quick
	// teardown finishes before the response is written.
	view := api.StreamView{View: e.s.View()}
	r.startTeardown(e)
	return view, nil
}

// DeleteManaged deletes a config-managed stream, for the daemon when an
// entry disappears from its configuration file.
func (r *Supervisor) DeleteManaged(streamID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.streams[streamID]
	if !ok {
		return &api.NotFoundError{Type: "stream", ID: streamID}
	}
	if err := e.s.Delete(); err != nil {
		return fmt.Errorf("delete stream: %w", err)
	}
	if !r.closed {
		r.startTeardown(e)
	}
	return nil
}
