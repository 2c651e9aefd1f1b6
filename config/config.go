package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/BurntSushi/toml"

	"github.com/cdcd-dev/cdcd/capture/pgauth"
	"github.com/cdcd-dev/cdcd/rolecreds"
)

// Config is the whole configuration file. Defaults are applied first, the
// file is decoded over them, unknown keys are rejected, then Validate names
// every problem with its key.
type Config struct {
	StateDir string `toml:"state_dir"`
	Listen   string `toml:"listen"`
	// FailureThreshold is how long an IMPAIRED stream may fall behind before
	// it fails (docs/lifecycle.md#codes).
	FailureThreshold Duration  `toml:"failure_threshold"`
	Log              LogConfig `toml:"log"`
	AWS              AWSConfig `toml:"aws"`
	Clusters         []Cluster `toml:"cluster"`
	Streams          []Stream  `toml:"stream"`

	// Path is the file the configuration was read from.
	Path string `toml:"-"`
}

// LogConfig selects the log level and format.
type LogConfig struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// AWSConfig holds the region and, for local stand-ins, endpoint overrides.
// Credentials always come from the standard AWS chain, never from here.
type AWSConfig struct {
	Region          string   `toml:"region"`
	Partition       string   `toml:"partition"`
	Account         string   `toml:"account"`
	KinesisEndpoint string   `toml:"kinesis_endpoint"`
	STSEndpoint     string   `toml:"sts_endpoint"`
	KMSEndpoint     string   `toml:"kms_endpoint"`
	RoleARNAllow    []string `toml:"role_arn_allow"`
}

// Cluster is one source database.
type Cluster struct {
	Name       string `toml:"name"`
	Identifier string `toml:"identifier"`
	// DSN has no password; the Source settings (password_env,
	// password_file, secret_id, iam_auth, tls_ca_file, …) supply the
	// credentials and TLS for every new connection.
	DSN string `toml:"dsn"`
	pgauth.Source
	// ClusterKeyARN is the KMS key that protects change data cdcd keeps at
	// rest for this cluster's streams; empty uses a key that lives only in
	// memory.
	ClusterKeyARN           string   `toml:"cluster_key_arn"`
	ClusterKeyCheckInterval Duration `toml:"cluster_key_check_interval"`
	// SetReplicaIdentityFull is set_replica_identity_full for the streams
	// created on this cluster through the API.
	SetReplicaIdentityFull bool `toml:"set_replica_identity_full"`
}

// Stream is one publication + slot delivering to one Kinesis stream.
type Stream struct {
	Name                   string   `toml:"name"`
	Cluster                string   `toml:"cluster"`
	Identifier             string   `toml:"identifier"`
	Tables                 []string `toml:"tables"`
	Publication            string   `toml:"publication"`
	Slot                   string   `toml:"slot"`
	Ordering               string   `toml:"ordering"`
	EmitTruncate           bool     `toml:"emit_truncate"`
	SetReplicaIdentityFull bool     `toml:"set_replica_identity_full"`
	// Snapshot backfills the tables' existing rows (op "r") when the slot
	// is created, then streams from it with no gap.
	Snapshot bool     `toml:"snapshot"`
	Target   Target   `toml:"target"`
	Delivery Delivery `toml:"delivery"`
}

// Target names the Kinesis stream and the role cdcd writes as.
type Target struct {
	KinesisStream    string `toml:"kinesis_stream"`
	KinesisStreamARN string `toml:"kinesis_stream_arn"`
	RoleARN          string `toml:"role_arn"`
	ExternalID       string `toml:"external_id"`
	// SessionDuration is how long each assumed-role session lasts; cdcd
	// renews it ahead of expiry.
	SessionDuration Duration `toml:"session_duration"`
}

// Delivery tunes the sink.
type Delivery struct {
	MaxInFlight    int      `toml:"max_in_flight"`
	Linger         Duration `toml:"linger"`
	QueueBytes     int      `toml:"queue_bytes"`
	StatusInterval Duration `toml:"status_interval"`
	// MemoryBudget bounds, in bytes, the changes of uncommitted
	// transactions held in memory, and separately the sorting of a
	// spilled one; larger transactions spill to encrypted files under
	// <state_dir>/spill/<stream id>.
	MemoryBudget int `toml:"memory_budget"`
}

// Duration is a time.Duration written as "10s", "5m", "168h".
type Duration struct{ time.Duration }

// UnmarshalText parses Go duration syntax.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like \"10s\" or \"168h\"", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes Go duration syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func defaultConfig() Config {
	return Config{
		StateDir:         "/var/lib/cdcd",
		Listen:           "127.0.0.1:9180",
		FailureThreshold: Duration{7 * 24 * time.Hour},
		Log:              LogConfig{Level: "info", Format: "text"},
		AWS:              AWSConfig{Region: "us-east-1", Partition: "aws", Account: "000000000000"},
	}
}

