package config

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// FuzzParse: Parse never panics; it returns either a configuration or an
// error naming the file, never both; what it accepts passes Validate, has
// every default applied, and encodes back to TOML that Parse accepts as the
// same configuration.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../config.example.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(example))
	f.Add(minimal)
	f.Add(minimal + "[stream.delivery]\nmax_in_flight = 64\nlinger = \"1ms\"\nstatus_interval = \"30s\"\n")
	f.Add(strings.Replace(minimal, `name = "s"`, "name = \"a-b\"\nslot = \"x\"\nordering = \"ROW\"", 1))
	f.Add(strings.Replace(minimal, `dsn = "postgres://u@h/db"`,
		"dsn = \"host=db.example.com user=u sslmode=verify-full\"\niam_auth = true\ntls_ca_file = \"/nonexistent\"", 1))
	f.Add(minimal + "\n[[cluster]]\nname = \"db\"\ndsn = \"postgres://u@h/db\"\n")
	f.Add("failure_threshold = \"1s\"\n" + minimal + "[stream.target]\nsession_duration = \"12h\"\n")
	f.Add("state_dir = 1")
	f.Add("[[stream]]\n[[stream]]\nname = \"\"")
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := Parse("f.toml", text)
		if err != nil {
			if cfg != nil {
				t.Fatal("Parse returned a configuration and an error")
			}
			if !strings.HasPrefix(err.Error(), "f.toml: ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		checkAccepted(t, cfg)
		enc := encodeTOML(t, cfg)
		again, err := Parse("f.toml", enc)
		if err != nil {
			t.Fatalf("accepted configuration encodes to TOML that Parse refuses: %v\n%s", err, enc)
		}
		if enc2 := encodeTOML(t, again); enc2 != enc {
			t.Fatalf("round trip changed the configuration:\n%s\n---\n%s", enc, enc2)
		}
	})
}

// checkAccepted checks what the daemon relies on in a configuration that
// Parse accepted, restated here rather than trusting Validate alone: a
// default that Parse forgot to apply would otherwise go unnoticed.
func checkAccepted(t *testing.T, cfg *Config) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("accepted configuration fails Validate: %v", err)
	}
	if cfg.Path != "f.toml" {
		t.Fatalf("Path %q, want f.toml", cfg.Path)
	}
	if cfg.StateDir == "" || cfg.FailureThreshold.Duration < time.Second {
		t.Fatalf("state_dir %q, failure_threshold %s", cfg.StateDir, cfg.FailureThreshold)
	}
	for _, cl := range cfg.Clusters {
		if cl.ClusterKeyCheckInterval.Duration < time.Second {
			t.Fatalf("cluster %q: cluster_key_check_interval %s", cl.Name, cl.ClusterKeyCheckInterval)
		}
	}
	for _, s := range cfg.Streams {
		if cfg.ClusterNamed(s.Cluster) == nil {
			t.Fatalf("stream %q reads cluster %q, which the file lacks", s.Name, s.Cluster)
		}
		if s.Slot == "" || s.Publication == "" || len(s.Tables) == 0 || s.Target.KinesisStream == "" {
			t.Fatalf("stream %q: slot %q, publication %q, tables %q, kinesis_stream %q",
				s.Name, s.Slot, s.Publication, s.Tables, s.Target.KinesisStream)
		}
		if s.Ordering != "UNORDERED" && s.Ordering != "ROW" {
			t.Fatalf("stream %q: ordering %q", s.Name, s.Ordering)
		}
		d := s.Delivery
		if d.MaxInFlight < 1 || d.Linger.Duration == 0 || d.QueueBytes < 1<<20 ||
			d.StatusInterval.Duration == 0 || d.MemoryBudget < 1<<20 {
			t.Fatalf("stream %q: delivery defaults not applied: %+v", s.Name, d)
		}
		// Defaults are a fixed point: applying them again changes nothing.
		again := s
		again.ApplyDefaults()
		if again.Slot != s.Slot || again.Publication != s.Publication || again.Ordering != s.Ordering || again.Delivery != s.Delivery {
			t.Fatalf("stream %q: ApplyDefaults is not idempotent: %+v then %+v", s.Name, s, again)
		}
	}
}

func encodeTOML(t *testing.T, cfg *Config) string {
	t.Helper()
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(cfg); err != nil {
		t.Fatalf("encode accepted configuration: %v", err)
	}
	return b.String()
}
