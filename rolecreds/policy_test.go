package rolecreds_test

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cdcd-dev/cdcd/rolecreds"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

const (
	testRole      = "arn:aws:iam::123456789012:role/cdcd/orders-writer"
	testExternal  = "cdcd-ext-3f9a7c21"
	testStreamARN = "arn:aws:cdcd:us-east-1:123456789012:cluster/kmabugltfmjdaj2siqr2qbxgju/stream/ffthunp5stx6ffs2vyfqoatmfu"
	testCluster   = "kmabugltfmjdaj2siqr2qbxgju"
	testKinesis   = "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
	testKey       = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	testBase      = "arn:aws:iam::123456789012:role/cdcd-daemon"
)

func testConfig() rolecreds.Config {
	return rolecreds.Config{
		RoleARN:          testRole,
		ExternalID:       testExternal,
		StreamName:       "orders",
		StreamARN:        testStreamARN,
		ClusterID:        testCluster,
		KinesisStreamARN: testKinesis,
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from golden (run go test -update if intended)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestPolicyGolden(t *testing.T) {
	withKey := testConfig()
	withKey.KeyARN = testKey
	china := rolecreds.Config{
		KinesisStreamARN: "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/orders",
		KeyARN:           "arn:aws-cn:kms:cn-north-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef",
	}
	tests := []struct {
		name   string
		render func() (string, error)
	}{
		{"session_policy.json", func() (string, error) { return rolecreds.SessionPolicy(testConfig()) }},
		{"session_policy_key.json", func() (string, error) { return rolecreds.SessionPolicy(withKey) }},
		{"permissions_policy.json", func() (string, error) { return rolecreds.PermissionsPolicy(testConfig()) }},
		{"permissions_policy_key.json", func() (string, error) { return rolecreds.PermissionsPolicy(withKey) }},
		{"permissions_policy_cn.json", func() (string, error) { return rolecreds.PermissionsPolicy(china) }},
		{"trust_policy.json", func() (string, error) { return rolecreds.TrustPolicy(testBase, testConfig(), false) }},
		{"trust_policy_tags.json", func() (string, error) { return rolecreds.TrustPolicy(testBase, testConfig(), true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.render()
			if err != nil {
				t.Fatal(err)
			}
			again, _ := tt.render()
			if got != again {
				t.Fatal("two renderings differ")
			}
			if !json.Valid([]byte(got)) {
				t.Fatalf("not JSON: %s", got)
			}
			golden(t, tt.name, got)
		})
	}
}

// TestSessionPolicyMatchesPermissions pins that the session policy and the
// role's identity policy carry the same statements.
func TestSessionPolicyMatchesPermissions(t *testing.T) {
	cfg := testConfig()
	cfg.KeyARN = testKey
	s, err := rolecreds.SessionPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := rolecreds.PermissionsPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(p), &b); err != nil {
		t.Fatal(err)
	}
	sa, _ := json.Marshal(a)
	sb, _ := json.Marshal(b)
	if string(sa) != string(sb) {
		t.Errorf("session policy %s\n!= permissions policy %s", sa, sb)
	}
	if strings.ContainsAny(s, "\n ") {
		t.Errorf("session policy is not compact: %q", s)
	}
}

func TestSessionPolicyFitsAtMaximumSizes(t *testing.T) {
	cfg := rolecreds.Config{
		KinesisStreamARN: "arn:aws-us-gov:kinesis:us-gov-west-1:123456789012:stream/" + strings.Repeat("s", 128),
		KeyARN:           "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef",
	}
	p, err := rolecreds.SessionPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) > rolecreds.MaxSessionPolicy {
		t.Errorf("session policy is %d characters", len(p))
	}
	if !strings.Contains(p, `"kinesis.us-gov-west-1.amazonaws.com"`) {
		t.Errorf("ViaService for GovCloud missing: %s", p)
	}
}

func TestPolicyRejectsBadTarget(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*rolecreds.Config)
		field string
	}{
		{"no stream", func(c *rolecreds.Config) { c.KinesisStreamARN = "" }, "KinesisStreamARN"},
		{"not kinesis", func(c *rolecreds.Config) { c.KinesisStreamARN = "arn:aws:sqs:us-east-1:123456789012:orders" }, "KinesisStreamARN"},
		{"bad stream name", func(c *rolecreds.Config) { c.KinesisStreamARN = "arn:aws:kinesis:us-east-1:123456789012:stream/a b" }, "KinesisStreamARN"},
		{"short account", func(c *rolecreds.Config) { c.KinesisStreamARN = "arn:aws:kinesis:us-east-1:1234:stream/orders" }, "KinesisStreamARN"},
		{"region mismatch", func(c *rolecreds.Config) { c.Region = "eu-west-1" }, "KinesisStreamARN"},
		{"bad region", func(c *rolecreds.Config) { c.Region = "useast1" }, "Region"},
		{"partition mismatch", func(c *rolecreds.Config) { c.Partition = "aws-cn" }, "KinesisStreamARN"},
		{"unsupported partition", func(c *rolecreds.Config) { c.Partition = "aws-iso" }, "Partition"},
		{"key alias", func(c *rolecreds.Config) { c.KeyARN = "arn:aws:kms:us-east-1:123456789012:alias/aws/kinesis" }, "KeyARN"},
		{"key id only", func(c *rolecreds.Config) { c.KeyARN = "1234abcd-12ab-34cd-56ef-1234567890ab" }, "KeyARN"},
		{"key other region", func(c *rolecreds.Config) {
			c.KeyARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
		}, "KeyARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.edit(&cfg)
			for _, f := range []func(rolecreds.Config) (string, error){rolecreds.SessionPolicy, rolecreds.PermissionsPolicy} {
				_, err := f(cfg)
				var fe *rolecreds.FieldError
				if !errors.As(err, &fe) || fe.Field != tt.field {
					t.Errorf("error %v, want a FieldError for %s", err, tt.field)
				}
			}
		})
	}
}