func (s *Stream) ApplyDefaults() {
	if s.Ordering == "" {
		s.Ordering = "UNORDERED"
	}
	name := strings.ReplaceAll(s.Name, "-", "_")
	if s.Publication == "" {
		s.Publication = "cdcd_" + name
	}
	if s.Slot == "" {
		s.Slot = "cdcd_" + name
	}
	if s.Delivery.MaxInFlight == 0 {
		s.Delivery.MaxInFlight = 4
	}
	if s.Delivery.Linger.Duration == 0 {
		s.Delivery.Linger.Duration = 20 * time.Millisecond
	}
	if s.Delivery.QueueBytes == 0 {
		s.Delivery.QueueBytes = 32 << 20
	}
	if s.Delivery.StatusInterval.Duration == 0 {
		s.Delivery.StatusInterval.Duration = 10 * time.Second
	}
	if s.Delivery.MemoryBudget == 0 {
		s.Delivery.MemoryBudget = 32 << 20
	}
}

// Load reads, decodes and validates the file at path.
func Load(path string) (*Config, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, string(text))
}

// Parse decodes text (named path in errors) and validates it.
func Parse(path, text string) (*Config, error) {
	cfg := defaultConfig()
	md, err := toml.Decode(text, &cfg)
	if err != nil {
		var perr toml.ParseError
		// ErrorWithPosition panics on the line 0 that the toml package
		// reports for some errors at the end of a line (an unfinished
		// escape, a stray \r); those keep the message without context.
		if errors.As(err, &perr) && perr.Position.Line > 0 {
			return nil, fmt.Errorf("%s: %s", path, perr.ErrorWithPosition())
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("%s: unknown key %s: check the spelling against config.example.toml", path, strings.Join(keys, ", "))
	}
	cfg.Path = path
	for i := range cfg.Streams {
		cfg.Streams[i].ApplyDefaults()
	}
	for i := range cfg.Clusters {
		if cfg.Clusters[i].ClusterKeyCheckInterval.Duration == 0 {
			cfg.Clusters[i].ClusterKeyCheckInterval.Duration = defaultKeyCheckInterval
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &cfg, nil
}

var (
	identRe  = regexp.MustCompile(`^[a-z0-9]{26}$`)
	nameRe   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,46}$`)
	pgNameRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	regionRe = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	kinName  = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)
	kmsKeyRe = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[a-zA-Z0-9-]+$`)
)

// Validate returns every problem found, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
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
	if !regionRe.MatchString(c.AWS.Region) {
		bad("aws.region", "%q is not an AWS region like us-east-1", c.AWS.Region)
	}
	if !regexp.MustCompile(`^\d{12}$`).MatchString(c.AWS.Account) {
		bad("aws.account", "%q is not a 12-digit AWS account id", c.AWS.Account)
	}
	for _, ep := range []struct{ key, v string }{{"aws.kinesis_endpoint", c.AWS.KinesisEndpoint}, {"aws.sts_endpoint", c.AWS.STSEndpoint}, {"aws.kms_endpoint", c.AWS.KMSEndpoint}} {
		if ep.v != "" && !strings.HasPrefix(ep.v, "http://") && !strings.HasPrefix(ep.v, "https://") {
			bad(ep.key, "%q must be an http:// or https:// URL", ep.v)
		}
	}
	clusters := map[string]bool{}
	for i, cl := range c.Clusters {
		key := fmt.Sprintf("cluster[%d]", i)
		switch {
		case !nameRe.MatchString(cl.Name):
			bad(key+".name", "%q must be lowercase letters, digits, - or _, starting with a letter", cl.Name)
		case clusters[cl.Name]:
			bad(key+".name", "%q is used by another cluster", cl.Name)
		}
		clusters[cl.Name] = true
		if cl.Identifier != "" && !identRe.MatchString(cl.Identifier) {
			bad(key+".identifier", "%q must be 26 characters of [a-z0-9] (or leave it out to derive it)", cl.Identifier)
		}
		if cl.DSN == "" {
			bad(key+".dsn", "is required: a PostgreSQL connection string without the password")
		} else if hasPassword(cl.DSN) {
			bad(key+".dsn", "contains a password: put it in the environment (password_env) or a file (password_file) instead")
		}
		if cl.ClusterKeyARN != "" && !kmsKeyRe.MatchString(cl.ClusterKeyARN) {
			bad(key+".cluster_key_arn", "%q is not a KMS key ARN like arn:aws:kms:us-east-1:123456789012:key/…", cl.ClusterKeyARN)
		}
		if cl.ClusterKeyCheckInterval.Duration < time.Second {
			bad(key+".cluster_key_check_interval", "%s is below 1s", cl.ClusterKeyCheckInterval)
		}
		errs = append(errs, cl.Source.Validate(key)...)
		if cl.DSN != "" {
			if err := cl.Source.CheckDSN(cl.DSN); err != nil {
				bad(key+".dsn", "%v", err)
			}
		}
	}
	streams := map[string]bool{}
	for i, s := range c.Streams {
		key := fmt.Sprintf("stream[%d]", i)
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
		if s.Identifier != "" && !identRe.MatchString(s.Identifier) {
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
		if s.Target.KinesisStream == "" {
			bad(key+".target.kinesis_stream", "is required: the name of the Kinesis data stream")
		} else if !kinName.MatchString(s.Target.KinesisStream) {
			bad(key+".target.kinesis_stream", "%q is not a Kinesis stream name ([a-zA-Z0-9_.-], 1-128 characters)", s.Target.KinesisStream)
		}
		if d := s.Target.SessionDuration.Duration; d != 0 && (d < 15*time.Minute || d > 12*time.Hour) {
			bad(key+".target.session_duration", "%s is outside STS's 15m..12h", d)
		}
		if s.Target.RoleARN != "" && s.Target.ExternalID == "" {
			bad(key+".target.external_id", "is required with role_arn: the role's trust policy should demand it")
		}
		if s.Delivery.MaxInFlight < 1 || s.Delivery.MaxInFlight > 64 {
			bad(key+".delivery.max_in_flight", "%d is outside 1..64", s.Delivery.MaxInFlight)
		}
		if s.Delivery.QueueBytes < 1<<20 {
			bad(key+".delivery.queue_bytes", "%d is below 1048576 (1 MiB)", s.Delivery.QueueBytes)
		}
		if s.Delivery.MemoryBudget < 1<<20 {
			bad(key+".delivery.memory_budget", "%d is below 1048576 (1 MiB)", s.Delivery.MemoryBudget)
		}
		if s.Delivery.StatusInterval.Duration > 30*time.Second {
			bad(key+".delivery.status_interval", "%s is too long: keep it well under the server's wal_sender_timeout (60s by default)", s.Delivery.StatusInterval)
		}
	}
	return errors.Join(errs...)
}

// hasPassword reports whether a DSN (URL or key=value form) carries a password.
func hasPassword(dsn string) bool {
	if strings.Contains(dsn, "://") {
		rest := dsn[strings.Index(dsn, "://")+3:]
		if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
			if strings.Contains(rest[:at], ":") {
				return true
			}
		}
		return strings.Contains(dsn, "password=")
	}
	for _, f := range strings.Fields(dsn) {
		if strings.HasPrefix(f, "password=") {
			return true
		}
	}
	return false
}

