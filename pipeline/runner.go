package pipeline

import (
	"context"
	"log/slog"

	"github.com/cdcd-dev/cdcd/capture"
	"github.com/cdcd-dev/cdcd/capture/pgauth"
	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/sink"
	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/state/api"
)

// liveStream is what GetStream shows of a running stream beyond its file.
type liveStream struct {
	sc     *config.Stream
	src    *capture.Source
	target *sink.Target
}

// setLive updates what GetStream shows of a running stream.
func (d *Daemon) setLive(streamID string, update func(*liveStream)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.live[streamID]
	if l == nil {
		l = &liveStream{}
		d.live[streamID] = l
	}
	update(l)
}

// Describe implements Runner from memory.
func (d *Daemon) Describe(s *state.Stream) (*api.SourceInfo, *api.TargetInfo) {
	d.mu.Lock()
	live := d.live[s.ID()]
	var src *api.SourceInfo
	var tgt *api.TargetInfo
	var health *capture.SlotHealth
	if live != nil && live.sc != nil {
		src = &api.SourceInfo{Slot: live.sc.Slot, Publication: live.sc.Publication}
		if live.src != nil {
			h := live.src.Health()
			health = &h
		}
		if live.target != nil {
			tgt = &api.TargetInfo{EncryptionType: live.target.EncryptionType, KeyID: live.target.KeyID}
		}
	}
	d.mu.Unlock()
	if src != nil {
		src.ConfirmedLSN = s.View().Checkpoint.LSN
		if health != nil {
			describeHealth(src, *health)
		}
	}
	return src, tgt
}

// describeHealth adds the slot's last health reading to src, whose
// ConfirmedLSN is set.
func describeHealth(src *api.SourceInfo, h capture.SlotHealth) {
	src.RetainedWALBytes, src.WALStatus = h.RetainedWALBytes, h.WALStatus
	if h.Exists && h.CurrentWALLSN != 0 {
		// Before the first checkpoint the stream starts where the slot
		// does. The reading may be older than the checkpoint: then the
		// stream is not behind.
		pos := max(src.ConfirmedLSN, h.ConfirmedFlushLSN)
		lag := int64(max(h.CurrentWALLSN, pos) - pos)
		src.LagBytes = &lag
	}
	if p := h.Snapshot; p.Running || p.Done {
		src.Snapshot = &api.SnapshotInfo{Done: p.Done, Table: p.Table, TablesDone: p.TablesDone, Tables: p.Tables,
			Rows: p.Rows, EstimatedRows: p.EstimatedRows}
	}
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
	d.mu.Lock()
	delete(d.live, s.ID())
	d.mu.Unlock()
	d.log.Info("dropped slot and publication of deleted stream", "stream", s.ID(), "slot", sc.Slot, "publication", sc.Publication)
	return nil
}

// fromFile reports whether sc is a stream of the configuration file, as
// opposed to one made through the API, whose tables are every table of
// the database (streamConfig).
func (d *Daemon) fromFile(sc *config.Stream) bool {
	for _, c := range d.configured {
		if c == sc {
			return true
		}
	}
	return false
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
		ExternalPublication: !sc.OwnsPublication(), EmitTruncate: sc.EmitTruncate, KeylessTables: sc.KeylessTables == config.KeylessFull,
		Snapshot: sc.Snapshot, Logger: log.With("component", "capture"),
		EveryTable: !d.fromFile(sc),
	}
	if st != nil {
		cfg.Report = func(code codes.Code, err error) {
			if code == "" {
				_ = st.Recover(codes.OwnerCapture)
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
