package config

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/test/stsstub"
)

// TestExampleConfigIsValid: config.example.toml is valid, and is the
// production setup the README describes: the real AWS endpoints, the
// account left to STS, a stream role with its external id, the password
// from Secrets Manager over verify-full TLS, state in /var/lib/cdcd and the
// control plane on loopback.
func TestExampleConfigIsValid(t *testing.T) {
	text, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	// The CA bundle is read at load time; this machine has none at the
	// example's path.
	const caPath = `tls_ca_file = "/etc/cdcd/rds-ca.pem"`
	if !strings.Contains(string(text), caPath) {
		t.Fatalf("config.example.toml lacks %s", caPath)
	}
	cfg, err := Parse("config.example.toml", strings.Replace(string(text), caPath, fmt.Sprintf("tls_ca_file = %q", writeCA(t)), 1))
	if err != nil {
		t.Fatalf("config.example.toml: %v", err)
	}
	if len(cfg.Streams) != 1 || cfg.Streams[0].Slot != "cdcd_orders" || cfg.Streams[0].Delivery.MaxInFlight != 4 ||
		cfg.Streams[0].Delivery.MemoryBudget != 32<<20 || cfg.Streams[0].Delivery.QueueBytes != 32<<20 {
		t.Fatalf("defaults not applied: %+v", cfg.Streams)
	}
	a, cl, tg := cfg.AWS, cfg.Clusters[0], cfg.Streams[0].Target
	switch {
	case a.KinesisEndpoint != "" || a.STSEndpoint != "" || a.KMSEndpoint != "":
		t.Errorf("endpoint overrides in a production example: %+v", a)
	case a.Account != "":
		t.Errorf("aws.account %q: the example leaves it to STS", a.Account)
	case tg.RoleARN == "" || tg.ExternalID == "":
		t.Errorf("the stream writes without a role and external id: %+v", tg)
	case cl.Source.SecretID == "" || cl.Source.Method() != "secretsmanager" || cl.Source.CAFile == "":
		t.Errorf("the password does not come from a secret over a verified connection: %+v", cl.Source)
	case !filepath.IsAbs(cfg.StateDir) || !strings.HasPrefix(cfg.Listen, "127.0.0.1:"):
		t.Errorf("state_dir %q listen %q", cfg.StateDir, cfg.Listen)
	}
	if err := cfg.CheckOffline(); err != nil {
		t.Errorf("cdcd check on the example: %v", err)
	}
	docs, err := cfg.Policies("", "arn:aws:iam::123456789012:role/cdcd-daemon")
	if err != nil || len(docs) != 4 {
		t.Errorf("policies of the example: %d documents (base, trust, permissions, reader), %v", len(docs), err)
	}
}

