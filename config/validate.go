package config

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/ident"
)

var (
	nameRe   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,46}$`)
	pgNameRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
)

// problems collects every validation error, each naming its key, so that
// one run of cdcd check reports them all.
type problems struct{ errs []error }

func (p *problems) bad(key, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
}

// Validate returns every problem found, each naming its key.
func (c *Config) Validate() error {
	p := &problems{}
	c.validateTop(p)
	c.validateListen(p)
	c.validateAPI(p)
	clusters := map[string]bool{}
	for i := range c.Clusters {
		c.Clusters[i].validate(p, fmt.Sprintf("cluster[%d]", i), clusters)
	}
	streams := map[string]bool{}
	for i := range c.Streams {
		c.Streams[i].validate(p, fmt.Sprintf("stream[%d]", i), clusters, streams)
	}
	return errors.Join(p.errs...)
}

// validateTop checks the top-level, [log] and [aws] keys.
func (c *Config) validateTop(p *problems) {
	bad := p.bad
	if c.StateDir == "" {
		bad("state_dir", "must name a directory cdcd can write")
	}
	if c.FailureThreshold.Duration < time.Second {
		bad("failure_threshold", "%s is too short: IMPAIRED streams would fail at once", c.FailureThreshold)
	}
	if c.Log.Level != "debug" && c.Log.Level != "info" && c.Log.Level != "warn" && c.Log.Level != "error" {
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	if !ident.ValidRegion(c.AWS.Region) {
		bad("aws.region", "%q is not an AWS region like us-east-1", c.AWS.Region)
	}
	if c.AWS.Account != "" && !ident.ValidAccount(c.AWS.Account) {
		bad("aws.account", "%q is not a 12-digit AWS account id", c.AWS.Account)
	}
	for _, ep := range []struct{ key, v string }{{"aws.kinesis_endpoint", c.AWS.KinesisEndpoint}, {"aws.sts_endpoint", c.AWS.STSEndpoint}, {"aws.kms_endpoint", c.AWS.KMSEndpoint}} {
		if ep.v != "" && !strings.HasPrefix(ep.v, "http://") && !strings.HasPrefix(ep.v, "https://") {
			bad(ep.key, "%q must be an http:// or https:// URL", ep.v)
		}
	}
}

// validate checks one [[cluster]] entry; clusters collects the names seen.
func (cl *Cluster) validate(p *problems, key string, clusters map[string]bool) {
	bad := p.bad
	switch {
	case !nameRe.MatchString(cl.Name):
		bad(key+".name", "%q must be lowercase letters, digits, - or _, starting with a letter", cl.Name)
	case clusters[cl.Name]:
		bad(key+".name", "%q is used by another cluster", cl.Name)
	}
	clusters[cl.Name] = true
	if cl.Identifier != "" && !ident.ValidID(cl.Identifier) {
		bad(key+".identifier", "%q must be 26 characters of [a-z0-9] (or leave it out to derive it)", cl.Identifier)
	}
	if cl.DSN == "" {
		bad(key+".dsn", "is required: a PostgreSQL connection string without the password")
	} else if hasPassword(cl.DSN) {
		bad(key+".dsn", "contains a password: put it in the environment (password_env) or a file (password_file) instead")
	}
	if cl.ClusterKeyARN != "" {
		if _, err := ident.ParseKeyARN(cl.ClusterKeyARN); err != nil {
			bad(key+".cluster_key_arn", "%q is not a KMS key ARN like arn:aws:kms:us-east-1:123456789012:key/…", cl.ClusterKeyARN)
		}
	}
	if cl.ClusterKeyCheckInterval.Duration < time.Second {
		bad(key+".cluster_key_check_interval", "%s is below 1s", cl.ClusterKeyCheckInterval)
	}
	if cl.KeylessTables != "" {
		validKeyless(p, key+".keyless_tables", cl.KeylessTables)
	}
	p.errs = append(p.errs, cl.Source.Validate(key)...)
	if cl.DSN != "" {
		if err := cl.Source.CheckDSN(cl.DSN); err != nil {
			bad(key+".dsn", "%v", err)
		}
	}
}

// validate checks one [[stream]] entry against the clusters of the file;
// streams collects the names seen.
func (s *Stream) validate(p *problems, key string, clusters, streams map[string]bool) {
	bad := p.bad
	switch {
	case !nameRe.MatchString(s.Name):
		bad(key+".name", "%q must be lowercase letters, digits, - or _, starting with a letter", s.Name)
	case streams[s.Name]:
		bad(key+".name", "%q is used by another stream", s.Name)
	}
	streams[s.Name] = true
	if !clusters[s.Cluster] {
		bad(key+".cluster", "%q names no [[cluster]] in this file", s.Cluster)
	}
	if s.Identifier != "" && !ident.ValidID(s.Identifier) {
		bad(key+".identifier", "%q must be 26 characters of [a-z0-9] (or leave it out to derive it)", s.Identifier)
	}
	if len(s.Tables) == 0 {
		bad(key+".tables", "must list at least one table, like [\"public.orders\"]")
	}
	for _, t := range s.Tables {
		if strings.Count(t, ".") != 1 {
			bad(key+".tables", "%q must be schema-qualified, like public.orders", t)
		}
	}
	if !pgNameRe.MatchString(s.Publication) {
		bad(key+".publication", "%q must be a lowercase PostgreSQL name of at most 63 characters", s.Publication)
	}
	if !pgNameRe.MatchString(s.Slot) {
		bad(key+".slot", "%q must be lowercase letters, digits and _ (PostgreSQL's rule for slot names), at most 63 characters", s.Slot)
	}
	if s.Ordering != "UNORDERED" && s.Ordering != "ROW" {
		bad(key+".ordering", "%q is not one of UNORDERED, ROW", s.Ordering)
	}
	switch {
	case s.Aggregation != AggregationNone && s.Aggregation != AggregationKPL:
		bad(key+".aggregation", "%q is not one of none, kpl", s.Aggregation)
	case s.Aggregation == AggregationKPL && s.Ordering != "UNORDERED":
		bad(key+".aggregation", `"kpl" needs ordering = "UNORDERED": an aggregate lands on one shard, so a row's records would change shards and lose their order`)
	}
	validKeyless(p, key+".keyless_tables", s.KeylessTables)
	s.validateTarget(p, key)
	s.validateDelivery(p, key)
}

