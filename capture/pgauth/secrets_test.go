package pgauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// fakeSecrets is a hand-written SecretsGetter.
type fakeSecrets struct {
	getSecretValue func(ctx context.Context, in *secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error)
}

func (f *fakeSecrets) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return f.getSecretValue(ctx, in)
}

var _ SecretsGetter = (*fakeSecrets)(nil)

func TestParseSecret(t *testing.T) {
	tests := []struct {
		name, text string
		want       secretValue
		err        string
	}{
		{"rds managed", `{"username":"postgres","password":"pw-SECRET"}`, secretValue{username: "postgres", password: "pw-SECRET"}, ""},
		{"rotation template", `{"engine":"postgres","host":"db.example.com","username":"cdcd","password":"pw-SECRET","dbname":"app","port":5432}`,
			secretValue{username: "cdcd", password: "pw-SECRET", host: "db.example.com", dbname: "app", port: 5432}, ""},
		{"port as string", `{"password":"pw-SECRET","port":"6432"}`, secretValue{password: "pw-SECRET", port: 6432}, ""},
		{"null fields", `{"password":"pw-SECRET","host":null,"port":null}`, secretValue{password: "pw-SECRET"}, ""},
		{"not json", `pw-SECRET`, secretValue{}, "not the JSON object"},
		{"truncated json", `{"password":"pw-SECRET`, secretValue{}, "not the JSON object"},
		{"no password", `{"username":"cdcd"}`, secretValue{}, `no "password" field`},
		{"password not a string", `{"password":12345}`, secretValue{}, `"password" is not a string`},
		{"bad port", `{"password":"pw-SECRET","port":"x-SECRET"}`, secretValue{}, `"port" is not a TCP port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSecret(tt.text)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "SECRET") {
					t.Errorf("error quotes the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

// clock is a settable Now for TTL tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestSecretCacheAndInvalidation(t *testing.T) {
	var mu sync.Mutex
	fetches, password := 0, "first-SECRET"
	fake := &fakeSecrets{getSecretValue: func(_ context.Context, in *secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error) {
		mu.Lock()
		defer mu.Unlock()
		if aws.ToString(in.SecretId) != "prod/cdcd" {
			t.Errorf("SecretId = %q", aws.ToString(in.SecretId))
		}
		fetches++
		return &secretsmanager.GetSecretValueOutput{
			SecretString: aws.String(fmt.Sprintf(`{"username":"cdcd_app","password":%q}`, password)),
			VersionId:    aws.String(fmt.Sprintf("v%d", fetches)),
		}, nil
	}}
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	var logs logBuffer
	p, err := New(Source{SecretID: "prod/cdcd"}, Options{Secrets: fake, SecretTTL: time.Minute, Now: clk.Now, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	connect := func() string {
		t.Helper()
		cfg := parse(t, "host=127.0.0.1 user=ignored sslmode=disable")
		if err := p.Configure(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.User != "cdcd_app" {
			t.Errorf("user = %q, want the secret's username", cfg.User)
		}
		return cfg.Password
	}
	// The catalog and replication connections of one reconnect, opened
	// concurrently, share one fetch.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { connect() })
	}
	wg.Wait()
	if fetches != 1 {
		t.Fatalf("%d fetches for concurrent connections, want 1", fetches)
	}

	password = "second-SECRET"
	if got := connect(); got != "first-SECRET" {
		t.Errorf("within the TTL: password %q, want the cached one", got)
	}
	p.AuthFailed()
	if got := connect(); got != "second-SECRET" || fetches != 2 {
		t.Errorf("after AuthFailed: password %q after %d fetches, want the rotated one from a new fetch", got, fetches)
	}

	password = "third-SECRET"
	clk.advance(61 * time.Second)
	if got := connect(); got != "third-SECRET" || fetches != 3 {
		t.Errorf("after the TTL: password %q after %d fetches, want a new fetch", got, fetches)
	}
	if l := logs.String(); strings.Contains(l, "SECRET") || !strings.Contains(l, "secret_version=v3") {
		t.Errorf("log should name versions, never values:\n%s", l)
	}
}

func TestSecretEndpoint(t *testing.T) {
	dir := t.TempDir()
	ca := writeFile(t, dir, "ca.pem", newCA(t, "test ca").certPEM)
	fake := &fakeSecrets{getSecretValue: func(context.Context, *secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error) {
		return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(`{"username":"u","password":"pw-SECRET","host":"green.example.com","port":6543,"dbname":"orders"}`)}, nil
	}}
	p, err := New(Source{SecretID: "db", SecretEndpoint: true, CAFile: ca}, Options{Secrets: fake})
	if err != nil {
		t.Fatal(err)
	}
	cfg := parse(t, "host=blue.example.com,blue2.example.com dbname=app user=x sslmode=verify-full")
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "green.example.com" || cfg.Port != 6543 || cfg.Database != "orders" || len(cfg.Fallbacks) != 0 {
		t.Errorf("endpoint = %s:%d/%s (+%d fallbacks), want the secret's", cfg.Host, cfg.Port, cfg.Database, len(cfg.Fallbacks))
	}
	if cfg.TLSConfig == nil || cfg.TLSConfig.ServerName != "green.example.com" {
		t.Errorf("TLS must verify the secret's host, got %+v", cfg.TLSConfig)
	}

	// Without secret_endpoint the DSN decides where to connect.
	p, _ = New(Source{SecretID: "db"}, Options{Secrets: fake})
	cfg = parse(t, "host=blue.example.com dbname=app user=x sslmode=verify-full")
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "blue.example.com" || cfg.Database != "app" {
		t.Errorf("endpoint = %s/%s, want the dsn's", cfg.Host, cfg.Database)
	}
}

// fakeSecretsManager is an httptest server speaking the Secrets Manager
// JSON protocol, so the real SDK client (signing, serialization, error
// decoding) is exercised.
type fakeSecretsManager struct {
	mu      sync.Mutex
	values  map[string]string // SecretId → SecretString
	version int
	calls   int
}

func (f *fakeSecretsManager) set(id, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.values[id] = value
	f.version++
}

func (f *fakeSecretsManager) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeSecretsManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	fail := func(status int, typ, msg string) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	if got := r.Header.Get("X-Amz-Target"); got != "secretsmanager.GetSecretValue" {
		fail(400, "InvalidRequestException", "unexpected target "+got)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		fail(400, "MissingAuthenticationTokenException", "unsigned request")
		return
	}
	body, _ := io.ReadAll(r.Body)
	var in struct{ SecretId string }
	if err := json.Unmarshal(body, &in); err != nil {
		fail(400, "InvalidRequestException", "bad body")
		return
	}
	f.calls++
	v, ok := f.values[in.SecretId]
	if !ok {
		fail(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"ARN":          "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + in.SecretId + "-AbCdEf",
		"Name":         in.SecretId,
		"SecretString": v,
		"VersionId":    fmt.Sprintf("00000000-0000-0000-0000-%012d", f.version),
	})
}

// newSecretsManager starts the fake and returns a real SDK client for it.
// The client is built from Options, not config.LoadDefaultConfig, so the
// machine's AWS_CA_BUNDLE and profiles play no part.
func newSecretsManager(t testing.TB) (*fakeSecretsManager, *secretsmanager.Client) {
	fake := &fakeSecretsManager{values: map[string]string{}}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	client := secretsmanager.New(secretsmanager.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "aws-SECRET-key", ""),
		BaseEndpoint:     aws.String(srv.URL),
		RetryMaxAttempts: 1,
	})
	return fake, client
}

func TestSecretsManagerProtocol(t *testing.T) {
	fake, client := newSecretsManager(t)
	fake.set("prod/cdcd", `{"username":"cdcd","password":"one-SECRET"}`)
	p, err := New(Source{SecretID: "prod/cdcd"}, Options{Secrets: client, SecretTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cfg := parse(t, "host=127.0.0.1 sslmode=disable")
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.User != "cdcd" || cfg.Password != "one-SECRET" {
		t.Errorf("login = %s/%s", cfg.User, cfg.Password)
	}
	fake.set("prod/cdcd", `{"username":"cdcd","password":"two-SECRET"}`)
	p.AuthFailed()
	if err := p.Configure(context.Background(), cfg); err != nil || cfg.Password != "two-SECRET" || fake.count() != 2 {
		t.Errorf("after AuthFailed: password %q, %d calls, err %v", cfg.Password, fake.count(), err)
	}

	missing, _ := New(Source{SecretID: "prod/missing"}, Options{Secrets: client})
	err = missing.Configure(context.Background(), parse(t, "host=127.0.0.1 sslmode=disable"))
	var notFound interface{ ErrorCode() string }
	if !errors.Is(err, ErrCredentials) || !errors.As(err, &notFound) || notFound.ErrorCode() != "ResourceNotFoundException" {
		t.Fatalf("missing secret: err = %v", err)
	}
	if cause, msg := Describe(err); cause != CauseCredentials || !strings.Contains(msg, "prod/missing") {
		t.Errorf("Describe = %q, %q", cause, msg)
	}
}
