// Package pgauth supplies the credentials and the TLS settings of a source
// connection right before each connection is opened, so that nothing secret
// lives in the configuration file and rotated secrets need no restart.
//
// A Source names where the password comes from: an environment variable, a
// file (re-read on every connection, the shape a mounted Kubernetes or
// systemd secret has), an AWS Secrets Manager secret (fetched, cached
// briefly, fetched again after a refused login) or IAM database
// authentication (a token signed per connection). Credentials that are worth
// something to an attacker beyond this one database (a Secrets Manager
// password, an IAM token) are only sent over a connection whose server
// certificate is verified against a CA bundle and the host name
// (sslmode=verify-full), unless the server is on this machine.
//
// Nothing in this package logs or returns a password or a token: errors name
// the source (the variable, the file, the secret id), never the value.
package pgauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/ident"
)

// Method names a password source.
type Method string

// Methods, as Source.Method reports them.
const (
	// MethodNone leaves the password to the DSN's environment (.pgpass,
	// trust, certificates).
	MethodNone   Method = ""
	MethodEnv    Method = "env"
	MethodFile   Method = "file"
	MethodSecret Method = "secretsmanager"
	MethodIAM    Method = "iam"
)

// Sentinel errors that callers and Describe test with errors.Is.
var (
	// ErrCredentials marks a failure to obtain the password or token
	// (variable unset, file unreadable, secret or credentials unavailable).
	ErrCredentials = errors.New("source credentials unavailable")
	// ErrInsecure marks a connection refused before it was opened because
	// it would send a valuable credential to a server it cannot verify.
	ErrInsecure = errors.New("source connection not verified")
)

// Source says where a cluster's login comes from and how its server is
// verified. At most one of PasswordEnv, PasswordFile, SecretID and IAMAuth
// is set; none means the DSN's own mechanisms (.pgpass, trust,
// certificates). The toml tags are the suggested [[cluster]] keys.
type Source struct {
	// PasswordEnv names an environment variable holding the password.
	PasswordEnv string `toml:"password_env"`
	// PasswordFile is read on every new connection; a trailing newline is
	// dropped.
	PasswordFile string `toml:"password_file"`
	// SecretID is a Secrets Manager secret ARN or name whose SecretString
	// is the usual JSON: {"username":…, "password":…, "host":…, "port":…,
	// "dbname":…}. Its username, when present, replaces the dsn's user:
	// the secret is the credential pair.
	SecretID string `toml:"secret_id"`
	// SecretEndpoint makes the secret's host, port and dbname (when
	// present) replace the DSN's, for secrets that follow the database
	// around (blue/green switchover, restore to a new instance).
	SecretEndpoint bool `toml:"secret_endpoint"`
	// SecretKMSKey is the ARN of the customer managed key the secret is
	// encrypted with, if any; only `cdcd policy` uses it.
	SecretKMSKey string `toml:"secret_kms_key"`
	// IAMAuth logs in with an RDS IAM authentication token built for each
	// connection from the AWS credentials.
	IAMAuth bool `toml:"iam_auth"`
	// RoleARN, when set, is the role whose credentials sign IAM tokens and
	// read the secret (the daemon builds the provider); otherwise cdcd's
	// base identity does.
	RoleARN string `toml:"aws_role_arn"`
	// Region of the database and the secret; defaults to the region in a
	// secret ARN or an RDS host name, then to the daemon's aws.region.
	Region string `toml:"aws_region"`
	// ResourceID is the instance's DbiResourceId (db-…) or the Aurora
	// cluster's resource id (cluster-…); `cdcd policy` needs it for the
	// rds-db:connect resource ARN.
	ResourceID string `toml:"db_resource_id"`
	// CAFile is a PEM CA bundle (for RDS, the region's bundle). Setting it
	// turns every host of the DSN into sslmode=verify-full with these roots,
	// re-read on every connection so a rotated bundle needs no restart.
	CAFile string `toml:"tls_ca_file"`
	// TLSServerName is the name the server certificate must carry when it
	// differs from the host connected to (a tunnel to 127.0.0.1); IAM tokens
	// are signed for it too. Requires CAFile.
	TLSServerName string `toml:"tls_server_name"`
	// IAMEndpoint ("host:port") is what IAM tokens are signed for when that
	// is neither the dsn's host and port nor TLSServerName and the dsn's
	// port: a tunnel whose local port differs from the database's.
	IAMEndpoint string `toml:"iam_endpoint"`
}

// Method reports the configured password source.
func (s *Source) Method() Method {
	switch {
	case s.IAMAuth:
		return MethodIAM
	case s.SecretID != "":
		return MethodSecret
	case s.PasswordFile != "":
		return MethodFile
	case s.PasswordEnv != "":
		return MethodEnv
	}
	return MethodNone
}

