package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dsql"
	"github.com/aws/aws-sdk-go-v2/service/dsql/types"

	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/state/api"
	"github.com/cdcd-dev/cdcd/test/testpki"
)

// serveDaemon runs the daemon's HTTP side over the fixture's supervisor
// with cfg's listeners and [api], checks its own health as systemd's
// watchdog has it do, and returns the addresses its start log line names.
func serveDaemon(t *testing.T, f *fixture, cfg *config.Config) (listen, metricsListen string) {
	t.Helper()
	var logs bytes.Buffer
	d := &Daemon{cfg: cfg, version: "test", log: slog.New(slog.NewJSONHandler(&logs, nil)), reg: f.prom}
	probe, stop, err := d.serve(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(context.Background()) })
	if err := probe(ctxT(t)); err != nil {
		t.Errorf("the daemon's check of its own /healthz: %v", err)
	}
	var started struct {
		Msg, Listen, Auth string
		MetricsListen     string `json:"metrics_listen"`
		TLS               bool
		ReadOnly          bool `json:"read_only"`
	}
	if err := json.Unmarshal(bytes.SplitN(logs.Bytes(), []byte("\n"), 2)[0], &started); err != nil || started.Msg != "cdcd started" {
		t.Fatalf("start log line: %v\n%s", err, logs.String())
	}
	if started.Auth != cfg.API.Auth || started.TLS != (cfg.API.TLSCertFile != "") || started.ReadOnly != cfg.API.ReadOnly {
		t.Errorf("start log line: %+v for %+v", started, cfg.API)
	}
	return started.Listen, started.MetricsListen
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Amzn-Errortype") + string(b)
}

// TestServeMTLSAndMetricsListener: the control plane behind client
// certificates works with the AWS SDK's dsql client, waiter included; the
// metrics listener serves /metrics and the probes to anyone and no stream
// operation; the control plane no longer serves /metrics.
func TestServeMTLSAndMetricsListener(t *testing.T) {
	f := newFixture(t, nil)
	ca := testpki.NewCA(t, "cdcd")
	cert, key := ca.Server(t, "server")
	clientCert, clientKey := ca.Client(t, "operator")
	cfg := &config.Config{Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", API: config.APIConfig{
		Auth: "mtls", TLSCertFile: cert, TLSKeyFile: key, ClientCAFile: ca.File}}
	listen, probes := serveDaemon(t, f, cfg)

	ctx := ctxT(t)
	c, err := api.NewClient(ctx, api.ClientOptions{Endpoint: "https://" + listen, Region: "us-east-1",
		CAFile: ca.File, CertFile: clientCert, KeyFile: clientKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.CreateStream(ctx, createInput(cluster))
	if err != nil {
		t.Fatalf("CreateStream with a client certificate: %v", err)
	}
	if _, err := dsql.NewStreamActiveWaiter(c, fastActive).WaitForOutput(ctx, getInput(aws.ToString(out.StreamIdentifier)), time.Minute); err != nil {
		t.Fatal(err)
	}
	anon, err := api.NewClient(ctx, api.ClientOptions{Endpoint: "https://" + listen, Region: "us-east-1", CAFile: ca.File}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon.ListStreams(ctx, &dsql.ListStreamsInput{ClusterIdentifier: aws.String(cluster)}); err == nil || !strings.Contains(err.Error(), "UnrecognizedClientException") {
		t.Errorf("ListStreams without a client certificate: %v", err)
	}

	plain := http.DefaultClient
	if code, body := get(t, plain, "http://"+probes+"/metrics"); code != 200 || !strings.Contains(body, `cdcd_stream_status{`) {
		t.Errorf("metrics listener /metrics: %d %.200s", code, body)
	}
	if code, body := get(t, plain, "http://"+probes+"/readyz"); code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Errorf("metrics listener /readyz: %d %s", code, body)
	}
	if code, body := get(t, plain, "http://"+probes+"/stream/"+cluster); code != 404 || !strings.HasPrefix(body, "UnknownOperationException") {
		t.Errorf("metrics listener ListStreams: %d %s", code, body)
	}
	if line, err := api.Health(ctx, api.ClientOptions{Endpoint: "https://" + listen, CAFile: ca.File}, false); err != nil || line != "live: ok" {
		t.Errorf("control plane /healthz without a certificate: %q, %v", line, err)
	}
	if _, err := api.Health(ctx, api.ClientOptions{Endpoint: "https://" + listen, CAFile: ca.File, CertFile: clientCert, KeyFile: clientKey}, false); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+listen+"/metrics", nil)
	// The same client that may list streams finds no /metrics here.
	resp, err := c.Options().HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("X-Amzn-Errortype") != "UnknownOperationException" {
		t.Errorf("control plane /metrics with metrics_listen set: %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"))
	}
}

