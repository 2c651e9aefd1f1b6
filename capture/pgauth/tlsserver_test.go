package pgauth

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// tlsCluster is a private PostgreSQL with ssl=on and a certificate for
// "localhost" and 127.0.0.1 signed by ca. The shared test server runs
// without TLS; changing its settings would disturb other packages' tests.
type tlsCluster struct {
	port   int
	ca     *testCA
	caFile string
}

// startTLSCluster runs initdb and pg_ctl from env.PGBin, as the postgres OS
// user when the test runs as root (initdb refuses root), on a free port,
// and stops the cluster when the test ends.
func startTLSCluster(t *testing.T, env testenv.Env) *tlsCluster {
	t.Helper()
	base, err := os.MkdirTemp("", "cdcd-pgauth-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	data, sock := filepath.Join(base, "data"), filepath.Join(base, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		t.Fatal(err)
	}
	var asPostgres []string
	chown := func(string) {}
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, initdb needs the postgres OS user: %v", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		chown = func(path string) {
			if err := os.Chown(path, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		asPostgres = []string{"runuser", "-u", "postgres", "--"}
	}
	chown(base)
	chown(sock)
	run := func(name string, args ...string) {
		t.Helper()
		argv := append(append(append([]string{}, asPostgres...), filepath.Join(env.PGBin, name)), args...)
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(base, "postgres.log"))
			t.Fatalf("%s: %v\n%s\n%s", strings.Join(argv, " "), err, out, log)
		}
	}
	run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "--no-instructions", "-E", "UTF8")

	ca := newCA(t, "cdcd pgauth test CA")
	certPEM, keyPEM, _ := ca.issue(t, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	for name, pem := range map[string][]byte{"server.crt": certPEM, "server.key": keyPEM} {
		chown(writeFile(t, data, name, pem))
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c fsync=off", port, sock)
	run("pg_ctl", "-D", data, "-l", filepath.Join(base, "postgres.log"), "-w", "-t", "30", "-o", opts, "start")
	t.Cleanup(func() {
		argv := append(append(append([]string{}, asPostgres...), filepath.Join(env.PGBin, "pg_ctl")), "-D", data, "-m", "immediate", "-w", "stop")
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Errorf("stop the TLS cluster: %v\n%s", err, out)
		}
	})
	return &tlsCluster{port: port, ca: ca, caFile: writeFile(t, t.TempDir(), "ca.pem", ca.certPEM)}
}

func (c *tlsCluster) dsn(host, extra string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres connect_timeout=5 %s", host, c.port, extra)
}

// connectTLS connects through a Provider for src and reports whether the
// session is TLS.
func connectTLS(t *testing.T, src Source, opts Options, dsn string) (bool, error) {
	t.Helper()
	p, err := New(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Configure(ctx, cfg); err != nil {
		return false, err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer conn.Close(ctx)
	_, isTLS := conn.Conn().(*tls.Conn)
	return isTLS, nil
}

func TestTLSAgainstPrivateCluster(t *testing.T) {
	env := testenv.Require(t)
	c := startTLSCluster(t, env)
	otherCA := writeFile(t, t.TempDir(), "other-ca.pem", newCA(t, "some other CA").certPEM)

	t.Run("verify-full with the CA file", func(t *testing.T) {
		for _, host := range []string{"localhost", "127.0.0.1"} {
			// sslmode=disable in the dsn: tls_ca_file overrides it.
			isTLS, err := connectTLS(t, Source{CAFile: c.caFile}, Options{}, c.dsn(host, "sslmode=disable"))
			if err != nil || !isTLS {
				t.Fatalf("%s: tls=%v err=%v", host, isTLS, err)
			}
		}
	})
	t.Run("verify-full from the dsn", func(t *testing.T) {
		isTLS, err := connectTLS(t, Source{}, Options{}, c.dsn("localhost", "sslmode=verify-full sslrootcert="+c.caFile))
		if err != nil || !isTLS {
			t.Fatalf("tls=%v err=%v", isTLS, err)
		}
	})
	t.Run("without the CA", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			src  Source
			dsn  string
		}{
			{"system roots", Source{}, c.dsn("localhost", "sslmode=verify-full")},
			{"another CA", Source{CAFile: otherCA}, c.dsn("localhost", "")},
		} {
			_, err := connectTLS(t, tc.src, Options{}, tc.dsn)
			cause, msg := Describe(err)
			if cause != CauseTLSUnknownAuthority || !strings.Contains(msg, "not signed by a CA in the trusted bundle") {
				t.Errorf("%s: Describe = %q, %q (err %v)", tc.name, cause, msg, err)
			}
		}
	})
	t.Run("wrong host name", func(t *testing.T) {
		_, err := connectTLS(t, Source{CAFile: c.caFile, TLSServerName: "db.example.com"}, Options{}, c.dsn("127.0.0.1", ""))
		cause, msg := Describe(err)
		if cause != CauseTLSHostname || !strings.Contains(msg, "db.example.com") || !strings.Contains(msg, "host name mismatch") {
			t.Errorf("Describe = %q, %q (err %v)", cause, msg, err)
		}
	})
	t.Run("IAM token over verify-full through a tunnel address", func(t *testing.T) {
		// The server trusts every login, so the token is not checked; what
		// is tested is that Configure's whole path yields a working,
		// verified connection and signs the token for the server name.
		var endpoint string
		build := func(_ context.Context, ep, _, _ string, _ aws.CredentialsProvider) (string, error) {
			endpoint = ep
			return "token-SECRET", nil
		}
		var logs logBuffer
		isTLS, err := connectTLS(t, Source{IAMAuth: true, CAFile: c.caFile, TLSServerName: "localhost"},
			Options{Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""), Region: "us-east-1", BuildToken: build, Logger: logs.logger()},
			c.dsn("127.0.0.1", "sslmode=require"))
		if err != nil || !isTLS {
			t.Fatalf("tls=%v err=%v", isTLS, err)
		}
		if want := fmt.Sprintf("localhost:%d", c.port); endpoint != want {
			t.Errorf("token signed for %q, want %q", endpoint, want)
		}
		assertNoSecret(t, []string{"token-SECRET"}, logs.String())
	})
}
