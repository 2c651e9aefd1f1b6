package pgauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5/pgconn"
)

// SecretsGetter is the one Secrets Manager call a Provider makes.
type SecretsGetter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

var _ SecretsGetter = (*secretsmanager.Client)(nil)

// secretValue is the part of a database secret cdcd uses.
type secretValue struct {
	username string
	password string
	host     string
	port     uint16
	dbname   string
	version  string
}

// currentSecret returns the cached secret while it is fresh and fetches it
// otherwise. The lock is held across the fetch, so the connections a
// reconnect opens together cost one GetSecretValue.
func (p *Provider) currentSecret(ctx context.Context) (*secretValue, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.secret != nil && p.opts.Now().Sub(p.fetchedAt) < p.opts.SecretTTL {
		return p.secret, nil
	}
	out, err := p.opts.Secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(p.src.SecretID)})
	if err != nil {
		// AWS error messages name the principal and the resource, never the
		// secret's value.
		return nil, fmt.Errorf("%w: get secret %s: %w", ErrCredentials, p.src.SecretID, err)
	}
	if out.SecretString == nil {
		return nil, fmt.Errorf("%w: secret %s has no SecretString: store the database credentials as JSON text", ErrCredentials, p.src.SecretID)
	}
	sec, err := parseSecret(*out.SecretString)
	if err != nil {
		return nil, fmt.Errorf("%w: secret %s: %w", ErrCredentials, p.src.SecretID, err)
	}
	sec.version = aws.ToString(out.VersionId)
	if p.secret == nil || p.secret.version != sec.version {
		p.log.InfoContext(ctx, "fetched source secret", logSecret, p.src.SecretID, logVersion, sec.version)
	}
	p.secret, p.fetchedAt = sec, p.opts.Now()
	return sec, nil
}

// errSecretShape is returned for any SecretString cdcd cannot use. It never
// wraps the JSON decoder's error, whose text quotes the offending bytes:
// those bytes could be the password.
var errSecretShape = errors.New(`SecretString is not the JSON object Secrets Manager keeps database credentials in ({"username":"…","password":"…"}, optionally "host", "port", "dbname")`)

// parseSecret reads the JSON Secrets Manager's database secrets use. port
// is a number in secrets RDS writes and often a string in hand-made ones;
// both are accepted.
func parseSecret(text string) (*secretValue, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, errSecretShape
	}
	str := func(key string) (string, error) {
		v, ok := raw[key]
		if !ok || bytes.Equal(v, []byte("null")) {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("secret field %q is not a string", key)
		}
		return s, nil
	}
	var sec secretValue
	var err error
	if sec.password, err = str("password"); err != nil {
		return nil, err
	}
	if sec.password == "" {
		return nil, fmt.Errorf(`the secret has no "password" field: %w`, errSecretShape)
	}
	if sec.username, err = str("username"); err != nil {
		return nil, err
	}
	if sec.host, err = str("host"); err != nil {
		return nil, err
	}
	if sec.dbname, err = str("dbname"); err != nil {
		return nil, err
	}
	if v, ok := raw["port"]; ok && !bytes.Equal(v, []byte("null")) {
		p, err := strconv.ParseUint(strings.Trim(string(v), `"`), 10, 16)
		if err != nil || p == 0 {
			return nil, fmt.Errorf(`secret field "port" is not a TCP port number`)
		}
		sec.port = uint16(p)
	}
	return &sec, nil
}

// applyEndpoint points cfg at the secret's host, port and database. The
// DSN's other hosts are dropped: the secret names the one place the
// credentials are for. A verify-full TLS configuration follows the host.
func applyEndpoint(cfg *pgconn.Config, sec *secretValue) {
	if sec.host != "" && sec.host != cfg.Host {
		cfg.Host = sec.host
		if cfg.TLSConfig != nil && !cfg.TLSConfig.InsecureSkipVerify {
			cfg.TLSConfig = cfg.TLSConfig.Clone()
			cfg.TLSConfig.ServerName = sec.host
		}
		cfg.Fallbacks = nil
	}
	if sec.port != 0 {
		cfg.Port = sec.port
		cfg.Fallbacks = nil
	}
	if sec.dbname != "" {
		cfg.Database = sec.dbname
	}
}
