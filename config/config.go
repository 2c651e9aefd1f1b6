package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/BurntSushi/toml"

	"github.com/cdcd-dev/cdcd/capture/pgauth"
	"github.com/cdcd-dev/cdcd/ident"
	"github.com/cdcd-dev/cdcd/rolecreds"
)

// Config is the whole configuration file. Defaults are applied first, the
// file is decoded over them, unknown keys are rejected, then Validate names
// every problem with its key.
type Config struct {
	StateDir string `toml:"state_dir"`
	Listen   string `toml:"listen"`
	// MetricsListen, when set, serves /metrics, /healthz and /readyz on a
	// listener of their own, so that a scraper or a probe needs no access
	// to the control plane; listen then no longer serves /metrics.
	MetricsListen string `toml:"metrics_listen"`
	// FailureThreshold is how long an IMPAIRED stream may fall behind before
	// it fails (docs/lifecycle.md#codes).
	FailureThreshold Duration  `toml:"failure_threshold"`
	Log              LogConfig `toml:"log"`
	API              APIConfig `toml:"api"`
	AWS              AWSConfig `toml:"aws"`
	Clusters         []Cluster `toml:"cluster"`
	Streams          []Stream  `toml:"stream"`

	// Path is the file the configuration was read from.
	Path string `toml:"-"`
	// listenFrom names what replaced the file's listen, for the messages
	// of validation.
	listenFrom string
}

// APIConfig guards the control plane on listen: a listener reachable beyond
// this host must have TLS and an authentication mode (docs/config.md#api).
type APIConfig struct {
	// Auth is "none", "token" or "mtls".
	Auth        string `toml:"auth"`
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	// ClientCAFile verifies client certificates with auth = "mtls".
	ClientCAFile string `toml:"client_ca_file"`
	// TokenFile holds the token callers send with auth = "token".
	TokenFile string `toml:"token_file"`
	// ReadOnly refuses CreateStream and DeleteStream.
	ReadOnly bool `toml:"read_only"`
}

// LogConfig selects the log level and format.
type LogConfig struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// NewLogger returns a logger writing to w at the configured level, in the
// configured format.
func (l LogConfig) NewLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(l.Level)) // Validate accepted it
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// AWSConfig holds the region and, for local stand-ins, endpoint overrides.
// Credentials always come from the standard AWS chain, never from here.
type AWSConfig struct {
	Region    string `toml:"region"`
	Partition string `toml:"partition"`
	// Account is the base identity's account; left out, ResolveAccount
	// asks STS.
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
	// KeylessTables is keyless_tables for the streams created on this
	// cluster through the API.
	KeylessTables string `toml:"keyless_tables"`
}

// Stream is one publication + slot delivering to one Kinesis stream.
type Stream struct {
	Name        string   `toml:"name"`
	Cluster     string   `toml:"cluster"`
	Identifier  string   `toml:"identifier"`
	Tables      []string `toml:"tables"`
	Publication string   `toml:"publication"`
	Slot        string   `toml:"slot"`
	Ordering    string   `toml:"ordering"`
	// Aggregation is "none" (default) or "kpl": pack records into KPL
	// aggregates (docs/records.md#aggregation); UNORDERED only.
	Aggregation            string `toml:"aggregation"`
	EmitTruncate           bool   `toml:"emit_truncate"`
	SetReplicaIdentityFull bool   `toml:"set_replica_identity_full"`
	// OwnPublication, unset or true, lets cdcd create the publication and
	// keep it exactly the stream's; false leaves it to its owner, and the
	// stream refuses to start while it lacks anything (OwnsPublication).
	OwnPublication *bool `toml:"own_publication"`
	// KeylessTables is "refuse" (default) or "full": stream tables without
	// a primary key under REPLICA IDENTITY FULL, every change its own
	// record with the whole old row in before.
	KeylessTables string `toml:"keyless_tables"`
	// Snapshot backfills the tables' existing rows (op "r") when the slot
	// is created, then streams from it with no gap.
	Snapshot bool     `toml:"snapshot"`
	Target   Target   `toml:"target"`
	Delivery Delivery `toml:"delivery"`
}

// The values of aggregation.
const (
	AggregationNone = "none"
	AggregationKPL  = "kpl"
)

// The values of keyless_tables.
const (
	KeylessRefuse = "refuse"
	KeylessFull   = "full"
)

