package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cdcd-dev/cdcd/capture"
	"github.com/cdcd-dev/cdcd/capture/pgauth"
	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/ident"
	"github.com/cdcd-dev/cdcd/rolecreds"
	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/state/api"
)

// Daemon is the running cdcd: it owns the state store, the supervisor
// (which owns every stream's goroutine) and the HTTP server. It is also the
// supervisor's Runner: RunStream delivers one stream, Teardown releases its
// slot and publication.
type Daemon struct {
	cfg          *config.Config
	version      string
	log          *slog.Logger
	store        *state.Store
	reg          *prometheus.Registry
	aws          aws.Config
	stateMetrics *state.Metrics
	metrics      *metrics
	// clusterIDs maps cluster names to identifiers and back.
	clusterIDs   map[string]string
	clusterNames map[string]string

	// auth holds each cluster's credential provider, by cluster name.
	auth map[string]*pgauth.Provider
	// configured maps stream ids to the file's streams.
	configured map[string]*config.Stream

	mu sync.Mutex
	// live holds what GetStream shows beyond the state file, per stream id.
	live map[string]*liveStream
}

var _ Runner = (*Daemon)(nil)

// NewDaemon loads the AWS configuration and each cluster's credentials,
// and resolves the cluster identifiers (which may need the source once).
func NewDaemon(ctx context.Context, cfg *config.Config, version string, log *slog.Logger) (*Daemon, error) {
	if err := writableDir(cfg.StateDir); err != nil {
		return nil, err
	}
	awsCfg, err := config.LoadAWS(ctx, cfg.AWS.Region)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sm, err := state.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	pm, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, version: version, log: log, reg: reg, aws: awsCfg, stateMetrics: sm, metrics: pm,
		clusterIDs: map[string]string{}, clusterNames: map[string]string{}, configured: map[string]*config.Stream{},
		auth: map[string]*pgauth.Provider{},
		live: map[string]*liveStream{}}
	for i := range cfg.Clusters {
		cl := &cfg.Clusters[i]
		if d.auth[cl.Name], err = SourceAuth(cfg, cl, awsCfg, log); err != nil {
			return nil, err
		}
		id, err := d.clusterID(ctx, cl)
		if err != nil {
			return nil, err
		}
		d.clusterIDs[cl.Name], d.clusterNames[id] = id, cl.Name
	}
	return d, nil
}

// writableDir creates state_dir and writes a file in it, so that a
// state_dir cdcd cannot write stops the start with the fix, rather than
// the first checkpoint.
func writableDir(dir string) error {
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		var f *os.File
		if f, err = os.CreateTemp(dir, ".write-check-*"); err == nil {
			f.Close()
			err = os.Remove(f.Name())
		}
	}
	if err != nil {
		return fmt.Errorf("state_dir %s is not a directory cdcd can write: %w: create it, owned by the user cdcd runs as, mode 0700 (the systemd unit's StateDirectory= does), or set state_dir to one", dir, err)
	}
	return nil
}

