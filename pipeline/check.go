package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/atrest"
	"github.com/cdcd-dev/cdcd/capture"
	"github.com/cdcd-dev/cdcd/capture/pgauth"
	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/ident"
	"github.com/cdcd-dev/cdcd/sink"
	"github.com/cdcd-dev/cdcd/state"
)

// checkTimeout bounds each step of Check: a source or an AWS service that
// does not answer in this long is a finding of its own.
const checkTimeout = 30 * time.Second

// CheckResult is one line of cdcd check --online: one prerequisite of one
// stream, met (Err nil) or not.
type CheckResult struct {
	Stream string
	// What names the prerequisite: "source", a grant or a source setting
	// with its object, "role ARN", "kinesis stream NAME", "cluster key ARN".
	What string
	// Detail is what a met prerequisite looks like.
	Detail string
	Err    error
	// Fix is what fixes an unmet one (SQL, a key to set, a command), if
	// the error does not say it.
	Fix string
}

// String is the result as cdcd check --online prints it.
func (r CheckResult) String() string {
	if r.Err == nil {
		return fmt.Sprintf("stream %s: %s: ok: %s", r.Stream, r.What, r.Detail)
	}
	s := fmt.Sprintf("stream %s: %s: FAIL: %v", r.Stream, r.What, r.Err)
	if r.Fix != "" {
		s += "\n    fix: " + r.Fix
	}
	return s
}

// Check finds what starting each stream of cfg would find, with the steps
// the stream start takes, and changes nothing: the source's prerequisites
// (capture's Check, which Prepare runs first) and the source role's grants;
// the stream's role, assumed with its external id, session tags and
// session policy; its Kinesis stream, described as the start describes it;
// and its cluster key, probed once as the key checker does. aws.account is
// resolved first when the file leaves it out.
func Check(ctx context.Context, cfg *config.Config, log *slog.Logger) ([]CheckResult, error) {
	if err := cfg.ResolveAccount(ctx); err != nil {
		return nil, err
	}
	awsCfg, err := config.LoadAWS(ctx, cfg.AWS.Region)
	if err != nil {
		return nil, err
	}
	// The steps are the Daemon's own; this one holds only what they read:
	// no state is opened and nothing is served.
	d := &Daemon{cfg: cfg, log: log, aws: awsCfg, auth: map[string]*pgauth.Provider{}, clusterIDs: map[string]string{}}
	for i := range cfg.Clusters {
		cl := &cfg.Clusters[i]
		if d.auth[cl.Name], err = SourceAuth(cfg, cl, awsCfg, log); err != nil {
			return nil, err
		}
	}
	var out []CheckResult
	for i := range cfg.Streams {
		out = append(out, d.checkStream(ctx, &cfg.Streams[i])...)
	}
	return out, nil
}

// checkStream runs Check's steps for one stream.
func (d *Daemon) checkStream(ctx context.Context, sc *config.Stream) []CheckResult {
	cl := d.cfg.ClusterNamed(sc.Cluster)
	out := d.checkSource(ctx, sc, cl)
	idErr := d.checkClusterID(ctx, cl)
	def, err := d.definition(sc)
	if err != nil {
		return append(out, CheckResult{What: "target", Err: err})
	}
	def.ARN = ident.StreamARN(d.cfg.AWS.Partition, d.cfg.AWS.Region, d.cfg.AWS.Account, def.ClusterID, def.StreamID)
	out = append(out, d.checkTarget(ctx, sc, def)...)
	if cl.ClusterKeyARN != "" {
		out = append(out, d.checkClusterKey(ctx, cl, def, idErr))
	}
	for i := range out {
		out[i].Stream = sc.Name
	}
	return out
}

// checkClusterID finds the cluster's identifier as the daemon does at
// start, once per cluster.
func (d *Daemon) checkClusterID(ctx context.Context, cl *config.Cluster) error {
	if d.clusterIDs[cl.Name] != "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	id, err := d.clusterID(ctx, cl)
	d.clusterIDs[cl.Name] = id
	return err
}