// TestServeTokenReadOnly: a token-guarded, read-only control plane lists
// streams for the token's holder and refuses to create or delete any.
func TestServeTokenReadOnly(t *testing.T) {
	f := newFixture(t, nil)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Listen: "127.0.0.1:0", API: config.APIConfig{Auth: "token", TokenFile: tokenFile, ReadOnly: true}}
	listen, probes := serveDaemon(t, f, cfg)
	if probes != "" {
		t.Errorf("a metrics listener at %q without metrics_listen", probes)
	}
	ctx := ctxT(t)
	c, err := api.NewClient(ctx, api.ClientOptions{Endpoint: "http://" + listen, Region: "us-east-1", TokenFile: tokenFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListStreams(ctx, &dsql.ListStreamsInput{ClusterIdentifier: aws.String(cluster)}); err != nil {
		t.Fatalf("ListStreams with the token: %v", err)
	}
	var denied *types.AccessDeniedException
	if _, err := c.CreateStream(ctx, createInput(cluster)); !errors.As(err, &denied) {
		t.Errorf("CreateStream on a read-only control plane: %v", err)
	}
	if code, body := get(t, http.DefaultClient, "http://"+listen+"/metrics"); code != 401 || !strings.HasPrefix(body, "UnrecognizedClientException") {
		t.Errorf("/metrics without the token: %d %s", code, body)
	}
	if line, err := api.Health(ctx, api.ClientOptions{Endpoint: "http://" + listen, TokenFile: tokenFile}, true); err != nil || line != "ready: no streams" {
		t.Errorf("/readyz with the token: %q, %v", line, err)
	}
}

// TestServeRefusesUnreadableGuard: a daemon whose [api] files cannot be
// used does not start serving.
func TestServeRefusesUnreadableGuard(t *testing.T) {
	f := newFixture(t, nil)
	d := &Daemon{cfg: &config.Config{Listen: "127.0.0.1:0", API: config.APIConfig{Auth: "token", TokenFile: filepath.Join(t.TempDir(), "none")}},
		log: slog.New(slog.DiscardHandler), reg: f.prom}
	if _, _, err := d.serve(f.reg); err == nil || !strings.Contains(err.Error(), "api: token file") {
		t.Fatalf("serve with a missing token file: %v", err)
	}
}

// TestServeSelfProbeOverTLS: with TLS and a token on listen and no
// metrics_listen, the daemon's check of its own /healthz (which keeps
// systemd's watchdog fed) still passes, and fails once the server is gone.
func TestServeSelfProbeOverTLS(t *testing.T) {
	f := newFixture(t, nil)
	ca := testpki.NewCA(t, "cdcd")
	cert, key := ca.Server(t, "server")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: &config.Config{Listen: "127.0.0.1:0", API: config.APIConfig{Auth: "token", TokenFile: tokenFile,
		TLSCertFile: cert, TLSKeyFile: key}}, log: slog.New(slog.DiscardHandler), reg: f.prom}
	probe, stop, err := d.serve(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := probe(ctxT(t)); err != nil {
		t.Errorf("self-check over TLS: %v", err)
	}
	stop(context.Background())
	if err := probe(ctxT(t)); err == nil {
		t.Error("self-check passed with the server stopped")
	}
}