// Validate returns every problem, each naming its key under prefix (like
// "cluster[0]"), the value and what is allowed.
func (s *Source) Validate(prefix string) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{prefix, key}, args...)...))
	}
	var set []string
	for _, k := range []struct {
		key string
		on  bool
	}{{"password_env", s.PasswordEnv != ""}, {"password_file", s.PasswordFile != ""}, {"secret_id", s.SecretID != ""}, {"iam_auth", s.IAMAuth}} {
		if k.on {
			set = append(set, k.key)
		}
	}
	if len(set) > 1 {
		bad(set[0], "and %s are both set: choose one password source", strings.Join(set[1:], ", "))
	}
	if s.SecretID == "" {
		if s.SecretEndpoint {
			bad("secret_endpoint", "needs secret_id")
		}
		if s.SecretKMSKey != "" {
			bad("secret_kms_key", "needs secret_id")
		}
	}
	if strings.HasPrefix(s.SecretID, "arn:") {
		if _, err := ident.ParseSecretARN(s.SecretID); err != nil {
			bad("secret_id", "%q is not a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-abcdef) or a secret name", s.SecretID)
		}
	}
	if s.SecretKMSKey != "" {
		if _, err := ident.ParseKeyARN(s.SecretKMSKey); err != nil {
			bad("secret_kms_key", "%q is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID); aliases do not work in IAM policies", s.SecretKMSKey)
		}
	}
	if s.RoleARN != "" {
		if !s.IAMAuth && s.SecretID == "" {
			bad("aws_role_arn", "is only used with iam_auth or secret_id")
		}
		if _, err := ident.ParseRoleARN(s.RoleARN); err != nil {
			bad("aws_role_arn", "%q is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", s.RoleARN)
		}
	}
	if s.Region != "" && !ident.ValidRegion(s.Region) {
		bad("aws_region", "%q is not an AWS region like us-east-1", s.Region)
	}
	if s.ResourceID != "" && !resourceIDRe.MatchString(s.ResourceID) {
		bad("db_resource_id", "%q is not a DbiResourceId (db-ABC…) or cluster resource id (cluster-ABC…)", s.ResourceID)
	}
	if s.IAMEndpoint != "" {
		if !s.IAMAuth {
			bad("iam_endpoint", "needs iam_auth")
		}
		if _, port, err := net.SplitHostPort(s.IAMEndpoint); err != nil || port == "" {
			bad("iam_endpoint", "%q is not host:port, like mydb.abc123.us-east-1.rds.amazonaws.com:5432", s.IAMEndpoint)
		}
	}
	if s.TLSServerName != "" && s.CAFile == "" {
		bad("tls_server_name", "needs tls_ca_file: a server name is only checked against a CA bundle")
	}
	return errs
}

// TokenBuilder signs an IAM authentication token for user at endpoint
// ("host:port"). auth.BuildAuthToken is the real one; tests inject fakes.
type TokenBuilder func(ctx context.Context, endpoint, region, user string, creds aws.CredentialsProvider) (string, error)

// Options are a Provider's collaborators.
type Options struct {
	// Secrets reads SecretID; required with it.
	Secrets SecretsGetter
	// Credentials sign IAM tokens; required with IAMAuth. Pass the base
	// chain or, for Source.RoleARN, a refreshing assume-role provider.
	Credentials aws.CredentialsProvider
	// Region is the fallback region (the daemon's aws.region).
	Region string
	// BuildToken defaults to auth.BuildAuthToken.
	BuildToken TokenBuilder
	// SecretTTL is how long a fetched secret is reused by new connections
	// (default 30s): long enough that the catalog and replication
	// connections opened together share one fetch, short enough that a
	// reconnect after an outage sees a rotation.
	SecretTTL time.Duration
	// LookupEnv defaults to os.LookupEnv.
	LookupEnv func(string) (string, bool)
	Now       func() time.Time
	Logger    *slog.Logger
}

// Provider prepares each new source connection. It is safe for concurrent
// use.
type Provider struct {
	src  Source
	opts Options
	log  *slog.Logger

	mu        sync.Mutex // held across a secret fetch so concurrent connections share it
	secret    *secretValue
	fetchedAt time.Time
}

// Log attribute keys, constant so that log queries stay stable.
const (
	logMethod  = "method"
	logUser    = "user"
	logHost    = "host"
	logSecret  = "secret_id"
	logVersion = "secret_version"
)

// New checks that src has what its method needs and returns a Provider; it
// does not contact AWS or PostgreSQL.
func New(src Source, opts Options) (*Provider, error) {
	if errs := src.Validate("source"); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	switch src.Method() {
	case MethodSecret:
		if opts.Secrets == nil {
			return nil, errors.New("pgauth: secret_id needs a Secrets Manager client")
		}
	case MethodIAM:
		if opts.Credentials == nil {
			return nil, errors.New("pgauth: iam_auth needs AWS credentials")
		}
	}
	if opts.BuildToken == nil {
		opts.BuildToken = func(ctx context.Context, endpoint, region, user string, creds aws.CredentialsProvider) (string, error) {
			return auth.BuildAuthToken(ctx, endpoint, region, user, creds)
		}
	}
	if opts.SecretTTL <= 0 {
		opts.SecretTTL = 30 * time.Second
	}
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Provider{src: src, opts: opts, log: opts.Logger.With(logMethod, string(src.Method()))}, nil
}