// validateTarget checks [stream.target].
func (s *Stream) validateTarget(p *problems, key string) {
	bad := p.bad
	if s.Target.KinesisStream == "" {
		bad(key+".target.kinesis_stream", "is required: the name of the Kinesis data stream")
	} else if !ident.ValidKinesisStreamName(s.Target.KinesisStream) {
		bad(key+".target.kinesis_stream", "%q is not a Kinesis stream name ([a-zA-Z0-9_.-], 1-128 characters)", s.Target.KinesisStream)
	}
	if d := s.Target.SessionDuration.Duration; d != 0 && (d < 15*time.Minute || d > 12*time.Hour) {
		bad(key+".target.session_duration", "%s is outside STS's 15m..12h", d)
	}
	if s.Target.RoleARN != "" {
		if _, err := ident.ParseRoleARN(s.Target.RoleARN); err != nil {
			bad(key+".target.role_arn", "%v", err)
		}
	}
	if s.Target.KinesisStreamARN != "" {
		if _, err := ident.ParseKinesisStreamARN(s.Target.KinesisStreamARN); err != nil {
			bad(key+".target.kinesis_stream_arn", "%q: %v", s.Target.KinesisStreamARN, err)
		}
	}
	if s.Target.RoleARN != "" && s.Target.ExternalID == "" {
		bad(key+".target.external_id", "is required with role_arn: the role's trust policy should demand it")
	}
}

