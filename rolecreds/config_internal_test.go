package rolecreds

import (
	"testing"
	"time"
)

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		name              string
		in                Config
		partition, region string
		duration, window  time.Duration
	}{
		{"empty", Config{}, "aws", "", time.Hour, 5 * time.Minute},
		{"from stream ARN", Config{KinesisStreamARN: "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/s"}, "aws-cn", "cn-north-1", time.Hour, 5 * time.Minute},
		{"explicit kept", Config{KinesisStreamARN: "arn:aws:kinesis:us-east-1:123456789012:stream/s", Region: "eu-west-1", Partition: "aws-us-gov"}, "aws-us-gov", "eu-west-1", time.Hour, 5 * time.Minute},
		{"short session", Config{Duration: 15 * time.Minute}, "aws", "", 15 * time.Minute, 90 * time.Second},
		{"window kept", Config{Duration: 2 * time.Hour, ExpiryWindow: time.Second}, "aws", "", 2 * time.Hour, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.withDefaults()
			if got.Partition != tt.partition || got.Region != tt.region || got.Duration != tt.duration || got.ExpiryWindow != tt.window {
				t.Errorf("withDefaults() = partition %q region %q duration %v window %v; want %q %q %v %v",
					got.Partition, got.Region, got.Duration, got.ExpiryWindow, tt.partition, tt.region, tt.duration, tt.window)
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"*", "", true},
		{"*", "anything/at:all", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a*b*c", "a-x-b-y-c", true},
		{"a*b*c", "a-x-c-y-b", false},
		{"*role/cdcd-*", "arn:aws:iam::1:role/cdcd-x", true},
		{"abc", "abcd", false},
		{"abc*", "ab", false},
		{"**a", "a", true},
		{"*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}
