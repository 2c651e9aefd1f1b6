package rolecreds_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/cdcd-dev/cdcd/rolecreds"
)

func TestValidateDurationBounds(t *testing.T) {
	tests := []struct {
		name     string
		duration time.Duration
		window   time.Duration
		field    string // "" means valid
	}{
		{name: "default", duration: 0},
		{name: "minimum", duration: 15 * time.Minute},
		{name: "maximum", duration: 12 * time.Hour},
		{name: "below minimum", duration: 15*time.Minute - time.Second, field: "Duration"},
		{name: "above maximum", duration: 12*time.Hour + time.Second, field: "Duration"},
		{name: "fraction of a second", duration: 20*time.Minute + 500*time.Millisecond, field: "Duration"},
		{name: "negative", duration: -time.Hour, field: "Duration"},
		{name: "window half", duration: time.Hour, window: 30 * time.Minute},
		{name: "window over half", duration: time.Hour, window: 30*time.Minute + time.Second, field: "ExpiryWindow"},
		{name: "window negative", window: -time.Second, field: "ExpiryWindow"},
		{name: "short window", window: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Duration, cfg.ExpiryWindow = tt.duration, tt.window
			err := cfg.Validate()
			checkField(t, err, tt.field)
		})
	}
}

func TestValidateSessionFields(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*rolecreds.Config)
		field string
	}{
		{"valid", func(*rolecreds.Config) {}, ""},
		{"no tags", func(c *rolecreds.Config) { c.StreamARN, c.ClusterID = "", "" }, ""},
		{"key in role account", func(c *rolecreds.Config) { c.KeyARN = testKey }, ""},
		{"no role", func(c *rolecreds.Config) { c.RoleARN = "" }, "RoleARN"},
		{"role name only", func(c *rolecreds.Config) { c.RoleARN = "orders-writer" }, "RoleARN"},
		{"role in other partition", func(c *rolecreds.Config) { c.RoleARN = "arn:aws-cn:iam::123456789012:role/w" }, "RoleARN"},
		{"key in other account", func(c *rolecreds.Config) {
			c.KeyARN = "arn:aws:kms:us-east-1:210987654321:key/1234abcd-12ab-34cd-56ef-1234567890ab"
		}, "KeyARN"},
		{"no external id", func(c *rolecreds.Config) { c.ExternalID = "" }, "ExternalID"},
		{"external id one char", func(c *rolecreds.Config) { c.ExternalID = "x" }, "ExternalID"},
		{"external id space", func(c *rolecreds.Config) { c.ExternalID = "ext id" }, "ExternalID"},
		{"external id too long", func(c *rolecreds.Config) { c.ExternalID = strings.Repeat("e", 1225) }, "ExternalID"},
		{"no stream name", func(c *rolecreds.Config) { c.StreamName = "" }, "StreamName"},
		{"stream ARN not a tag value", func(c *rolecreds.Config) { c.StreamARN = "arn:*" }, "StreamARN"},
		{"cluster id too long", func(c *rolecreds.Config) { c.ClusterID = strings.Repeat("c", 257) }, "ClusterID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.edit(&cfg)
			checkField(t, cfg.Validate(), tt.field)
		})
	}
}

func TestFieldErrorRedactsExternalID(t *testing.T) {
	cfg := testConfig()
	cfg.ExternalID = "secret value"
	err := cfg.Validate()
	if err == nil || strings.Contains(err.Error(), "secret value") {
		t.Errorf("error %v, want one that does not repeat the external id", err)
	}
}

func checkField(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var fe *rolecreds.FieldError
	if !errors.As(err, &fe) || fe.Field != field {
		t.Fatalf("error %v, want a FieldError for %s", err, field)
	}
	if fe.Want == "" {
		t.Errorf("error %v does not say what is allowed", err)
	}
}

func TestSessionName(t *testing.T) {
	long := strings.Repeat("a", 100)
	tests := []struct {
		stream, want string
	}{
		{"orders", "cdcd-orders"},
		{"a", "cdcd-a"},
		{"team/orders v2", "cdcd-team-orders-v2"},
		{"zahlungsüberweisung", "cdcd-zahlungs-berweisung"},
		{"+=,.@-_", "cdcd-+=,.@-_"},
		{long, "cdcd-" + strings.Repeat("a", 50) + "-"},
	}
	for _, tt := range tests {
		t.Run(tt.stream, func(t *testing.T) {
			got := rolecreds.SessionName(tt.stream)
			if len(got) < 2 || len(got) > 64 {
				t.Fatalf("SessionName(%q) = %q, %d characters", tt.stream, got, len(got))
			}
			if len(tt.stream) > 59 {
				if !strings.HasPrefix(got, tt.want) || len(got) != 64 {
					t.Errorf("SessionName(%q) = %q, want %q and 8 hex digits", tt.stream, got, tt.want)
				}
				return
			}
			if got != tt.want {
				t.Errorf("SessionName(%q) = %q, want %q", tt.stream, got, tt.want)
			}
		})
	}
	if a, b := rolecreds.SessionName(long+"x"), rolecreds.SessionName(long+"y"); a == b {
		t.Errorf("long names sharing a prefix collide: %q", a)
	}
}

func TestSessionTags(t *testing.T) {
	cfg := testConfig()
	tags := rolecreds.SessionTags(cfg)
	if len(tags) != 2 ||
		aws.ToString(tags[0].Key) != rolecreds.TagStream || aws.ToString(tags[0].Value) != testStreamARN ||
		aws.ToString(tags[1].Key) != rolecreds.TagCluster || aws.ToString(tags[1].Value) != testCluster {
		t.Errorf("tags %+v", tags)
	}
	cfg.StreamARN, cfg.ClusterID = "", ""
	if tags := rolecreds.SessionTags(cfg); tags != nil {
		t.Errorf("tags %+v, want none", tags)
	}
}
