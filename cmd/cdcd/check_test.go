package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckOffline: cdcd check builds every ARN offline, and says how to
// go on when the account that one needs is left to STS.
func TestCheckOffline(t *testing.T) {
	cfg, err := os.ReadFile("testdata/noaccount.toml")
	if err != nil {
		t.Fatal(err)
	}
	check := func(text string) (string, error) {
		path := filepath.Join(t.TempDir(), "cdcd.toml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err := run(context.Background(), []string{"check", "--config", path}, &out, &bytes.Buffer{})
		return out.String(), err
	}
	if out, err := check(string(cfg)); err == nil || err.Error() != "stream s: aws.account is not set and cdcd check runs offline: set it, or use --online" || out != "" {
		t.Errorf("check without aws.account: %q, %v", out, err)
	}
	if out, err := check(string(cfg) + "[aws]\naccount = \"123456789012\"\n"); err != nil || !strings.HasSuffix(out, ": ok (1 clusters, 1 streams)\n") {
		t.Errorf("check with aws.account: %q, %v", out, err)
	}
}
