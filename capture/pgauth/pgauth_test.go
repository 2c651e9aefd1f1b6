package pgauth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/jackc/pgx/v5/pgconn"
)

func parse(t *testing.T, dsn string) *pgconn.Config {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		src  Source
		want []string // substrings, one per expected error
	}{
		{"none", Source{}, nil},
		{"file", Source{PasswordFile: "/run/secrets/pg"}, nil},
		{"iam with role", Source{IAMAuth: true, RoleARN: "arn:aws:iam::123456789012:role/cdcd-source", ResourceID: "db-ABCDEFGHIJKL01234"}, nil},
		{"two sources", Source{PasswordEnv: "PGPASS", SecretID: "prod/db"}, []string{"c.password_env: and secret_id are both set"}},
		{"secret_endpoint alone", Source{SecretEndpoint: true}, []string{"c.secret_endpoint: needs secret_id"}},
		{"bad secret arn", Source{SecretID: "arn:aws:s3:::bucket"}, []string{"c.secret_id:"}},
		{"alias as key", Source{SecretID: "db", SecretKMSKey: "arn:aws:kms:us-east-1:123456789012:alias/db"}, []string{"aliases do not work"}},
		{"role without aws", Source{PasswordFile: "f", RoleARN: "arn:aws:iam::123456789012:role/r"}, []string{"c.aws_role_arn: is only used"}},
		{"bad region", Source{IAMAuth: true, Region: "virginia"}, []string{"c.aws_region:"}},
		{"bad resource id", Source{IAMAuth: true, ResourceID: "mydb"}, []string{"c.db_resource_id:"}},
		{"server name without ca", Source{TLSServerName: "db.example.com"}, []string{"c.tls_server_name: needs tls_ca_file"}},
		{"iam endpoint without port", Source{IAMAuth: true, IAMEndpoint: "db.example.com"}, []string{"c.iam_endpoint: \"db.example.com\" is not host:port"}},
		{"iam endpoint without iam", Source{PasswordFile: "f", IAMEndpoint: "db.example.com:5432"}, []string{"c.iam_endpoint: needs iam_auth"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.src.Validate("c")
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i], w)
				}
			}
		})
	}
}

func TestNewNeedsCollaborators(t *testing.T) {
	if _, err := New(Source{SecretID: "db"}, Options{}); err == nil {
		t.Error("secret_id without a Secrets Manager client: want an error")
	}
	if _, err := New(Source{IAMAuth: true}, Options{}); err == nil {
		t.Error("iam_auth without credentials: want an error")
	}
}

