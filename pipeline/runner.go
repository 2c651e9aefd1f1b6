package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/cdcd-dev/cdcd/capture"
	"github.com/cdcd-dev/cdcd/capture/pgauth"
	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/rolecreds"
	"github.com/cdcd-dev/cdcd/sink"
	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/state/api"
	"github.com/cenkalti/backoff/v4"
)

// liveStream is what GetStream shows of a running stream beyond its file.
type liveStream struct {
	sc     *config.Stream
	src    *capture.Source
	target *sink.Target
}

// Describe implements Runner from memory.
func (d *Daemon) Describe(s *state.Stream) (*api.SourceInfo, *api.TargetInfo) {
	d.mu.Lock()
	live := d.live[s.ID()]
	var src *api.SourceInfo
	var tgt *api.TargetInfo
	if live != nil {
		src = &api.SourceInfo{Slot: live.sc.Slot, Publication: live.sc.Publication}
		if live.src != nil {
			h := live.src.Health()
			src.RetainedWALBytes, src.WALStatus = h.RetainedWALBytes, h.WALStatus
		}
		if live.target != nil {
			tgt = &api.TargetInfo{EncryptionType: live.target.EncryptionType, KeyID: live.target.KeyID}
		}
	}
	d.mu.Unlock()
	if src != nil {
		src.ConfirmedLSN = s.Snapshot().Checkpoint.LSN
	}
	return src, tgt
}

// Teardown implements Runner: it drops the slot and the publication of
// a deleted stream, which is the only time cdcd drops them.
func (d *Daemon) Teardown(ctx context.Context, s *state.Stream) error {
	sc, cl, err := d.streamConfig(ctx, s.Definition())
	if err != nil {
		return err
	}
	src, err := d.source(sc, cl, nil, nil, nil, d.log.With("stream", s.ID()))
	if err != nil {
		return err
	}
	if err := src.Drop(ctx); err != nil {
		return err
	}
	if err := d.removeSpillDir(s.ID()); err != nil {
		return err
	}
	d.metrics.forget(sc.Name)
	d.log.Info("dropped slot and publication of deleted stream", "stream", s.ID(), "slot", sc.Slot, "publication", sc.Publication)
	return nil
}

// source is the capture side of a stream. st, met and sp may be nil for a
// source that is only dropped.
func (d *Daemon) source(sc *config.Stream, cl *config.Cluster, st *state.Stream, met *streamMetrics, sp *spillConfig, log *slog.Logger) (*capture.Source, error) {
	auth := d.auth[cl.Name]
	cfg := capture.Config{
		DSN: cl.DSN, Configure: auth.Configure, Slot: sc.Slot, Publication: sc.Publication, Tables: sc.Tables,
		OnConnectError: func(err error) {
			if pgauth.IsAuthFailure(err) {
				auth.AuthFailed()
			}
		},
		SetReplicaIdentityFull: sc.SetReplicaIdentityFull, StatusInterval: sc.Delivery.StatusInterval.Duration,
		Snapshot: sc.Snapshot, Logger: log.With("component", "capture"),
	}
	if st != nil {
		cfg.Report = func(code codes.Code, err error) {
			if code == "" {
				_ = st.Recover()
			} else {
				_ = st.Fault(code, err)
			}
		}
	}
	if met != nil {
		cfg.Metrics = met.capture
	}
	cfg.MemoryBudget = -1 // a source that is only dropped never spills
	if sp != nil {
		cfg.MemoryBudget, cfg.Spill = sc.Delivery.MemoryBudget, sp.store
	}
	return capture.New(cfg)
}

