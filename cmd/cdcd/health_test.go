package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/state/api"
	"github.com/cdcd-dev/cdcd/test/testpki"
)

// health runs cdcd health and returns its exit status and what it printed.
func health(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := exitCode(run(ctx, append([]string{"health"}, args...), &stdout, &stderr), &stderr)
	return code, stdout.String(), stderr.String()
}

func TestHealthCommand(t *testing.T) {
	url := controlPlane(t, impairingRunner{})
	addr := strings.TrimPrefix(url, "http://")
	if code, out, errs := health(t, "--addr", addr); code != 0 || out != "live: ok\n" || errs != "" {
		t.Errorf("health: exit %d, %q, %q", code, out, errs)
	}
	if code, out, errs := health(t, "--ready", "--addr", url); code != 0 || out != "ready: no streams\n" {
		t.Errorf("health --ready with no streams: exit %d, %q, %q", code, out, errs)
	}

	id := create(t, url).StreamIdentifier
	want := "cdcd: not ready: 1 of 1 streams: stream " + id + " (cluster " + testCluster + ") is IMPAIRED: KINESIS_ACCESS_DENIED not authorized to perform kinesis:PutRecords (see docs/runbook.md#kinesis_access_denied)\n"
	var code int
	var out, errs string
	for deadline := time.Now().Add(10 * time.Second); errs != want && time.Now().Before(deadline); {
		code, out, errs = health(t, "--ready", "--addr", addr)
	}
	if code != 1 || out != "" || errs != want {
		t.Errorf("health --ready with an IMPAIRED stream: exit %d, %q, %q; want exit 1 and %q", code, out, errs, want)
	}

	// --config finds the daemon at its listen address.
	cfg := filepath.Join(t.TempDir(), "cdcd.toml")
	if err := os.WriteFile(cfg, []byte("listen = \""+addr+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CDCD_LISTEN", "")
	if code, out, errs := health(t, "--config", cfg); code != 0 || out != "live: ok\n" {
		t.Errorf("health --config: exit %d, %q, %q", code, out, errs)
	}

	if code, _, errs := health(t, "--addr", "127.0.0.1:1"); code != 1 || !strings.Contains(errs, "connection refused") || strings.Count(errs, "\n") != 1 {
		t.Errorf("health of nothing: exit %d, %q", code, errs)
	}
	if code, _, _ := health(t, "--ready", "extra"); code != 2 {
		t.Errorf("health with an argument: exit %d, want 2", code)
	}
}

// TestGuardedClientCommands: streams and health reach a token-guarded TLS
// control plane with --ca-file and --token-file, and without the token
// are told so.
func TestGuardedClientCommands(t *testing.T) {
	ca := testpki.NewCA(t, "cdcd")
	cert, key := ca.Server(t, "server")
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := guardedControlPlane(t, pipeline.IdleRunner{}, api.Guard{Auth: api.AuthToken, CertFile: cert, KeyFile: key, TokenFile: token})

	created := create(t, url, "--ca-file", ca.File, "--token-file", token)
	if out, err := streams(t, url, "list", "--ca-file", ca.File, "--token-file", token); err != nil || !strings.Contains(out, created.StreamIdentifier) {
		t.Errorf("streams list with the token: %v\n%s", err, out)
	}
	if _, err := streams(t, url, "list", "--ca-file", ca.File); err == nil || !strings.HasPrefix(err.Error(), "UnrecognizedClientException: no token") {
		t.Errorf("streams list without the token: %v", err)
	}
	if _, err := streams(t, url, "list", "--token-file", token); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("streams list without the CA: %v", err)
	}
	if code, out, errs := health(t, "--addr", url, "--ca-file", ca.File); code != 0 || out != "live: ok\n" {
		t.Errorf("health of a guarded daemon: exit %d, %q, %q", code, out, errs)
	}
	if code, _, errs := health(t, "--ready", "--addr", url, "--ca-file", ca.File); code != 1 || !strings.Contains(errs, "UnrecognizedClientException") {
		t.Errorf("health --ready without the token: exit %d, %q", code, errs)
	}
	code, out, errs := 1, "", ""
	for deadline := time.Now().Add(10 * time.Second); code != 0 && time.Now().Before(deadline); {
		code, out, errs = health(t, "--ready", "--addr", url, "--ca-file", ca.File, "--token-file", token)
	}
	if code != 0 || out != "ready: 1 stream, ACTIVE\n" {
		t.Errorf("health --ready with the token: exit %d, %q, %q", code, out, errs)
	}
}

// TestRunListen: --listen and CDCD_LISTEN replace listen, and an address
// beyond loopback without [api] TLS and auth stops cdcd run at once.
func TestRunListen(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "cdcd.toml")
	if err := os.WriteFile(cfg, []byte("state_dir = \""+t.TempDir()+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CDCD_LISTEN", "")
	err := run(context.Background(), []string{"run", "--config", cfg, "--listen", "0.0.0.0:9180"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "listen (set by --listen): \"0.0.0.0:9180\" is reachable beyond this host") {
		t.Errorf("run --listen 0.0.0.0:9180: %v", err)
	}
	t.Setenv("CDCD_LISTEN", "[::]:9180")
	err = run(context.Background(), []string{"run", "--config", cfg}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "listen (set by CDCD_LISTEN)") {
		t.Errorf("run with CDCD_LISTEN=[::]:9180: %v", err)
	}
}
