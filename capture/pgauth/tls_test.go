package pgauth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

func TestTransportPolicy(t *testing.T) {
	dir := t.TempDir()
	ca := writeFile(t, dir, "ca.pem", newCA(t, "test ca").certPEM)
	tests := []struct {
		name    string
		src     Source
		dsn     string
		refused string // substring of the error, "" when allowed
	}{
		{"iam over verify-full", Source{IAMAuth: true}, "host=db.example.com user=u sslmode=verify-full", ""},
		{"iam over require", Source{IAMAuth: true}, "host=db.example.com user=u sslmode=require", "sslmode=require"},
		{"iam over verify-ca", Source{IAMAuth: true}, "host=db.example.com user=u sslmode=verify-ca sslrootcert=" + ca, "verify-ca"},
		{"iam over prefer", Source{IAMAuth: true}, "host=db.example.com user=u", "sslmode=require or prefer"},
		{"iam over disable", Source{IAMAuth: true}, "host=db.example.com user=u sslmode=disable", "plain-text"},
		{"iam over allow", Source{IAMAuth: true}, "host=db.example.com user=u sslmode=allow", "plain-text"},
		{"secret over require", Source{SecretID: "db"}, "host=10.0.0.5 user=u sslmode=require", "secret_id would send the database password"},
		{"secret, CA file upgrades require", Source{SecretID: "db", CAFile: ca}, "host=10.0.0.5 user=u sslmode=require", ""},
		{"iam, CA file upgrades prefer", Source{IAMAuth: true, CAFile: ca}, "host=db.example.com user=u", ""},
		{"secret to loopback in plain text", Source{SecretID: "db"}, "host=127.0.0.1 user=u sslmode=disable", ""},
		{"iam to localhost", Source{IAMAuth: true}, "host=localhost user=u sslmode=disable", ""},
		{"iam to ::1", Source{IAMAuth: true}, "host=::1 user=u sslmode=disable", ""},
		{"secret over a unix socket", Source{SecretID: "db"}, "host=/var/run/postgresql user=u", ""},
		{"file password over require is the operator's choice", Source{PasswordFile: "/x"}, "host=db.example.com user=u sslmode=require", ""},
		{"second host unverified", Source{SecretID: "db"}, "postgres://u@a.example.com,b.example.com/db?sslmode=verify-full", ""},
		{"iam over several hosts", Source{IAMAuth: true}, "postgres://u@a.example.com,b.example.com/db?sslmode=verify-full", "one host and port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.src.CheckDSN(tt.dsn)
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), tt.refused) {
				t.Fatalf("err = %v, want ErrInsecure mentioning %q", err, tt.refused)
			}
			if !strings.Contains(err.Error(), "sslmode=verify-full sslrootcert=/path/rds-ca.pem") && !strings.Contains(err.Error(), "list one host") {
				t.Errorf("err = %v: it should say how to fix it", err)
			}
			if cause, _ := Describe(err); cause != CauseTLSNotVerified && !strings.Contains(err.Error(), "one host") {
				t.Errorf("Describe cause = %q", cause)
			}
		})
	}
}

// TestConfigureRefusesBeforeSigning: an insecure configuration must fail
// before a token is signed or a secret is read, so nothing valuable exists
// in memory for a connection that will not be made.
func TestConfigureRefusesBeforeSigning(t *testing.T) {
	signed := false
	build := func(context.Context, string, string, string, aws.CredentialsProvider) (string, error) {
		signed = true
		return "tok", nil
	}
	p, err := New(Source{IAMAuth: true}, Options{Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""), Region: "us-east-1", BuildToken: build})
	if err != nil {
		t.Fatal(err)
	}
	cfg := parse(t, "host=db.example.com user=u sslmode=require")
	if err := p.Configure(context.Background(), cfg); !errors.Is(err, ErrInsecure) {
		t.Fatalf("err = %v, want ErrInsecure", err)
	}
	if signed || cfg.Password != "" {
		t.Error("a token was built for a refused connection")
	}
}

func TestSetVerifyFull(t *testing.T) {
	ca := newCA(t, "test ca")
	roots, err := LoadCAPool(writeFile(t, t.TempDir(), "ca.pem", ca.certPEM))
	if err != nil {
		t.Fatal(err)
	}
	cfg := parse(t, "host=a.example.com,b.example.com,/tmp/sock port=5432,5433,5432 user=u sslmode=prefer")
	SetVerifyFull(cfg, roots, "")
	type hostTLS struct {
		host       string
		port       uint16
		tls        bool
		serverName string
	}
	var got []hostTLS
	got = append(got, hostTLS{cfg.Host, cfg.Port, cfg.TLSConfig != nil, ""})
	if cfg.TLSConfig != nil {
		got[0].serverName = cfg.TLSConfig.ServerName
	}
	for _, fb := range cfg.Fallbacks {
		h := hostTLS{fb.Host, fb.Port, fb.TLSConfig != nil, ""}
		if fb.TLSConfig != nil {
			h.serverName = fb.TLSConfig.ServerName
			if fb.TLSConfig.InsecureSkipVerify || fb.TLSConfig.RootCAs != roots {
				t.Errorf("%s: TLS config is not verify-full with the bundle", fb.Host)
			}
		}
		got = append(got, h)
	}
	want := []hostTLS{
		{"a.example.com", 5432, true, "a.example.com"},
		{"b.example.com", 5433, true, "b.example.com"},
		{"/tmp/sock", 5432, false, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("hosts = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("host %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	cfg = parse(t, "host=127.0.0.1 port=15432 sslmode=disable")
	SetVerifyFull(cfg, roots, "mydb.example.com")
	if cfg.TLSConfig == nil || cfg.TLSConfig.ServerName != "mydb.example.com" {
		t.Errorf("tls_server_name not applied: %+v", cfg.TLSConfig)
	}
}

func TestLoadCAPool(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadCAPool(writeFile(t, dir, "empty.pem", []byte("not a certificate"))); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("garbage bundle: err = %v", err)
	}
	if _, err := LoadCAPool(dir + "/missing.pem"); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing bundle: err = %v", err)
	}
}