// RunStream implements Runner: it prepares the source and the target, then
// delivers until ctx ends. A source that is down or misconfigured keeps the
// stream CREATING (the error is logged and retried, so fixing it needs no
// restart); AWS permission and key errors fail a CREATING stream and impair
// a running one, as docs/lifecycle.md#codes says.
func (d *Daemon) RunStream(ctx context.Context, st *state.Stream) error {
	def := st.Definition()
	log := d.log.With("stream", def.StreamID)
	sc, cl, err := d.streamConfig(ctx, def)
	for err != nil {
		log.Error("stream cannot start yet; retrying", "err", err)
		if err := sleepCtx(ctx, 5*time.Second); err != nil {
			return nil
		}
		sc, cl, err = d.streamConfig(ctx, def)
	}
	log = log.With("name", sc.Name)
	met := d.metrics.stream(sc.Name)
	ring, err := d.keyring(cl, def)
	if err != nil {
		_ = st.Fault(codes.ClusterCMKInaccessible, err)
		return nil
	}
	sp, err := d.spill(ring, def, log)
	if err != nil {
		return err
	}
	src, err := d.source(sc, cl, st, met, sp, log)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.live[def.StreamID] = &liveStream{sc: sc}
	d.mu.Unlock()

	creds, closer, err := d.streamCredentials(ctx, sc, def.ARN, def.ClusterID, log)
	if err != nil {
		// A role the configuration does not allow will not start working
		// by itself.
		_ = st.Fault(codes.RoleAccessDenied, err)
		return nil
	}
	defer closer.Close()
	kin := kinesis.NewFromConfig(d.aws, func(o *kinesis.Options) {
		o.Credentials = creds
		if d.cfg.AWS.KinesisEndpoint != "" {
			o.BaseEndpoint = aws.String(d.cfg.AWS.KinesisEndpoint)
		}
	})

	var (
		info   capture.Info
		target sink.Target
	)
	bo := newBackoff()
	for {
		info, err = src.Prepare(ctx, st.Snapshot().Checkpoint.LSN)
		if errors.Is(err, capture.ErrSlotLost) {
			_ = st.Fault(codes.SourceSlotLost, err)
			return nil
		}
		if err == nil {
			target, err = sink.DescribeTarget(ctx, kin, sc.Target.KinesisStream, "")
			if err != nil {
				if code := classify(err); code != codes.InternalError {
					_ = st.Fault(code, err)
					if st.Snapshot().Status == state.Failed {
						return nil
					}
				}
			}
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := bo.NextBackOff()
		log.Error("stream cannot start yet; retrying", "err", err, "retry_in", wait)
		if err := sleepCtx(ctx, wait); err != nil {
			return nil
		}
	}
	d.mu.Lock()
	d.live[def.StreamID].target = &target
	d.mu.Unlock()
	checker, gate, err := d.clusterKey(ctx, cl, st, sp.ring, log)
	if err != nil {
		_ = st.Fault(codes.ClusterCMKInaccessible, err)
		return nil
	}
	if st.Snapshot().Status == state.Failed {
		return nil
	}
	if checker != nil {
		go checker.Run(ctx)
	}
	return d.deliver(ctx, sc, st, src, kin, info, target, gate, met, sp, log)
}

// deliver runs capture and sink for a prepared stream and shuts them down in
// order: stop capture, drain the sink under a deadline, persist the final
// checkpoint.
func (d *Daemon) deliver(ctx context.Context, sc *config.Stream, st *state.Stream, src *capture.Source,
	kin *kinesis.Client, info capture.Info, target sink.Target, gate *keyGate, met *streamMetrics, sp *spillConfig, log *slog.Logger) error {
	rec := st.Snapshot().Record
	enc, err := record.NewEncoder(record.Config{
		SystemID: info.SystemID, Cluster: rec.Definition.ClusterID, Database: info.Database,
		Ordering: record.Ordering(sc.Ordering), MaxRecordBytes: target.MaxRecordBytes, EmitTruncate: sc.EmitTruncate,
		Types: src.Types(),
	})
	if err != nil {
		return err
	}
	snk, err := sink.New(sink.Config{
		StreamName: sc.Target.KinesisStream, Ordering: record.Ordering(sc.Ordering),
		MaxRecordBytes: target.MaxRecordBytes, MaxRequestBytes: target.MaxRequestBytes(), MaxInFlight: sc.Delivery.MaxInFlight,
		Linger: sc.Delivery.Linger.Duration, QueueBytes: sc.Delivery.QueueBytes,
		Report: func(code codes.Code, err error) {
			if code == "" {
				if gate.OK() {
					_ = st.Recover()
				}
				return
			}
			if c := classify(err); c != codes.InternalError {
				code = c // an STS error inside a Kinesis call is the role's
			}
			_ = st.Fault(code, err)
		},
		Logger: log.With("component", "sink"), Metrics: met.sink,
	}, kin)
	if err != nil {
		return err
	}
	pipe := newHandler(st.ID(), rec.Checkpoint, enc, sinkSubmitter{snk}, st, met.pipe, log)
	pipe.spill = record.SpillOptions{Store: sp.store, Budget: sc.Delivery.MemoryBudget}
	d.mu.Lock()
	d.live[st.ID()].src = src
	d.mu.Unlock()
	pipe.hold = gate.Wait
	log.Info("stream ready", "slot", sc.Slot, "publication", sc.Publication, "kinesis_stream", sc.Target.KinesisStream,
		"shards", target.Shards, "max_record_bytes", target.MaxRecordBytes, "encryption", target.EncryptionType, "key_id", target.KeyID,
		"resume_lsn", state.FormatLSN(rec.Checkpoint.LSN))
	if st.Snapshot().Status == state.Creating {
		_ = st.Created()
	}

	// Capture stops first (ctx, or the registry cancelling a FAILED
	// stream); the sink outlives it to drain.
	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	sinkDone := make(chan error, 1)
	go func() { sinkDone <- snk.Run(sinkCtx) }()
	var wg sync.WaitGroup
	wg.Go(func() { watchLag(ctx, st, pipe) })

	capErr := src.Run(ctx, pipe)
	if errors.Is(capErr, capture.ErrSlotLost) {
		_ = st.Fault(codes.SourceSlotLost, capErr)
	}
	wg.Wait()

	drainCtx, cancelDrain := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	if err := snk.Drain(drainCtx); err != nil {
		log.Warn("stopped before every queued record reached Kinesis; they are sent again from the slot on the next start", "err", err)
	}
	cancelDrain()
	stopSink()
	<-sinkDone
	if err := pipe.Persist(context.WithoutCancel(ctx), snk.Delivered()); err != nil {
		log.Error("persist final checkpoint", "err", err)
	}
	log.Info("stream stopped", "checkpoint", state.FormatLSN(pipe.Persisted()))
	if capErr != nil && !errors.Is(capErr, context.Canceled) && !errors.Is(capErr, capture.ErrSlotLost) {
		return capErr
	}
	return nil
}

// watchLag reports the pipeline's lag every second until ctx ends: that is
// what turns a long IMPAIRED stream FAILED, after which the registry
// cancels ctx.
func watchLag(ctx context.Context, st *state.Stream, pipe *handler) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			lag := pipe.Lag(now)
			pipe.met.lag.Set(lag.Seconds())
			_ = st.Lag(lag)
		}
	}
}

// classify maps a delivery error to its status-reason code: an error from
// assuming the stream's role first, then Kinesis and KMS errors.
func classify(err error) codes.Code {
	if code, ok := rolecreds.Classify(err); ok {
		return code
	}
	return sink.Classify(err)
}

func newBackoff() backoff.BackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 500 * time.Millisecond
	bo.MaxInterval = 30 * time.Second
	bo.MaxElapsedTime = 0
	return bo
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