func TestTrustPolicyPrincipal(t *testing.T) {
	tests := []struct {
		caller string
		want   string // "" means an error
	}{
		{"arn:aws:iam::123456789012:user/ops/cdcd", "arn:aws:iam::123456789012:user/ops/cdcd"},
		{"arn:aws:iam::123456789012:role/cdcd-daemon", "arn:aws:iam::123456789012:role/cdcd-daemon"},
		{"arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:root"},
		{"arn:aws:sts::123456789012:assumed-role/cdcd-daemon/i-0abc", "arn:aws:iam::123456789012:role/cdcd-daemon"},
		{"arn:aws-cn:sts::123456789012:assumed-role/daemon/s", "arn:aws-cn:iam::123456789012:role/daemon"},
		{"arn:aws:sts::123456789012:federated-user/bob", "arn:aws:sts::123456789012:federated-user/bob"},
		{"arn:aws:sts::123456789012:assumed-role/only-role", ""},
		{"arn:aws:iam::123456789012:group/admins", ""},
		{"arn:aws:iam::12345:user/x", ""},
		{"cdcd-daemon", ""},
		{"*", ""},
	}
	for _, tt := range tests {
		t.Run(tt.caller, func(t *testing.T) {
			got, err := rolecreds.BasePrincipal(tt.caller)
			if tt.want == "" {
				if err == nil {
					t.Errorf("BasePrincipal = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("BasePrincipal = %q, %v; want %q", got, err, tt.want)
			}
			pol, err := rolecreds.TrustPolicy(tt.caller, testConfig(), false)
			if err != nil || !strings.Contains(pol, `"AWS": "`+tt.want+`"`) {
				t.Errorf("trust policy %s, %v; want principal %s", pol, err, tt.want)
			}
		})
	}
}

func TestTrustPolicyNeedsExternalID(t *testing.T) {
	cfg := testConfig()
	cfg.ExternalID = ""
	if _, err := rolecreds.TrustPolicy(testBase, cfg, false); err == nil {
		t.Error("trust policy without an external id was rendered")
	}
}
