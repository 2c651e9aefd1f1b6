package pgauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestDescribe(t *testing.T) {
	_, _, cert := newCA(t, "ca").issue(t, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	addr := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 5432}
	dial := func(err error) error {
		return fmt.Errorf("connect: %w", &net.OpError{Op: "dial", Net: "tcp", Addr: addr, Err: err})
	}
	tlsErr := func(err error) error {
		return fmt.Errorf("tls error: %w", &tls.CertificateVerificationError{Err: err})
	}
	tests := []struct {
		name  string
		err   error
		cause string
		msg   string // substring
	}{
		{"wrong password", &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "cdcd"`},
			CauseAuthentication, "password authentication failed"},
		{"IAM token refused", &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: `PAM authentication failed for user "cdcd"`},
			CauseAuthentication, "rds-db:connect"},
		{"unknown role", &pgconn.PgError{Severity: "FATAL", Code: "28000", Message: `role "nobody" does not exist`},
			CauseAuthentication, "holds the current password"},
		{"pg_hba", &pgconn.PgError{Severity: "FATAL", Code: "28000", Message: `no pg_hba.conf entry for host "10.0.0.9", user "cdcd", database "app", no encryption`},
			CauseAuthentication, "add a hostssl line"},
		{"no replication", &pgconn.PgError{Severity: "FATAL", Code: "42501", Message: "must be superuser or replication role to start walsender"},
			CausePermission, "WITH REPLICATION, or on RDS GRANT rds_replication"},
		{"no connect privilege", &pgconn.PgError{Severity: "FATAL", Code: "42501", Message: `permission denied for database "app"`},
			CausePermission, "cdcd check --online"},
		{"no database", &pgconn.PgError{Severity: "FATAL", Code: "3D000", Message: `database "nope" does not exist`},
			CauseDatabase, "dbname"},
		{"starting up", &pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is starting up"},
			CauseUnavailable, "not accepting connections"},
		{"too many connections", &pgconn.PgError{Severity: "FATAL", Code: "53300", Message: "sorry, too many clients already"},
			CauseUnavailable, "53300"},
		{"dns", fmt.Errorf("hostname resolving error: %w", &net.DNSError{Name: "db.nowhere.invalid", Err: "no such host", IsNotFound: true}),
			CauseDNS, `"db.nowhere.invalid"`},
		{"refused", dial(os.NewSyscallError("connect", syscall.ECONNREFUSED)),
			CauseTCPRefused, "10.0.0.5:5432 refused"},
		{"timeout", dial(timeoutErr{}), CauseTCPTimeout, "port 5432 is open"},
		{"context deadline", fmt.Errorf("dial: %w", context.DeadlineExceeded), CauseTCPTimeout, "timed out"},
		{"no route", dial(os.NewSyscallError("connect", syscall.EHOSTUNREACH)), CauseTCPTimeout, "no route"},
		{"unknown authority", tlsErr(x509.UnknownAuthorityError{Cert: cert}), CauseTLSUnknownAuthority, "not signed by a CA in the trusted bundle"},
		{"hostname mismatch", tlsErr(x509.HostnameError{Certificate: cert, Host: "db.example.com"}), CauseTLSHostname, "not db.example.com"},
		{"expired", tlsErr(x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired}), CauseTLS, "expired"},
		{"server without TLS", errors.New("tls error: server refused TLS connection"), CauseTLS, "does not offer TLS"},
		{"insecure config", fmt.Errorf("%w: iam_auth would send…", ErrInsecure), CauseTLSNotVerified, "iam_auth would send"},
		{"credentials", fmt.Errorf("%w: read password_file: open /x: no such file", ErrCredentials), CauseCredentials, "/x"},
		{"anything else", errors.New("boom"), CauseUnknown, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cause, msg := Describe(tt.err)
			if cause != tt.cause || !strings.Contains(msg, tt.msg) {
				t.Errorf("Describe = %q, %q; want %q containing %q", cause, msg, tt.cause, tt.msg)
			}
		})
	}
	if c, m := Describe(nil); c != "" || m != "" {
		t.Errorf("Describe(nil) = %q, %q", c, m)
	}
}

// TestDescribeRealConnectErrors runs pgconn against addresses that fail,
// so Describe sees the wrapping pgconn really produces.
func TestDescribeRealConnectErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const pw = "hunter2-SECRET"
	cfg := parse(t, fmt.Sprintf("host=127.0.0.1 port=%d user=cdcd sslmode=disable connect_timeout=2", port))
	cfg.Password = pw
	_, err = pgconn.ConnectConfig(ctx, cfg)
	cause, msg := Describe(err)
	if cause != CauseTCPRefused || !strings.Contains(msg, fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Errorf("refused: Describe = %q, %q (err %v)", cause, msg, err)
	}
	if strings.Contains(msg, pw) || strings.Contains(err.Error(), pw) {
		t.Errorf("the password leaked: %q / %q", msg, err)
	}
}

// TestDSNError parses connection strings that carry a password and do not
// parse, including shapes pgconn's own masking cannot take apart: the
// error keeps the explanation and never the password.
func TestDSNError(t *testing.T) {
	const pw = "hunter2-SECRET"
	tests := []struct{ dsn, want string }{
		{"postgres://u:" + pw + "@h:x/db", "invalid port"},
		{"host=h password=" + pw + " sslmode=bogus", "sslmode is invalid"},
		{"host=h password='" + pw + " port=5432", "cannot parse the dsn"},
		{"postgres://u:" + pw + "%zz@h/db", "cannot parse the dsn"},
		{"postgres://u:`: " + pw + "@h:x/db", "cannot parse the dsn"},
		{"host=h password = " + pw + " bogus", "cannot parse the dsn"},
	}
	for _, tt := range tests {
		_, perr := pgconn.ParseConfig(tt.dsn)
		if perr == nil {
			t.Fatalf("%q parsed", tt.dsn)
		}
		err := DSNError(fmt.Errorf("wrapped: %w", perr))
		if strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DSNError(%q) = %q; want %q and no password", tt.dsn, err, tt.want)
		}
	}
	other := errors.New("not a parse error")
	if DSNError(other) != other {
		t.Errorf("DSNError changed an error that is not a parse error")
	}
}
