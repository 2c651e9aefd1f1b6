package config

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cdcd-dev/cdcd/test/stsstub"
)

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := Load("../config.example.toml")
	if err != nil {
		t.Fatalf("config.example.toml: %v", err)
	}
	if len(cfg.Streams) != 1 || cfg.Streams[0].Slot != "cdcd_orders" || cfg.Streams[0].Delivery.MaxInFlight != 4 ||
		cfg.Streams[0].Delivery.MemoryBudget != 32<<20 || cfg.Streams[0].Delivery.QueueBytes != 32<<20 {
		t.Fatalf("defaults not applied: %+v", cfg.Streams)
	}
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
		{"memory budget too small", minimal + "[stream.delivery]\nmemory_budget = 1000\n", []string{"stream[0].delivery.memory_budget", "1000", "1 MiB"}},
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