// writeCA writes a self-signed CA certificate and returns its path.
func writeCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cdcd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const minimal = `
state_dir = "/tmp/x"
[[cluster]]
name = "db"
dsn = "postgres://u@h/db"
[[stream]]
name = "s"
cluster = "db"
tables = ["public.t"]
[stream.target]
kinesis_stream = "k"
`

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string
	}{
		{"unknown top-level key", minimal + "\nstat_dir = 1\n", []string{"unknown key", "stat_dir"}},
		{"unknown nested key", strings.Replace(minimal, `kinesis_stream = "k"`, "kinesis_stream = \"k\"\nrole = \"x\"", 1), []string{"unknown key", "stream.target.role"}},
		{"syntax error", "state_dir = ", []string{"line 1"}},
		{"bad ordering", strings.Replace(minimal, `tables = ["public.t"]`, "tables = [\"public.t\"]\nordering = \"SORTED\"", 1), []string{"stream[0].ordering", "SORTED", "UNORDERED, ROW"}},
		{"bad aggregation", strings.Replace(minimal, `tables = ["public.t"]`, "tables = [\"public.t\"]\naggregation = \"zip\"", 1), []string{"stream[0].aggregation", "zip", "none, kpl"}},
		{"kpl in ROW ordering", strings.Replace(minimal, `tables = ["public.t"]`, "tables = [\"public.t\"]\nordering = \"ROW\"\naggregation = \"kpl\"", 1), []string{"stream[0].aggregation", `needs ordering = "UNORDERED"`}},
		{"unqualified table", strings.Replace(minimal, `"public.t"`, `"t"`, 1), []string{"stream[0].tables", "schema-qualified"}},
		{"unknown cluster", strings.Replace(minimal, `cluster = "db"`, `cluster = "nope"`, 1), []string{"stream[0].cluster", "nope"}},
		{"password in url", strings.Replace(minimal, "postgres://u@h/db", "postgres://u:secret@h/db", 1), []string{"cluster[0].dsn", "password_env"}},
		{"password keyword", strings.Replace(minimal, "postgres://u@h/db", "host=h user=u password=secret", 1), []string{"cluster[0].dsn", "password"}},
		{"missing target", strings.Replace(minimal, `kinesis_stream = "k"`, "", 1), []string{"stream[0].target.kinesis_stream", "required"}},
		{"role without external id", strings.Replace(minimal, `kinesis_stream = "k"`, "kinesis_stream = \"k\"\nrole_arn = \"arn:aws:iam::123456789012:role/r\"", 1), []string{"stream[0].target.external_id"}},
		{"bad duration", "failure_threshold = \"a week\"\n" + minimal, []string{"failure_threshold", "duration"}},
		{"bad identifier", strings.Replace(minimal, `name = "s"`, "name = \"s\"\nidentifier = \"ABC\"", 1), []string{"stream[0].identifier", "26 characters"}},
		{"bad region", minimal + "\n[aws]\nregion = \"moon\"\n", []string{"aws.region", "moon"}},
		{"bad account", minimal + "\n[aws]\naccount = \"000\"\n", []string{"aws.account", "12-digit"}},
		{"bad kinesis stream name", strings.Replace(minimal, `kinesis_stream = "k"`, `kinesis_stream = "a b"`, 1), []string{"stream[0].target.kinesis_stream", "not a Kinesis stream name"}},
		{"alias as cluster key", strings.Replace(minimal, `dsn = "postgres://u@h/db"`, "dsn = \"postgres://u@h/db\"\ncluster_key_arn = \"arn:aws:kms:us-east-1:123456789012:alias/cdcd\"", 1), []string{"cluster[0].cluster_key_arn", "not a KMS key ARN"}},
		{"bad cluster identifier", strings.Replace(minimal, `dsn = "postgres://u@h/db"`, "dsn = \"postgres://u@h/db\"\nidentifier = \"../etc\"", 1), []string{"cluster[0].identifier", "26 characters"}},
		{"bad keyless_tables", strings.Replace(minimal, `tables = ["public.t"]`, "tables = [\"public.t\"]\nkeyless_tables = \"yes\"", 1), []string{"stream[0].keyless_tables", "refuse, full"}},
		{"memory budget too small", minimal + "[stream.delivery]\nmemory_budget = 1000\n", []string{"stream[0].delivery.memory_budget", "1000", "1 MiB"}},
		{"spill cap too small", minimal + "[stream.delivery]\nspill_max_bytes = 1000\n", []string{"stream[0].delivery.spill_max_bytes", "1000", "1 MiB"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.toml", tc.text)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "c.toml") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	text := strings.Replace(minimal, `tables = ["public.t"]`, "tables = []\nordering = \"X\"", 1)
	_, err := Parse("c.toml", text)
	if err == nil || !strings.Contains(err.Error(), "tables") || !strings.Contains(err.Error(), "ordering") {
		t.Fatalf("want both problems, got %v", err)
	}
}

func TestHasPassword(t *testing.T) {
	for dsn, want := range map[string]bool{
		"postgres://u@h:5432/db?sslmode=verify-full": false,
		"postgres://u:pw@h/db":                       true,
		"postgres://h/db?password=pw":                true,
		"host=h user=u dbname=d":                     false,
		"host=h password=pw":                         true,
		"host=h password = pw":                       true,
		"host=h passfile=/x":                         false,
		"postgres://u@h/db?application_name=a:b":     false,
	} {
		if got := hasPassword(dsn); got != want {
			t.Errorf("hasPassword(%q) = %v, want %v", dsn, got, want)
		}
	}
}

func TestNewLogger(t *testing.T) {
	var text, js strings.Builder
	LogConfig{Level: "warn", Format: "text"}.NewLogger(&text).Info("dropped")
	LogConfig{Level: "debug", Format: "json"}.NewLogger(&js).Debug("kept", "k", 1)
	if text.Len() != 0 {
		t.Errorf("info at level warn: %q", text.String())
	}
	if !strings.HasPrefix(js.String(), `{"time":`) || !strings.Contains(js.String(), `"msg":"kept","k":1`) {
		t.Errorf("debug at level debug, as JSON: %q", js.String())
	}
}

func TestOwnPublication(t *testing.T) {
	for _, tc := range []struct {
		line string
		want bool
	}{{"", true}, {"own_publication = true", true}, {"own_publication = false", false}} {
		cfg, err := Parse("c.toml", strings.Replace(minimal, `tables = ["public.t"]`, "tables = [\"public.t\"]\n"+tc.line, 1))
		if err != nil {
			t.Fatalf("%q: %v", tc.line, err)
		}
		if got := cfg.Streams[0].OwnsPublication(); got != tc.want {
			t.Errorf("%q: OwnsPublication() = %v, want %v", tc.line, got, tc.want)
		}
	}
}

func TestCheckOffline(t *testing.T) {
	const role = "\nrole_arn = \"arn:aws:iam::123456789012:role/cdcd-s\"\nexternal_id = \"ext-1\""
	cases := []struct {
		name, text, want string
	}{
		{"no account, stream of the base identity", minimal, "stream s: aws.account is not set and cdcd check runs offline: set it, or use --online"},
		{"account set", minimal + "[aws]\naccount = \"123456789012\"\n", ""},
		{"stream ARN set", strings.Replace(minimal, `kinesis_stream = "k"`, "kinesis_stream = \"k\"\nkinesis_stream_arn = \"arn:aws:kinesis:us-east-1:123456789012:stream/k\"", 1), ""},
		{"role not allowed", strings.Replace(minimal, `kinesis_stream = "k"`, `kinesis_stream = "k"`+role, 1), "role_arn_allow is empty"},
		{"role allowed", strings.Replace(minimal, `kinesis_stream = "k"`, `kinesis_stream = "k"`+role, 1) + "[aws]\nrole_arn_allow = [\"arn:aws:iam::123456789012:role/cdcd-*\"]\n", ""},
		{"external id STS refuses", strings.Replace(minimal, `kinesis_stream = "k"`, `kinesis_stream = "k"`+strings.Replace(role, "ext-1", "a b", 1), 1) + "[aws]\nrole_arn_allow = [\"arn:aws:iam::123456789012:role/cdcd-*\"]\n", "stream s target: ExternalID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("c.toml", tc.text)
			if err != nil {
				t.Fatalf("an account left out is valid: %v", err)
			}
			err = cfg.CheckOffline()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("CheckOffline = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestResolveAccount: an account left out is the base identity's, as STS
// GetCallerIdentity reports it; one that is set is kept, without a call.
func TestResolveAccount(t *testing.T) {
	stsstub.UseEnvironment(t, "AKIDFROMENVIRONMENT")
	sts := stsstub.New(t)
	sts.SetCaller("arn:aws:sts::444455556666:assumed-role/cdcd-daemon/i-0abc")
	text := minimal + fmt.Sprintf("[aws]\nsts_endpoint = %q\n", sts.URL())
	cfg, err := Parse("c.toml", text)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ResolveAccount(context.Background()); err != nil || cfg.AWS.Account != "444455556666" {
		t.Fatalf("ResolveAccount: account %q, %v", cfg.AWS.Account, err)
	}
	if arn, err := cfg.KinesisStreamARN(&cfg.Streams[0]); err != nil || arn != "arn:aws:kinesis:us-east-1:444455556666:stream/k" {
		t.Errorf("stream ARN in the resolved account: %q, %v", arn, err)
	}
	cfg, err = Parse("c.toml", text+"account = \"123456789012\"\n")
	if err != nil {
		t.Fatal(err)
	}
	calls := len(sts.Requests())
	if err := cfg.ResolveAccount(context.Background()); err != nil || cfg.AWS.Account != "123456789012" || len(sts.Requests()) != calls {
		t.Errorf("a configured account: %q, %v, %d STS calls", cfg.AWS.Account, err, len(sts.Requests())-calls)
	}
}