// OwnsPublication reports whether cdcd manages the stream's publication;
// it does unless own_publication = false.
func (s *Stream) OwnsPublication() bool { return s.OwnPublication == nil || *s.OwnPublication }

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
	// SpillMaxBytes caps the bytes of the stream's spill files at once;
	// 0 (the default) leaves only the filesystem's free space.
	SpillMaxBytes int `toml:"spill_max_bytes"`
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

// DefaultListen is the control plane's address unless listen says
// otherwise: loopback only, because the control plane does not verify
// SigV4 signatures.
const DefaultListen = "127.0.0.1:9180"

func defaultConfig() Config {
	return Config{
		StateDir:         "/var/lib/cdcd",
		Listen:           DefaultListen,
		FailureThreshold: Duration{7 * 24 * time.Hour},
		Log:              LogConfig{Level: "info", Format: "text"},
		API:              APIConfig{Auth: "none"},
		AWS:              AWSConfig{Region: "us-east-1", Partition: "aws"},
	}
}

func (s *Stream) ApplyDefaults() {
	if s.Ordering == "" {
		s.Ordering = "UNORDERED"
	}
	if s.KeylessTables == "" {
		s.KeylessTables = KeylessRefuse
	}
	if s.Aggregation == "" {
		s.Aggregation = AggregationNone
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

// ListenEnv is the environment variable that, when set, replaces the
// file's listen for every command that loads the file, so that a container
// image can choose its address without its own config file.
const ListenEnv = "CDCD_LISTEN"

// Override replaces a value of the file before validation, so that a value
// from a flag or the environment meets the same rules as the file's.
type Override func(*Config)

// Listen replaces listen with addr, unless addr is empty; from names where
// addr came from (a flag, an environment variable) in validation messages.
func Listen(from, addr string) Override {
	return func(c *Config) {
		if addr != "" {
			c.Listen, c.listenFrom = addr, from
		}
	}
}

// Load reads, decodes and validates the file at path, with $CDCD_LISTEN and
// then overrides applied over it.
func Load(path string, overrides ...Override) (*Config, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return parse(path, string(text), append([]Override{Listen(ListenEnv, os.Getenv(ListenEnv))}, overrides...))
}

// Parse decodes text (named path in errors) and validates it.
func Parse(path, text string) (*Config, error) {
	return parse(path, text, nil)
}

func parse(path, text string, overrides []Override) (*Config, error) {
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
		if msg, ok := typeError(err); ok {
			return nil, fmt.Errorf("%s: %s", path, msg)
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
	for _, o := range overrides {
		o(&cfg)
	}
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

// typeErrorRe matches the toml package's error for a value of the wrong
// type, which names Go's types rather than TOML's.
var typeErrorRe = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]+)"\): incompatible types: TOML value has type (.+); destination has type (.+)$`)

// typeError says which key has a value of the wrong type, on which line,
// and the type it needs, in TOML's words.
func typeError(err error) (string, bool) {
	m := typeErrorRe.FindStringSubmatch(err.Error())
	if m == nil {
		return "", false
	}
	where := ""
	if m[1] != "" {
		where = "line " + m[1] + ": "
	}
	return fmt.Sprintf("%s%s must be %s, not %s", where, m[2], tomlType(m[4]), tomlType(m[3])), true
}

// tomlType names a type of the toml package's errors (a Go type for the
// value, a kind for the destination) as TOML does.
func tomlType(t string) string {
	switch t {
	case "string", "primitive (string-like)":
		return "a string"
	case "int64", "integer":
		return "an integer"
	case "float64", "float":
		return "a number"
	case "bool", "boolean":
		return "true or false"
	case "[]any", "slice":
		return "an array"
	case "[]map[string]any":
		return "an array of tables"
	case "map[string]any", "map":
		return "a table"
	case "time.Time":
		return "a date-time"
	}
	return t
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
	return kvPassword.MatchString(dsn)
}

// kvPassword finds a password keyword in a key=value DSN, which allows
// spaces around the '='.
var kvPassword = regexp.MustCompile(`(^|\s)password\s*=`)

// StreamNamed returns the stream called name, nil if there is none. The
// empty name stands for the only stream of a file that has one.
func (c *Config) StreamNamed(name string) *Stream {
	for i := range c.Streams {
		if c.Streams[i].Name == name || name == "" && len(c.Streams) == 1 {
			return &c.Streams[i]
		}
	}
	return nil
}

// ControlPlaneURL is the URL at which a command on this host reaches the
// control plane on listen: https when [api] has a certificate.
func (c *Config) ControlPlaneURL() string {
	if c.API.TLSCertFile != "" {
		return "https://" + dialAddr(c.Listen)
	}
	return "http://" + dialAddr(c.Listen)
}

// ProbeURL is where a command on this host reaches /healthz and /readyz:
// metrics_listen when set, which asks for no credentials, else listen.
func (c *Config) ProbeURL() string {
	if c.MetricsListen != "" {
		return "http://" + dialAddr(c.MetricsListen)
	}
	return c.ControlPlaneURL()
}

// dialAddr is a listen address as a client on this host dials it: a
// listener on every interface is reached on loopback.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch ip := net.ParseIP(host); {
	case host == "" || ip != nil && ip.Equal(net.IPv4zero):
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// ClusterID is id, or when id is empty the identifier of the file's only
// cluster: empty when it has several, or derives it at start. A nil Config
// (no file) has no cluster.
func (c *Config) ClusterID(id string) string {
	if id != "" || c == nil || len(c.Clusters) != 1 {
		return id
	}
	return c.Clusters[0].Identifier
}

// ClusterNamed returns the cluster called name, nil if there is none.
func (c *Config) ClusterNamed(name string) *Cluster {
	for i := range c.Clusters {
		if c.Clusters[i].Name == name {
			return &c.Clusters[i]
		}
	}
	return nil
}

// ErrNoAccount is returned for what needs aws.account while it is neither
// set nor resolved (ResolveAccount).
var ErrNoAccount = errors.New("aws.account is not set")

// KinesisStreamARN is the target stream's ARN: configured, or built from the
// name in the role's account (a role writes to its own account's streams),
// or in aws.account when the stream has no role.
func (c *Config) KinesisStreamARN(s *Stream) (string, error) {
	if s.Target.KinesisStreamARN != "" {
		return s.Target.KinesisStreamARN, nil
	}
	account := c.AWS.Account
	if s.Target.RoleARN != "" {
		role, err := ident.ParseRoleARN(s.Target.RoleARN)
		if err != nil {
			return "", fmt.Errorf("stream %s target.role_arn: %w", s.Name, err)
		}
		account = role.AccountID
	}
	if account == "" {
		return "", fmt.Errorf("stream %s: %w: a stream without target.role_arn or target.kinesis_stream_arn writes to a stream of the base identity's account", s.Name, ErrNoAccount)
	}
	return ident.KinesisStreamARN{Partition: c.AWS.Partition, Region: c.AWS.Region, AccountID: account, Name: s.Target.KinesisStream}.String(), nil
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

// ResolveAccount sets aws.account, when the file leaves it out, to the
// account of cdcd's base identity as sts:GetCallerIdentity reports it; run
// and check --online call it at start.
func (c *Config) ResolveAccount(ctx context.Context) error {
	if c.AWS.Account != "" {
		return nil
	}
	caller, err := rolecreds.CallerIdentity(ctx, c.AWS.Region, c.AWS.STSEndpoint)
	if err != nil {
		return fmt.Errorf("aws.account is not set, and asking STS for the base identity's account failed (set aws.account, or give cdcd AWS credentials): %w", err)
	}
	c.AWS.Account = caller.Account
	return nil
}

// CheckOffline builds, for every stream, what run derives from the file
// before it calls AWS: the Kinesis stream ARN, and for a stream with a role
// the role's session (role_arn allowed by aws.role_arn_allow, external id,
// session policy). It returns every problem, each naming its stream.
func (c *Config) CheckOffline() error {
	allow, err := rolecreds.NewAllowList(c.AWS.RoleARNAllow)
	if err != nil {
		return fmt.Errorf("aws.role_arn_allow: %w", err)
	}
	var errs []error
	for i := range c.Streams {
		s := &c.Streams[i]
		rc, err := c.RoleConfig(s, "", "", nil)
		switch {
		case errors.Is(err, ErrNoAccount):
			errs = append(errs, fmt.Errorf("stream %s: aws.account is not set and cdcd check runs offline: set it, or use --online", s.Name))
		case err != nil:
			errs = append(errs, err)
		case s.Target.RoleARN != "":
			if err := allow.Check(s.Target.RoleARN); err != nil {
				errs = append(errs, fmt.Errorf("stream %s: %w", s.Name, err))
			} else if err := rc.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("stream %s target: %w", s.Name, err))
			}
		}
	}
	return errors.Join(errs...)
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
