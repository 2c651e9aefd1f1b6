package pgauth

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
)

// LoadCAPool reads a PEM bundle of CA certificates, such as the RDS
// regional bundle.
func LoadCAPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tls_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls_ca_file %s holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)", path)
	}
	return pool, nil
}

// TLSConfig returns the sslmode=verify-full configuration: the server's
// certificate must chain to roots and name serverName (a DNS name or an IP
// address). Go's standard verification does both; nothing is skipped.
func TLSConfig(serverName string, roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		ServerName: serverName,
		RootCAs:    roots,
		MinVersion: tls.VersionTLS12,
	}
}

// SetVerifyFull rewrites a parsed DSN so that every TCP host is verified
// with roots, whatever sslmode said. serverName, when set, replaces the host
// name the certificate is checked against. Plain-text fallbacks (sslmode
// prefer or allow) become TLS like the rest, and the duplicates that leaves
// are dropped. Unix sockets are left alone: PostgreSQL speaks no TLS there.
// Client certificates and ALPN (sslnegotiation=direct) are kept.
func SetVerifyFull(cfg *pgconn.Config, roots *x509.CertPool, serverName string) {
	all := append([]*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...)
	seen := map[string]bool{}
	var out []*pgconn.FallbackConfig
	for _, fb := range all {
		addr := net.JoinHostPort(fb.Host, strconv.Itoa(int(fb.Port)))
		if seen[addr] {
			continue
		}
		seen[addr] = true
		if network, _ := pgconn.NetworkAddress(fb.Host, fb.Port); network == "unix" {
			out = append(out, fb)
			continue
		}
		name := fb.Host
		if serverName != "" {
			name = serverName
		}
		tc := TLSConfig(name, roots)
		// Any of the entries for this address may carry the client
		// certificate; the plain-text one of sslmode=prefer does not.
		for _, other := range all {
			if other.Host == fb.Host && other.Port == fb.Port && other.TLSConfig != nil {
				tc.Certificates = other.TLSConfig.Certificates
				tc.NextProtos = other.TLSConfig.NextProtos
				break
			}
		}
		out = append(out, &pgconn.FallbackConfig{Host: fb.Host, Port: fb.Port, TLSConfig: tc})
	}
	cfg.Host, cfg.Port, cfg.TLSConfig = out[0].Host, out[0].Port, out[0].TLSConfig
	cfg.Fallbacks = out[1:]
}

// applyTLS makes the connection verify-full when a CA bundle is configured.
// The bundle is read for every connection so that replacing the file (RDS
// rotates its CAs every few years) needs no restart.
func (p *Provider) applyTLS(cfg *pgconn.Config) error {
	if p.src.CAFile == "" {
		return nil
	}
	roots, err := LoadCAPool(p.src.CAFile)
	if err != nil {
		return err
	}
	SetVerifyFull(cfg, roots, p.src.TLSServerName)
	return nil
}

// CheckDSN parses dsn as the daemon will and reports, before any
// connection, a configuration that Configure would refuse: a Secrets
// Manager password or an IAM token bound for a remote server that is not
// verified, or an IAM login spread over several hosts.
func (s *Source) CheckDSN(dsn string) error {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return DSNError(err)
	}
	if s.CAFile != "" {
		roots, err := LoadCAPool(s.CAFile)
		if err != nil {
			return err
		}
		SetVerifyFull(cfg, roots, s.TLSServerName)
	}
	return checkTransport(cfg, s.Method())
}

// checkTransport refuses to send a valuable credential over a connection
// whose server is not verified. A password from a file or the environment
// is the operator's own choice and is not checked: SCRAM never sends it in
// the clear. A Secrets Manager password or an IAM token is different: the
// server sees it in the clear (IAM tokens are sent as a cleartext password)
// and both are worth more than this one database, so a server that merely
// answers on the right address must not receive them. Loopback and Unix
// socket connections never leave the machine and are allowed.
func checkTransport(cfg *pgconn.Config, m Method) error {
	if m != MethodSecret && m != MethodIAM {
		return nil
	}
	all := append([]*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...)
	key, what := "secret_id", "the database password from Secrets Manager"
	if m == MethodIAM {
		key, what = "iam_auth", "an IAM authentication token (good for any connection as this user for 15 minutes)"
	}
	for _, fb := range all {
		if isLocal(fb.Host, fb.Port) {
			continue
		}
		if mode := unverified(fb.TLSConfig); mode != "" {
			return fmt.Errorf("%w: %s would send %s to %s over %s, so anyone who can intercept the connection could pose as the server and take it: "+
				"add sslmode=verify-full sslrootcert=/path/rds-ca.pem to the dsn (for RDS, the region's CA bundle), or set tls_ca_file = \"/path/rds-ca.pem\" on the cluster",
				ErrInsecure, key, what, net.JoinHostPort(fb.Host, strconv.Itoa(int(fb.Port))), mode)
		}
	}
	if m == MethodIAM {
		for _, fb := range all[1:] {
			if fb.Host != all[0].Host || fb.Port != all[0].Port {
				return fmt.Errorf("%w: iam_auth signs each token for one host and port, but the dsn names %s:%d and %s:%d: list one host",
					ErrInsecure, all[0].Host, all[0].Port, fb.Host, fb.Port)
			}
		}
	}
	return nil
}

// unverified describes what is wrong with a TLS configuration, or returns
// "" when it is verify-full. pgconn expresses sslmode through these fields:
// no config is plain text, InsecureSkipVerify with a VerifyPeerCertificate
// hook is verify-ca, InsecureSkipVerify alone is require (or prefer/allow).
func unverified(tc *tls.Config) string {
	switch {
	case tc == nil:
		return "a plain-text connection (sslmode=disable, or the fallback of sslmode=prefer or allow)"
	case tc.InsecureSkipVerify && tc.VerifyPeerCertificate != nil:
		return "TLS that checks the CA but not the host name (sslmode=verify-ca)"
	case tc.InsecureSkipVerify:
		return "TLS that checks no certificate (sslmode=require or prefer)"
	}
	return ""
}

// isLocal reports a Unix socket or a loopback address.
func isLocal(host string, port uint16) bool {
	if network, _ := pgconn.NetworkAddress(host, port); network == "unix" {
		return true
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
