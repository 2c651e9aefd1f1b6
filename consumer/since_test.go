package consumer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdcd-dev/cdcd/config"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"15m":                       now.Add(-15 * time.Minute),
		"1h30m":                     now.Add(-90 * time.Minute),
		"0s":                        now,
		"2025-01-15T10:30:00Z":      time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC),
		"2025-01-15T11:30:00+01:00": time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC),
		"2025-01-15T10:30:00.5Z":    time.Date(2025, 1, 15, 10, 30, 0, 5e8, time.UTC),
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-5m", "yesterday", "2025-01-15", "15"} {
		if got, err := parseSince(in, now); err == nil {
			t.Errorf("parseSince(%q) = %v, want an error", in, got)
		}
	}
	var at time.Time
	before := time.Now()
	if err := SinceFlag(&at).Set("15m"); err != nil || at.Before(before.Add(-15*time.Minute)) || at.After(time.Now().Add(-15*time.Minute)) {
		t.Errorf("SinceFlag.Set(15m) = %v, %v; want 15 minutes ago", at, err)
	}
}

// TestRunSince: Since asks every shard for an AT_TIMESTAMP iterator at
// that time, and the status line says so.
func TestRunSince(t *testing.T) {
	since := time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)
	shards := map[string][][]byte{}
	for i, id := range []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000002", "shardId-000000000003"} {
		shards[id] = encode(t, uint32(i), 2)
	}
	api := serve(t, shards, types.ShardIteratorTypeAtTimestamp)
	iterator := api.getShardIterator
	api.getShardIterator = func(in *kinesis.GetShardIteratorInput) (*kinesis.GetShardIteratorOutput, error) {
		if in.Timestamp == nil || !in.Timestamp.Equal(since) {
			t.Errorf("shard %s: iterator at %v, want %v", *in.ShardId, in.Timestamp, since)
		}
		return iterator(in)
	}
	var status bytes.Buffer
	cfg := fast(Config{Since: since, Status: &status})
	cfg.FromStart = false
	if got := collect(t, api, cfg); len(got) != 2*len(shards) {
		t.Errorf("%d records, want %d", len(got), 2*len(shards))
	}
	line := status.String()
	for _, want := range []string{"Kinesis stream orders: 4 shards (shardId-", ", …) from AT_TIMESTAMP 2025-01-15T10:30:00Z\n"} {
		if !strings.Contains(line, want) || strings.Count(line, "shardId-") != statusShards {
			t.Errorf("status %q: want %q and %d shard ids", line, want, statusShards)
		}
	}

	cfg.FromStart = true
	if err := Run(context.Background(), api, cfg, func(context.Context, Record) error { return nil }); err == nil {
		t.Error("FromStart and Since together: no error")
	}
}

func TestRunStatusFromStart(t *testing.T) {
	var status bytes.Buffer
	api := serve(t, map[string][][]byte{"shardId-000000000000": encode(t, 1, 1)}, types.ShardIteratorTypeTrimHorizon)
	collect(t, api, fast(Config{Status: &status}))
	if want := "reading Kinesis stream orders: 1 shard (shardId-000000000000) from TRIM_HORIZON\n"; status.String() != want {
		t.Errorf("status %q, want %q", status.String(), want)
	}
}

// TestNewClientRegion: with no region given, the standard AWS chain
// decides (AWS_REGION, then the profile's); a region given wins; none
// anywhere is an error that says where to set one.
func TestNewClientRegion(t *testing.T) {
	dir := t.TempDir()
	profiles := filepath.Join(dir, "config")
	if err := os.WriteFile(profiles, []byte("[profile cdcd]\nregion = ap-south-1\n[profile bare]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", profiles)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_DEFAULT_REGION", "")
	for _, tc := range []struct{ given, env, profile, want string }{
		{"", "eu-west-1", "cdcd", "eu-west-1"},
		{"", "", "cdcd", "ap-south-1"},
		{"us-west-2", "eu-west-1", "cdcd", "us-west-2"},
		{"", "", "bare", ""},
	} {
		t.Setenv("AWS_REGION", tc.env)
		t.Setenv("AWS_PROFILE", tc.profile)
		awsCfg, err := config.LoadAWS(context.Background(), tc.given)
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewClient(awsCfg, "http://127.0.0.1:1")
		switch {
		case tc.want == "" && (err == nil || !strings.Contains(err.Error(), "AWS_REGION")):
			t.Errorf("%+v: %v, want an error naming AWS_REGION", tc, err)
		case tc.want != "" && (err != nil || c.Options().Region != tc.want):
			t.Errorf("%+v: %v, want region %s", tc, err, tc.want)
		}
	}
}
