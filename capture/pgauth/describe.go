package pgauth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Causes Describe reports: stable strings, fit for a log attribute or a
// metric label.
const (
	CauseDNS                 = "dns"
	CauseTCPRefused          = "tcp_refused"
	CauseTCPTimeout          = "tcp_timeout"
	CauseTLSUnknownAuthority = "tls_unknown_authority"
	CauseTLSHostname         = "tls_hostname_mismatch"
	CauseTLS                 = "tls"
	CauseTLSNotVerified      = "tls_not_verified"
	CauseAuthentication      = "authentication"
	CausePermission          = "permission"
	CauseCredentials         = "credentials"
	CauseDatabase            = "database_missing"
	CauseUnavailable         = "server_unavailable"
	CauseUnknown             = "unknown"
)

// Describe names why a source could not be reached or refused the login
// and says what to do about it, in one line for a log or a status reason.
// msg is built from the error's parts (host names, addresses, SQLSTATEs,
// the server's message), which never include a password or a token: the
// server does not echo them, pgconn's errors omit them and this package's
// own errors name where a secret comes from, not what it is.
func Describe(err error) (cause string, msg string) {
	if err == nil {
		return "", ""
	}
	user, addr := target(err)
	var (
		pgErr      *pgconn.PgError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		dnsErr     *net.DNSError
		netErr     net.Error
	)
	switch {
	case errors.Is(err, ErrInsecure):
		return CauseTLSNotVerified, err.Error()
	case errors.Is(err, ErrCredentials):
		return CauseCredentials, err.Error()
	case errors.As(err, &pgErr):
		return describePg(pgErr, user, addr)
	case errors.As(err, &unknownCA):
		return CauseTLSUnknownAuthority, fmt.Sprintf("TLS to %s failed: the server certificate is not signed by a CA in the trusted bundle (%v): point sslrootcert or tls_ca_file at the CA that issued it (for RDS, the region's bundle)", addrOr(addr), unknownCA)
	case errors.As(err, &hostErr):
		return CauseTLSHostname, fmt.Sprintf("TLS to %s failed: host name mismatch, %v: connect with a host name the certificate lists (for RDS, the instance or cluster endpoint, not a CNAME or an IP address), or set tls_server_name", addrOr(addr), hostErr)
	case errors.As(err, &invalidErr):
		return CauseTLS, fmt.Sprintf("TLS to %s failed: %v", addrOr(addr), invalidErr)
	case strings.Contains(err.Error(), "server refused TLS connection"):
		return CauseTLS, fmt.Sprintf("TLS to %s failed: the server does not offer TLS: enable ssl on the server (it is always on for RDS) or check that the address is the database", addrOr(addr))
	case errors.As(err, &dnsErr):
		return CauseDNS, fmt.Sprintf("cannot resolve the source host %q: %s: check the dsn's host and this machine's DNS (for RDS, that the endpoint exists and is resolvable from this VPC)", dnsErr.Name, dnsErr.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return CauseTCPRefused, fmt.Sprintf("connection to %s refused: nothing listens there: check the host and port, that PostgreSQL is running and listen_addresses includes this interface", addrOr(addr))
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout() || pgconn.Timeout(err):
		return CauseTCPTimeout, fmt.Sprintf("connection to %s timed out: a firewall or security group drops the traffic, or the host is down: check that port %s is open from this machine", addrOr(addr), portOf(addr))
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		return CauseTCPTimeout, fmt.Sprintf("no route to %s: check the network path (VPC routing, peering) to the database", addrOr(addr))
	case strings.Contains(err.Error(), "tls"):
		return CauseTLS, fmt.Sprintf("TLS to %s failed: %v", addrOr(addr), err)
	}
	if user != "" {
		return CauseUnknown, fmt.Sprintf("cannot use the source as %s: %v", user, err)
	}
	return CauseUnknown, err.Error()
}

// describePg explains an error the server sent.
func describePg(e *pgconn.PgError, user, addr string) (string, string) {
	server := e.Message
	if e.Detail != "" {
		server += " (" + e.Detail + ")"
	}
	who := "the source role"
	if user != "" {
		who = fmt.Sprintf("role %q", user)
	}
	switch {
	case e.Code == "28P01" || e.Code == "28000" && !strings.Contains(e.Message, "pg_hba.conf"):
		return CauseAuthentication, fmt.Sprintf("%s refused the login of %s (SQLSTATE %s: %s): check that the password source (password_env, password_file or secret_id) holds the current password; with iam_auth, that the database user has GRANT rds_iam and the identity may rds-db:connect to its dbuser ARN", addrOr(addr), who, e.Code, server)
	case e.Code == "28000":
		return CauseAuthentication, fmt.Sprintf("%s has no pg_hba.conf entry that lets %s in from here (SQLSTATE 28000: %s): add a hostssl line for this user and address", addrOr(addr), who, server)
	case e.Code == "42501" && strings.Contains(strings.ToLower(e.Message), "replication"):
		return CausePermission, fmt.Sprintf("%s lacks REPLICATION (SQLSTATE 42501: %s): run ALTER ROLE %s WITH REPLICATION, or on RDS GRANT rds_replication TO %s", who, server, quoteIdent(user), quoteIdent(user))
	case e.Code == "42501":
		return CausePermission, fmt.Sprintf("%s lacks a privilege (SQLSTATE 42501: %s): run `cdcd check --online` for the GRANTs that fix it", who, server)
	case e.Code == "3D000":
		return CauseDatabase, fmt.Sprintf("%s: %s: check the dsn's dbname", addrOr(addr), server)
	case strings.HasPrefix(e.Code, "08") || strings.HasPrefix(e.Code, "57") || e.Code == "53300":
		return CauseUnavailable, fmt.Sprintf("%s is not accepting connections now (SQLSTATE %s: %s)", addrOr(addr), e.Code, server)
	}
	return CauseUnknown, fmt.Sprintf("%s: SQLSTATE %s: %s", addrOr(addr), e.Code, server)
}

// DSNError is err with any connection string left out of its text, for
// errors from parsing a DSN (pgconn.ParseConfigError). pgconn masks the
// passwords it recognises in the string it quotes, but documents that as
// best effort; only its explanation, which follows the quoted string, is
// kept. Other errors are returned as they are.
func DSNError(err error) error {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return err
	}
	why := "malformed"
	// The explanation follows the last "`: ", which comes after the quoted
	// string whatever that string holds.
	if msg := pe.Error(); strings.Contains(msg, "`: ") {
		why = msg[strings.LastIndex(msg, "`: ")+3:]
	}
	return errors.New("cannot parse the dsn: " + why)
}

// target digs the user and the address out of a connection error. The
// ConnectError's Config also holds the password, which is why only these
// two fields are read from it.
func target(err error) (user, addr string) {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Config != nil {
		user = ce.Config.User
		addr = net.JoinHostPort(ce.Config.Host, fmt.Sprint(ce.Config.Port))
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Addr != nil {
		addr = opErr.Addr.String()
	}
	return user, addr
}

func addrOr(addr string) string {
	if addr == "" {
		return "the source"
	}
	return "the source at " + addr
}

func portOf(addr string) string {
	if _, p, err := net.SplitHostPort(addr); err == nil {
		return p
	}
	return "(the dsn's port)"
}

// quoteIdent quotes a role name for the SQL in a hint, or names a
// placeholder when it is unknown.
func quoteIdent(name string) string {
	if name == "" {
		return "<user>"
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
