package config

import (
	"strings"
	"testing"
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
		{"bad keyless_tables", strings.Replace(minimal, `tables = ["public.t"]`, "tables = [\"public.t\"]\nkeyless_tables = \"yes\"", 1), []string{"stream[0].keyless_tables", "refuse, full"}},
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