// cluster returns the cluster a stream reads.
func (c *Config) ClusterNamed(name string) *Cluster {
	for i := range c.Clusters {
		if c.Clusters[i].Name == name {
			return &c.Clusters[i]
		}
	}
	return nil
}

// KinesisStreamARN is the target stream's ARN: configured, or built from the
// name in the role's account (a role writes to its own account's streams),
// or in aws.account when the stream has no role.
func (c *Config) KinesisStreamARN(s *Stream) (string, error) {
	if s.Target.KinesisStreamARN != "" {
		return s.Target.KinesisStreamARN, nil
	}
	account := c.AWS.Account
	if s.Target.RoleARN != "" {
		role, err := rolecreds.ParseRoleARN(s.Target.RoleARN)
		if err != nil {
			return "", fmt.Errorf("stream %s target.role_arn: %w", s.Name, err)
		}
		account = role.AccountID
	}
	return fmt.Sprintf("arn:%s:kinesis:%s:%s:stream/%s", c.AWS.Partition, c.AWS.Region, account, s.Target.KinesisStream), nil
}

// RoleConfig is the rolecreds configuration of one stream.
func (c *Config) RoleConfig(s *Stream, streamARN, clusterID string, log *slog.Logger) (rolecreds.Config, error) {
	kinARN, err := c.KinesisStreamARN(s)
	if err != nil {
		return rolecreds.Config{}, err
	}
	return rolecreds.Config{
		RoleARN: s.Target.RoleARN, ExternalID: s.Target.ExternalID, StreamName: s.Name,
		StreamARN: streamARN, ClusterID: clusterID, KinesisStreamARN: kinARN,
		Region: c.AWS.Region, Partition: c.AWS.Partition, Duration: s.Target.SessionDuration.Duration, Logger: log,
	}, nil
}

// defaultKeyCheckInterval is how often a cluster key is checked when
// cluster_key_check_interval is not set.
const defaultKeyCheckInterval = time.Minute

// LoadAWS loads the base identity from the standard AWS chain (environment,
// shared config and profiles, web identity, ECS task role, instance
// metadata). It never sets an HTTP client here: with AWS_CA_BUNDLE set, the
// SDK refuses a custom client at load time.
func LoadAWS(ctx context.Context, region string) (aws.Config, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg, nil
}