// clusterID is the configured identifier, or one derived from the server's
// system identifier and database (docs/glossary.md). Deriving needs the source once
// at start; set identifier to start while the source is down.
func (d *Daemon) clusterID(ctx context.Context, cl *config.Cluster) (string, error) {
	if cl.Identifier != "" {
		return cl.Identifier, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := ConnectSource(ctx, cl, d.auth[cl.Name])
	if err != nil {
		return "", fmt.Errorf("derive the cluster identifier from the server (or set identifier in the config to start without the source): %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var sysID int64
	var db string
	if err := conn.QueryRow(ctx, "SELECT system_identifier, current_database() FROM pg_control_system()").Scan(&sysID, &db); err != nil {
		return "", fmt.Errorf("cluster %s: read system identifier: %w", cl.Name, err)
	}
	return ident.DeriveID("cluster", fmt.Sprint(uint64(sysID)), db), nil
}

// Run serves until ctx ends, then stops every stream in order: streams
// drain under their own deadline while the HTTP server stays up, so
// /readyz and /metrics show the shutdown.
func (d *Daemon) Run(ctx context.Context) error {
	store, err := state.Open(d.cfg.StateDir, d.log.With("component", "state"))
	if err != nil {
		return fmt.Errorf("open state_dir %s: %w", d.cfg.StateDir, err)
	}
	defer store.Close()
	d.store = store
	sup, err := d.supervise()
	if err != nil {
		return err
	}
	// Close cancels every pipeline and waits for each to drain.
	defer sup.Close()
	probe, stopHTTP, err := d.serve(sup)
	if err != nil {
		return err
	}
	// Tells systemd when the streams have settled and while the daemon is
	// live, until ctx ends (notify.go).
	d.notify(ctx, sup, probe)
	d.log.Info("shutting down")
	sup.Close()
	stopHTTP(context.WithoutCancel(ctx))
	d.log.Info("cdcd stopped")
	return nil
}

// supervise starts the supervisor over the state store and registers the
// configuration file's streams with it.
func (d *Daemon) supervise() (*Supervisor, error) {
	var roles *rolecreds.AllowList
	if len(d.cfg.AWS.RoleARNAllow) > 0 {
		var err error
		if roles, err = rolecreds.NewAllowList(d.cfg.AWS.RoleARNAllow); err != nil {
			return nil, fmt.Errorf("aws.role_arn_allow: %w", err)
		}
	}
	// The file's streams are known before the supervisor starts any
	// pipeline, so pipelines read d.configured without a lock.
	defs := make([]state.Definition, len(d.cfg.Streams))
	for i := range d.cfg.Streams {
		sc := &d.cfg.Streams[i]
		var err error
		if defs[i], err = d.definition(sc); err != nil {
			return nil, err
		}
		d.configured[defs[i].StreamID] = sc
	}
	sup, err := NewSupervisor(SupervisorConfig{
		Store: d.store, Logger: d.log.With("component", "supervisor"), Metrics: d.stateMetrics,
		Partition: d.cfg.AWS.Partition, Region: d.cfg.AWS.Region, Account: d.cfg.AWS.Account,
		Clusters: slices.Sorted(maps.Values(d.clusterIDs)), Roles: roles,
		FailureThreshold: d.cfg.FailureThreshold.Duration, Runner: d,
	})
	if err != nil {
		return nil, err
	}
	if err := d.adoptConfigStreams(sup, defs); err != nil {
		sup.Close()
		return nil, err
	}
	return sup, nil
}

// serve starts the control plane, the health endpoints and /metrics on the
// listen address, behind [api]'s guard, or /metrics and the health
// endpoints on metrics_listen when it is set. It returns the daemon's check
// of its own /healthz (notify.go) and the function that shuts both down.
func (d *Daemon) serve(sup *Supervisor) (func(context.Context) error, func(context.Context), error) {
	log := d.log.With("component", "api")
	var gatherer prometheus.Gatherer = d.reg
	if d.cfg.MetricsListen != "" {
		gatherer = nil
	}
	h, tc, err := apiGuard(d.cfg.API).Wrap(api.NewServer(sup, gatherer, log), log)
	if err != nil {
		return nil, nil, fmt.Errorf("api: %w", err)
	}
	stop, addr, err := startHTTP("listen", d.cfg.Listen, h, tc, log)
	if err != nil {
		return nil, nil, err
	}
	probe, probeAddr := httpProbe(addr, tc != nil), ""
	if d.cfg.MetricsListen != "" {
		stopProbes, a, err := startHTTP("metrics_listen", d.cfg.MetricsListen, api.NewProbeServer(sup, d.reg, log), nil, log)
		if err != nil {
			stop(context.Background())
			return nil, nil, err
		}
		stop, probe, probeAddr = both(stop, stopProbes), httpProbe(a, false), a.String()
	}
	d.log.Info("cdcd started", "version", d.version, "listen", addr.String(), "tls", tc != nil, "auth", d.cfg.API.Auth,
		"read_only", d.cfg.API.ReadOnly, "metrics_listen", probeAddr, "streams", len(d.cfg.Streams))
	return probe, stop, nil
}

// adoptConfigStreams registers the file's streams and deletes the streams a
// previous version of the file had and this one does not.
func (d *Daemon) adoptConfigStreams(sup *Supervisor, defs []state.Definition) error {
	want := map[string]bool{}
	for i, def := range defs {
		want[def.StreamID] = true
		if _, err := sup.Adopt(def); err != nil {
			return fmt.Errorf("stream %s: %w", d.cfg.Streams[i].Name, err)
		}
	}
	for _, rec := range d.store.List() {
		def := rec.Definition
		if def.ConfigFile == "" || want[def.StreamID] || rec.Status == state.Deleting || rec.Status == state.Deleted {
			continue
		}
		d.log.Warn("stream is no longer in the configuration; deleting it and its slot", "stream", def.StreamID, "config", def.ConfigFile)
		if err := sup.DeleteManaged(def.StreamID); err != nil {
			return err
		}
	}
	return nil
}

// definition is the state definition of a configured stream.
func (d *Daemon) definition(sc *config.Stream) (state.Definition, error) {
	id := sc.Identifier
	if id == "" {
		id = ident.DeriveID("stream", sc.Cluster, sc.Name)
	}
	kinARN, err := d.cfg.KinesisStreamARN(sc)
	if err != nil {
		return state.Definition{}, err
	}
	return state.Definition{
		ClusterID: d.clusterIDs[sc.Cluster], StreamID: id, Format: "JSON", Ordering: sc.Ordering,
		Target:     state.Target{StreamARN: kinARN, RoleARN: sc.Target.RoleARN},
		ConfigFile: d.cfg.Path, Tags: map[string]string{nameTag: sc.Name},
	}, nil
}

// streamConfig is the configuration a stream runs with: its entry in the
// file, or for a stream created through the API, defaults derived from its
// definition (every table of the database, the slot and publication named
// after the stream, the cdcd stream ARN as the role's external id).
func (d *Daemon) streamConfig(ctx context.Context, def state.Definition) (*config.Stream, *config.Cluster, error) {
	if sc, ok := d.configured[def.StreamID]; ok {
		return sc, d.cfg.ClusterNamed(sc.Cluster), nil
	}
	name, ok := d.clusterNames[def.ClusterID]
	if !ok {
		return nil, nil, fmt.Errorf("cluster %s is not in the configuration", def.ClusterID)
	}
	cl := d.cfg.ClusterNamed(name)
	kinName := def.Target.StreamARN[strings.LastIndex(def.Target.StreamARN, "/")+1:]
	sc := &config.Stream{
		Name: def.StreamID, Cluster: name, Identifier: def.StreamID, Ordering: def.Ordering,
		Publication: "cdcd_" + def.StreamID, Slot: "cdcd_" + def.StreamID, SetReplicaIdentityFull: cl.SetReplicaIdentityFull, KeylessTables: cl.KeylessTables,
		Target: config.Target{KinesisStream: kinName, KinesisStreamARN: def.Target.StreamARN, RoleARN: def.Target.RoleARN, ExternalID: def.ARN},
	}
	sc.ApplyDefaults()
	tables, err := d.allTables(ctx, cl)
	if err != nil {
		return nil, nil, err
	}
	sc.Tables = tables
	return sc, cl, nil
}

// allTables lists the user tables of a cluster's database: what a stream
// created through the API publishes, as a DSQL stream covers its cluster.
// Tables created later join after a restart of the stream.
func (d *Daemon) allTables(ctx context.Context, cl *config.Cluster) ([]string, error) {
	conn, err := ConnectSource(ctx, cl, d.auth[cl.Name])
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND schemaname NOT LIKE 'pg\_%' ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	if len(tables) == 0 {
		return nil, &capture.Unmet{Check: "table", Object: conn.Config().Database,
			Err: errors.New("the database has no tables to publish: create the tables the stream is for; cdcd looks again every 5 s")}
	}
	return tables, nil
}