// validateDelivery checks [stream.delivery].
func (s *Stream) validateDelivery(p *problems, key string) {
	bad := p.bad
	if s.Delivery.MaxInFlight < 1 || s.Delivery.MaxInFlight > 64 {
		bad(key+".delivery.max_in_flight", "%d is outside 1..64", s.Delivery.MaxInFlight)
	}
	if s.Delivery.QueueBytes < 1<<20 {
		bad(key+".delivery.queue_bytes", "%d is below 1048576 (1 MiB)", s.Delivery.QueueBytes)
	}
	if s.Delivery.MemoryBudget < 1<<20 {
		bad(key+".delivery.memory_budget", "%d is below 1048576 (1 MiB)", s.Delivery.MemoryBudget)
	}
	if m := s.Delivery.SpillMaxBytes; m != 0 && m < 1<<20 {
		bad(key+".delivery.spill_max_bytes", "%d is neither 0 (no cap) nor at least 1048576 (1 MiB)", m)
	}
	if s.Delivery.StatusInterval.Duration > 30*time.Second {
		bad(key+".delivery.status_interval", "%s is too long: keep it well under the server's wal_sender_timeout (60s by default)", s.Delivery.StatusInterval)
	}
}

func validKeyless(p *problems, key, v string) {
	if v != KeylessRefuse && v != KeylessFull {
		p.bad(key, "%q is not one of refuse, full", v)
	}
}

// validateListen checks listen and metrics_listen. A control plane that
// answers beyond this host lets whoever reaches it create streams that write
// any published table to any Kinesis stream an allowed role can reach, so
// such a listen needs TLS and an authentication mode.
func (c *Config) validateListen(p *problems) {
	key := "listen"
	if c.listenFrom != "" {
		key = "listen (set by " + c.listenFrom + ")"
	}
	loopback, err := isLoopback(c.Listen)
	if err != nil {
		p.bad(key, "%q is not host:port: %v", c.Listen, err)
	}
	if err == nil && !loopback && c.API.Auth == "none" {
		p.bad(key, "%q is reachable beyond this host: set api.auth to \"token\" or \"mtls\" (or listen on 127.0.0.1, ::1 or localhost)", c.Listen)
	}
	if err == nil && !loopback && c.API.TLSCertFile == "" {
		p.bad(key, "%q is reachable beyond this host: set api.tls_cert_file and api.tls_key_file", c.Listen)
	}
	if c.MetricsListen == "" {
		return
	}
	if _, merr := isLoopback(c.MetricsListen); merr != nil {
		p.bad("metrics_listen", "%q is not host:port: %v", c.MetricsListen, merr)
	} else if err == nil && sameListener(c.Listen, c.MetricsListen) {
		p.bad("metrics_listen", "%q takes the port of listen %q: give the two listeners different ports", c.MetricsListen, c.Listen)
	}
}

// validateAPI checks [api]: each mode has the file it reads, and no file is
// set that its mode would ignore.
func (c *Config) validateAPI(p *problems) {
	a := c.API
	if (a.TLSCertFile == "") != (a.TLSKeyFile == "") {
		p.bad("api.tls_key_file", "tls_cert_file and tls_key_file are set together or not at all")
	}
	switch a.Auth {
	case "none":
	case "token":
		if a.TokenFile == "" {
			p.bad("api.token_file", "is required with auth = \"token\": a file holding the token")
		}
	case "mtls":
		if a.ClientCAFile == "" {
			p.bad("api.client_ca_file", "is required with auth = \"mtls\": the PEM CA certificates that sign client certificates")
		}
		if a.TLSCertFile == "" {
			p.bad("api.auth", "\"mtls\" needs TLS: set tls_cert_file and tls_key_file")
		}
	default:
		p.bad("api.auth", "%q is not one of none, token, mtls", a.Auth)
	}
	if a.TokenFile != "" && a.Auth != "token" {
		p.bad("api.token_file", "is read only with auth = \"token\"")
	}
	if a.ClientCAFile != "" && a.Auth != "mtls" {
		p.bad("api.client_ca_file", "is read only with auth = \"mtls\"")
	}
}

// isLoopback reports whether a host:port address listens on this host only:
// 127.0.0.0/8, ::1 or localhost. Any other name may resolve anywhere, and an
// empty host is every interface.
func isLoopback(addr string) (bool, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return false, fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback(), nil
}

// sameListener reports whether two addresses would fight over one port:
// the same port on the same host, or on every interface.
func sameListener(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	if pa != pb || pa == "0" {
		return false
	}
	every := func(h string) bool { ip := net.ParseIP(h); return h == "" || ip != nil && ip.IsUnspecified() }
	return ha == hb || every(ha) || every(hb)
}