// checkSource runs capture's prerequisite checks and the grant checks. A
// problem both report (an *capture.Unmet named as a grant finding) is
// shown once, with the grant's fix.
func (d *Daemon) checkSource(ctx context.Context, sc *config.Stream, cl *config.Cluster) []CheckResult {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	conn, err := ConnectSource(ctx, cl, d.auth[cl.Name])
	if err != nil {
		return []CheckResult{{What: "source", Err: err}}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	findings := pgauth.CheckGrants(ctx, conn, sc.Tables, sc.Publication)
	src, err := d.source(sc, cl, nil, nil, nil, d.log)
	if err == nil {
		err = src.Check(ctx)
	}
	var out []CheckResult
	var u *capture.Unmet
	switch {
	case err == nil:
		out = append(out, CheckResult{What: "source", Detail: "server settings, tables and slot as the stream needs them"})
	case errors.As(err, &u):
		if !reported(findings, u) {
			out = append(out, CheckResult{What: strings.TrimSpace("source " + u.Check + " " + u.Object), Err: err})
		}
	default:
		out = append(out, CheckResult{What: "source", Err: err})
	}
	for _, f := range findings {
		out = append(out, CheckResult{What: strings.TrimSpace(f.Check + " " + f.Object), Err: errors.New(f.Problem), Fix: f.Fix})
	}
	if len(findings) == 0 {
		out = append(out, CheckResult{What: "grants", Detail: "the source role may do all that the stream does"})
	}
	return out
}

// reported tells whether a grant finding names the same problem as u.
func reported(findings []pgauth.Finding, u *capture.Unmet) bool {
	for _, f := range findings {
		if f.Check == u.Check && f.Object == u.Object {
			return true
		}
	}
	return false
}

// checkTarget assumes the stream's role, as the stream's Kinesis client
// does on its first call, and describes the Kinesis stream with it.
func (d *Daemon) checkTarget(ctx context.Context, sc *config.Stream, def state.Definition) []CheckResult {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	var out []CheckResult
	role := "role " + sc.Target.RoleARN
	creds, closer, err := d.streamCredentials(ctx, sc, def.ARN, def.ClusterID, d.log)
	if err != nil {
		return []CheckResult{{What: role, Err: err}}
	}
	defer closer.Close()
	if sc.Target.RoleARN != "" {
		if _, err := creds.Retrieve(ctx); err != nil {
			return []CheckResult{{What: role, Err: err, Fix: "cdcd policy --stream " + sc.Name + " prints the role's trust policy (it names cdcd's base identity and requires the external id) and the base identity's sts:AssumeRole"}}
		}
		out = append(out, CheckResult{What: role, Detail: "assumed with the stream's external id, session tags and session policy"})
	}
	what := "kinesis stream " + sc.Target.KinesisStream
	t, err := sink.DescribeTarget(ctx, d.kinesisClient(creds), sc.Target.KinesisStream, "")
	switch {
	case err != nil:
		return append(out, CheckResult{What: what, Err: err, Fix: targetFix(classify(err), sc, d.cfg.AWS.Region)})
	case t.Status != "ACTIVE" && t.Status != "UPDATING":
		return append(out, CheckResult{What: what, Err: fmt.Errorf("the stream is %s; cdcd writes to an ACTIVE stream", t.Status)})
	}
	detail := fmt.Sprintf("%s, open shards %d, records up to %d bytes, encryption %s", t.Status, t.Shards, t.MaxRecordBytes, t.EncryptionType)
	if t.EncryptionType == "KMS" {
		// Only a write shows whether the writer may use the key:
		// kms:GenerateDataKey through Kinesis, which cdcd policy grants.
		detail += " with key " + t.KeyID + " (the writer needs kms:GenerateDataKey on it through Kinesis)"
	}
	return append(out, CheckResult{What: what, Detail: detail})
}

// targetFix says what fixes a failure to describe the target.
func targetFix(code codes.Code, sc *config.Stream, region string) string {
	switch code {
	case codes.KinesisStreamNotFound:
		return fmt.Sprintf("create it (aws kinesis create-stream --stream-name %s --region %s), or correct target.kinesis_stream", sc.Target.KinesisStream, region)
	case codes.KinesisAccessDenied, codes.RoleAccessDenied:
		return "cdcd policy --stream " + sc.Name + " prints what the writer needs"
	}
	return ""
}

// withFix ends err's message with fix, when there is one, keeping err for
// errors.As; an AWS message's closing period gives way to the fix.
func withFix(err error, fix string) error {
	if fix == "" {
		return err
	}
	return fixedError{err: err, fix: fix}
}

type fixedError struct {
	err error
	fix string
}

func (e fixedError) Error() string { return strings.TrimSuffix(e.err.Error(), ".") + ": " + e.fix }
func (e fixedError) Unwrap() error { return e.err }

// checkClusterKey probes the cluster key once, as the stream's key checker
// does at start, under the stream's encryption context.
func (d *Daemon) checkClusterKey(ctx context.Context, cl *config.Cluster, def state.Definition, idErr error) CheckResult {
	what := "cluster key " + cl.ClusterKeyARN
	if idErr != nil {
		return CheckResult{What: what, Err: fmt.Errorf("not checked: the cluster identifier, part of the key's encryption context, is unknown: %w", idErr)}
	}
	ring, err := d.keyring(cl, def)
	if err != nil {
		return CheckResult{What: what, Err: err}
	}
	checker, err := atrest.NewChecker(ring, noReport{}, atrest.CheckerOptions{Logger: d.log})
	if err == nil {
		err = checker.Check(ctx)
	}
	if err != nil {
		return CheckResult{What: what, Err: err, Fix: "the key must be enabled, and both the base identity's policy (cdcd policy) and the key policy must allow kms:GenerateDataKey and kms:Decrypt"}
	}
	return CheckResult{What: what, Detail: "generated and decrypted a data key under the stream's encryption context"}
}

// noReport is the key checker's Reporter in a check, which has no stream
// status to change.
type noReport struct{}

func (noReport) Fault(codes.Code, error) error { return nil }
func (noReport) Recover(codes.Owner) error     { return nil }