func TestEnvPassword(t *testing.T) {
	env := map[string]string{"PG_PW": "env-SECRET-1"}
	p, err := New(Source{PasswordEnv: "PG_PW"}, Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	cfg := parse(t, "host=db.example.com user=cdcd sslmode=disable")
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Password != "env-SECRET-1" {
		t.Errorf("password = %q", cfg.Password)
	}
	delete(env, "PG_PW")
	err = p.Configure(context.Background(), parse(t, "host=db.example.com user=cdcd"))
	if !errors.Is(err, ErrCredentials) || !strings.Contains(err.Error(), "PG_PW") {
		t.Errorf("unset variable: err = %v, want ErrCredentials naming PG_PW", err)
	}
}

func TestFilePasswordIsReadForEachConnection(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pw")
	p, err := New(Source{PasswordFile: path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, content := range []string{"first-SECRET\n", "second-SECRET\r\n", "third SECRET with spaces "} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := parse(t, "host=db.example.com user=cdcd")
		if err := p.Configure(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimRight(content, "\r\n"); cfg.Password != want {
			t.Errorf("connection %d: password = %q, want %q", i, cfg.Password, want)
		}
	}
	if err := os.WriteFile(path, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Configure(context.Background(), parse(t, "host=db.example.com")); !errors.Is(err, ErrCredentials) {
		t.Errorf("empty file: err = %v, want ErrCredentials", err)
	}
	os.Remove(path)
	err = p.Configure(context.Background(), parse(t, "host=db.example.com"))
	if cause, _ := Describe(err); cause != CauseCredentials {
		t.Errorf("missing file: cause = %q (%v), want %q", cause, err, CauseCredentials)
	}
}

type tokenCall struct{ endpoint, region, user string }

func TestIAMTokenPerConnection(t *testing.T) {
	dir := t.TempDir()
	ca := writeFile(t, dir, "ca.pem", newCA(t, "rds test ca").certPEM)
	creds := credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI-SECRET-KEY", "")
	tests := []struct {
		name string
		src  Source
		dsn  string
		want tokenCall
	}{
		{"region from the RDS host name", Source{IAMAuth: true},
			"host=mydb.abc123xyz.eu-west-1.rds.amazonaws.com port=5432 user=cdcd_reader dbname=app sslmode=verify-full",
			tokenCall{"mydb.abc123xyz.eu-west-1.rds.amazonaws.com:5432", "eu-west-1", "cdcd_reader"}},
		{"configured region wins", Source{IAMAuth: true, Region: "ap-southeast-2"},
			"host=mydb.abc123xyz.eu-west-1.rds.amazonaws.com port=5433 user=u sslmode=verify-full",
			tokenCall{"mydb.abc123xyz.eu-west-1.rds.amazonaws.com:5433", "ap-southeast-2", "u"}},
		{"daemon region for other names", Source{IAMAuth: true, CAFile: ca},
			"host=db.internal.example port=6432 user=u sslmode=require",
			tokenCall{"db.internal.example:6432", "us-east-1", "u"}},
		{"tunnel: signed for the server name", Source{IAMAuth: true, CAFile: ca, TLSServerName: "mydb.abc123xyz.us-west-2.rds.amazonaws.com"},
			"host=127.0.0.1 port=15432 user=u",
			tokenCall{"mydb.abc123xyz.us-west-2.rds.amazonaws.com:15432", "us-west-2", "u"}},
		{"tunnel on another port", Source{IAMAuth: true, CAFile: ca, TLSServerName: "mydb.abc123xyz.us-west-2.rds.amazonaws.com", IAMEndpoint: "mydb.abc123xyz.us-west-2.rds.amazonaws.com:5432"},
			"host=127.0.0.1 port=15432 user=u",
			tokenCall{"mydb.abc123xyz.us-west-2.rds.amazonaws.com:5432", "us-west-2", "u"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			var calls []tokenCall
			build := func(_ context.Context, endpoint, region, user string, c aws.CredentialsProvider) (string, error) {
				if v, err := c.Retrieve(context.Background()); err != nil || v.AccessKeyID != "AKIDEXAMPLE" {
					t.Error("token signed with other credentials than the ones passed in")
				}
				calls = append(calls, tokenCall{endpoint, region, user})
				return fmt.Sprintf("%s/?Action=connect&DBUser=%s&X-Amz-Signature=TOKEN-SECRET-%d", endpoint, user, len(calls)), nil
			}
			p, err := New(tt.src, Options{Credentials: creds, Region: "us-east-1", BuildToken: build, Logger: logs.logger()})
			if err != nil {
				t.Fatal(err)
			}
			var passwords []string
			for range 2 {
				cfg := parse(t, tt.dsn)
				if err := p.Configure(context.Background(), cfg); err != nil {
					t.Fatal(err)
				}
				passwords = append(passwords, cfg.Password)
			}
			if len(calls) != 2 {
				t.Fatalf("%d tokens built for 2 connections, want one each", len(calls))
			}
			for i, c := range calls {
				if c != tt.want {
					t.Errorf("token %d built for %+v, want %+v", i, c, tt.want)
				}
			}
			if passwords[0] == passwords[1] || !strings.Contains(passwords[1], "TOKEN-SECRET-2") {
				t.Errorf("connections got passwords %q: want a fresh token each", passwords)
			}
			if strings.Contains(logs.String(), "TOKEN-SECRET") || strings.Contains(logs.String(), "X-Amz-Signature") {
				t.Errorf("a token reached the log:\n%s", logs.String())
			}
			if !strings.Contains(logs.String(), "source login prepared") {
				t.Errorf("want a debug line per connection, got:\n%s", logs.String())
			}
		})
	}
}

func TestIAMTokenFromTheSDK(t *testing.T) {
	creds := credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI-SECRET-KEY", "")
	var logs logBuffer
	p, err := New(Source{IAMAuth: true}, Options{Credentials: creds, Region: "us-east-1", Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := parse(t, "host=mydb.abc.us-east-2.rds.amazonaws.com port=5432 user=cdcd sslmode=verify-full")
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mydb.abc.us-east-2.rds.amazonaws.com:5432?Action=connect", "DBUser=cdcd", "us-east-2%2Frds-db%2Faws4_request", "X-Amz-Expires=900"} {
		if !strings.Contains(cfg.Password, want) {
			t.Errorf("token %q lacks %q", cfg.Password, want)
		}
	}
	if strings.Contains(logs.String(), "X-Amz") || strings.Contains(logs.String(), "SECRET-KEY") {
		t.Errorf("a token reached the log:\n%s", logs.String())
	}
}

func TestIAMTokenError(t *testing.T) {
	build := func(context.Context, string, string, string, aws.CredentialsProvider) (string, error) {
		return "", errors.New("no EC2 IMDS role found")
	}
	p, err := New(Source{IAMAuth: true}, Options{Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""), BuildToken: build})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Configure(context.Background(), parse(t, "host=db.example.com user=u sslmode=verify-full"))
	if !strings.Contains(err.Error(), "needs a region") {
		t.Errorf("no region anywhere: err = %v", err)
	}
	p.opts.Region = "us-east-1"
	err = p.Configure(context.Background(), parse(t, "host=db.example.com user=u sslmode=verify-full"))
	if cause, msg := Describe(err); cause != CauseCredentials || !strings.Contains(msg, "IMDS") {
		t.Errorf("Describe = %q, %q", cause, msg)
	}
}

func TestRDSHostRegion(t *testing.T) {
	for host, want := range map[string]string{
		"mydb.abc123xyz.eu-west-1.rds.amazonaws.com":          "eu-west-1",
		"mydb.cluster-abc123.us-gov-west-1.rds.amazonaws.com": "us-gov-west-1",
		"mydb.abc123xyz.cn-north-1.rds.amazonaws.com.cn":      "cn-north-1",
		"us-east-1.rds.amazonaws.com":                         "",
		"mydb.abc123xyz.moon.rds.amazonaws.com":               "",
		"mydb.abc123xyz.eu-west-1.rds.amazonaws.com.evil":     "",
		"db.internal.example":                                 "",
		"127.0.0.1":                                           "",
	} {
		if got := rdsHostRegion(host); got != want {
			t.Errorf("rdsHostRegion(%q) = %q, want %q", host, got, want)
		}
	}
}
