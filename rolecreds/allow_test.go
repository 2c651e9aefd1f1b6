package rolecreds_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cdcd-dev/cdcd/rolecreds"
)

func TestNewAllowList(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		ok       bool
	}{
		{"none", nil, true},
		{"exact", []string{"arn:aws:iam::123456789012:role/writer"}, true},
		{"globs", []string{"arn:aws:iam::123456789012:role/cdcd-*", "arn:aws:iam::*:role/cdcd/*", "arn:aws:iam::12345678901?:role/w"}, true},
		{"bare star", []string{"*"}, false},
		{"role name", []string{"writer"}, false},
		{"empty pattern", []string{""}, false},
		{"exact but invalid", []string{"arn:aws:iam::123456789012:user/writer"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rolecreds.NewAllowList(tt.patterns)
			if (err == nil) != tt.ok {
				t.Fatalf("NewAllowList(%q) error %v, want ok=%v", tt.patterns, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), rolecreds.AllowKey) {
				t.Errorf("error %v does not name %s", err, rolecreds.AllowKey)
			}
		})
	}
}

func TestAllowListCheck(t *testing.T) {
	patterns := []string{
		"arn:aws:iam::123456789012:role/exact-writer",
		"arn:aws:iam::123456789012:role/cdcd-*",
		"arn:aws:iam::*:role/cdcd/streams/*",
		"arn:aws:iam::210987654321:role/w?",
	}
	tests := []struct {
		name    string
		roleARN string
		allowed bool
	}{
		{"exact", "arn:aws:iam::123456789012:role/exact-writer", true},
		{"exact is not a prefix", "arn:aws:iam::123456789012:role/exact-writer2", false},
		{"case differs", "arn:aws:iam::123456789012:role/Exact-Writer", false},
		{"prefix glob", "arn:aws:iam::123456789012:role/cdcd-orders", true},
		{"prefix glob other account", "arn:aws:iam::999999999999:role/cdcd-orders", false},
		{"star spans path", "arn:aws:iam::123456789012:role/cdcd-team/orders", true},
		{"any account under path", "arn:aws:iam::999999999999:role/cdcd/streams/orders", true},
		{"other path", "arn:aws:iam::999999999999:role/cdcd/other/orders", false},
		{"question mark", "arn:aws:iam::210987654321:role/w1", true},
		{"question mark is one character", "arn:aws:iam::210987654321:role/w12", false},
		{"other partition", "arn:aws-cn:iam::123456789012:role/exact-writer", false},
	}
	a, err := rolecreds.NewAllowList(patterns)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.Check(tt.roleARN)
			if tt.allowed {
				if err != nil {
					t.Errorf("Check(%q) = %v, want allowed", tt.roleARN, err)
				}
				return
			}
			if !errors.Is(err, rolecreds.ErrRoleNotAllowed) {
				t.Fatalf("Check(%q) = %v, want ErrRoleNotAllowed", tt.roleARN, err)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.roleARN) || !strings.Contains(msg, "role_arn_allow") {
				t.Errorf("message %q should name the ARN and role_arn_allow", msg)
			}
		})
	}
}

func TestAllowListRejectsInvalidARN(t *testing.T) {
	a, err := rolecreds.NewAllowList([]string{"arn:*"})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "writer", "arn:aws:iam::123456789012:user/writer", "arn:aws:s3:::bucket-name-long"} {
		if err := a.Check(bad); err == nil || errors.Is(err, rolecreds.ErrRoleNotAllowed) {
			t.Errorf("Check(%q) = %v, want an invalid-ARN error", bad, err)
		}
	}
	if err := a.Check("arn:aws:iam::123456789012:role/writer"); err != nil {
		t.Errorf("arn:* refused a role: %v", err)
	}
}

func TestEmptyAllowListAllowsNothing(t *testing.T) {
	a, err := rolecreds.NewAllowList(nil)
	if err != nil {
		t.Fatal(err)
	}
	err = a.Check("arn:aws:iam::123456789012:role/writer")
	if !errors.Is(err, rolecreds.ErrRoleNotAllowed) || !strings.Contains(err.Error(), "role_arn_allow is empty") {
		t.Errorf("Check on an empty list = %v", err)
	}
}