// Source returns the configuration the Provider was built from.
func (p *Provider) Source() Source { return p.src }

// Configure sets the login and TLS of cfg, a freshly parsed DSN, right
// before it is used to connect; call it for every new connection, so files
// are re-read, secrets re-fetched when stale and IAM tokens (valid 15
// minutes) signed anew. It refuses, with ErrInsecure, to send a secret or a
// token to a remote server that is not verified.
func (p *Provider) Configure(ctx context.Context, cfg *pgconn.Config) error {
	var sec *secretValue
	if p.src.Method() == MethodSecret {
		var err error
		if sec, err = p.currentSecret(ctx); err != nil {
			return err
		}
		if p.src.SecretEndpoint {
			applyEndpoint(cfg, sec)
		}
	}
	if err := p.applyTLS(cfg); err != nil {
		return err
	}
	if err := checkTransport(cfg, p.src.Method()); err != nil {
		return err
	}
	switch p.src.Method() {
	case MethodEnv:
		v, ok := p.opts.LookupEnv(p.src.PasswordEnv)
		if !ok || v == "" {
			return fmt.Errorf("%w: environment variable %s (password_env) is not set or empty", ErrCredentials, p.src.PasswordEnv)
		}
		cfg.Password = v
	case MethodFile:
		b, err := os.ReadFile(p.src.PasswordFile)
		if err != nil {
			// The *PathError names the file and the reason, never the content.
			return fmt.Errorf("%w: read password_file: %w", ErrCredentials, err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return fmt.Errorf("%w: password_file %s is empty", ErrCredentials, p.src.PasswordFile)
		}
		cfg.Password = pw
	case MethodSecret:
		if sec.username != "" {
			cfg.User = sec.username
		}
		cfg.Password = sec.password
	case MethodIAM:
		tok, err := p.token(ctx, cfg)
		if err != nil {
			return err
		}
		cfg.Password = tok
	}
	p.log.DebugContext(ctx, "source login prepared", logUser, cfg.User, logHost, cfg.Host)
	return nil
}

// token signs an IAM authentication token for this connection. RDS checks
// the token against its own endpoint, so through a local tunnel it is
// signed for the name the server certificate is checked against (or
// iam_endpoint), not for 127.0.0.1.
func (p *Provider) token(ctx context.Context, cfg *pgconn.Config) (string, error) {
	host, port := cfg.Host, strconv.Itoa(int(cfg.Port))
	if p.src.TLSServerName != "" {
		host = p.src.TLSServerName
	}
	if p.src.IAMEndpoint != "" {
		host, port, _ = net.SplitHostPort(p.src.IAMEndpoint) // checked by Validate
	}
	region := p.region(host)
	if region == "" {
		return "", fmt.Errorf("%w: iam_auth needs a region: set aws_region on the cluster or aws.region", ErrCredentials)
	}
	endpoint := net.JoinHostPort(host, port)
	tok, err := p.opts.BuildToken(ctx, endpoint, region, cfg.User, p.opts.Credentials)
	if err != nil {
		return "", fmt.Errorf("%w: sign IAM authentication token for %s at %s: %w", ErrCredentials, cfg.User, endpoint, err)
	}
	return tok, nil
}

// region picks the signing region: configured, else the one an RDS host
// name carries, else the daemon's.
func (p *Provider) region(host string) string {
	if p.src.Region != "" {
		return p.src.Region
	}
	if r := rdsHostRegion(host); r != "" {
		return r
	}
	return p.opts.Region
}

// rdsHostRegion returns the region in an RDS endpoint such as
// mydb.abc123.us-east-1.rds.amazonaws.com (or .amazonaws.com.cn), or "".
func rdsHostRegion(host string) string {
	for _, suffix := range []string{".rds.amazonaws.com", ".rds.amazonaws.com.cn"} {
		rest, ok := strings.CutSuffix(host, suffix)
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, '.')
		if r := rest[i+1:]; i >= 0 && ident.ValidRegion(r) {
			return r
		}
	}
	return ""
}

// AuthFailed tells the Provider that the server refused the login it
// prepared (SQLSTATE 28P01 or 28000), so the next connection fetches the
// secret again instead of reusing the cached one: that is how a rotation
// done behind cdcd's back is picked up at once.
func (p *Provider) AuthFailed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.secret != nil {
		p.log.Info("source refused the login; the secret will be fetched again", logSecret, p.src.SecretID)
	}
	p.secret = nil
}

// IsAuthFailure reports whether err is PostgreSQL refusing a login, the
// case in which a caller should call AuthFailed.
func IsAuthFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000")
}
