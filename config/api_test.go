package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const guardedTLS = `
[api]
tls_cert_file = "/etc/cdcd/tls.crt"
tls_key_file = "/etc/cdcd/tls.key"
`

// TestListenGuard: a control plane reachable beyond this host is refused
// unless it has both TLS and an authentication mode; loopback needs neither.
func TestListenGuard(t *testing.T) {
	token := guardedTLS + "auth = \"token\"\ntoken_file = \"/run/secrets/cdcd-token\"\n"
	mtls := guardedTLS + "auth = \"mtls\"\nclient_ca_file = \"/etc/cdcd/clients.pem\"\n"
	for _, tc := range []struct {
		name, text string
		want       []string // empty: valid
	}{
		{"default", minimal, nil},
		{"loopback v4", "listen = \"127.0.0.2:9180\"\n" + minimal, nil},
		{"loopback v6", "listen = \"[::1]:9180\"\n" + minimal, nil},
		{"localhost", "listen = \"localhost:9180\"\n" + minimal, nil},
		{"token on loopback without TLS", minimal + "[api]\nauth = \"token\"\ntoken_file = \"/t\"\n", nil},
		{"every interface, open", "listen = \"0.0.0.0:9180\"\n" + minimal, []string{"listen:", "beyond this host", "api.auth", "api.tls_cert_file"}},
		{"empty host, open", "listen = \":9180\"\n" + minimal, []string{"listen:", "api.auth"}},
		{"a name, open", "listen = \"cdcd.internal:9180\"\n" + minimal, []string{"listen:", "api.auth"}},
		{"TLS without auth", "listen = \"0.0.0.0:9443\"\n" + minimal + guardedTLS, []string{"listen:", "api.auth"}},
		{"token without TLS", "listen = \"10.0.0.5:9443\"\n" + minimal + "[api]\nauth = \"token\"\ntoken_file = \"/t\"\n", []string{"listen:", "api.tls_cert_file and api.tls_key_file"}},
		{"token with TLS", "listen = \"0.0.0.0:9443\"\n" + minimal + token, nil},
		{"mtls with TLS", "listen = \"[::]:9443\"\n" + minimal + mtls, nil},
		{"mtls without TLS", minimal + "[api]\nauth = \"mtls\"\nclient_ca_file = \"/ca\"\n", []string{"api.auth", "needs TLS"}},
		{"mtls without CA", minimal + guardedTLS + "auth = \"mtls\"\n", []string{"api.client_ca_file", "required"}},
		{"token without file", minimal + "[api]\nauth = \"token\"\n", []string{"api.token_file", "required"}},
		{"token file unused", minimal + "[api]\ntoken_file = \"/t\"\n", []string{"api.token_file", "only with auth"}},
		{"CA unused", minimal + guardedTLS + "auth = \"token\"\ntoken_file = \"/t\"\nclient_ca_file = \"/ca\"\n", []string{"api.client_ca_file", "only with auth"}},
		{"cert without key", minimal + "[api]\ntls_cert_file = \"/c\"\n", []string{"api.tls_key_file", "together"}},
		{"unknown mode", minimal + "[api]\nauth = \"basic\"\n", []string{"api.auth", "basic", "none, token, mtls"}},
		{"not host:port", "listen = \"9180\"\n" + minimal, []string{"listen:", "not host:port"}},
		{"bad port", "listen = \"127.0.0.1:http\"\n" + minimal, []string{"listen:", "port"}},
		{"metrics on the network", "metrics_listen = \"0.0.0.0:9181\"\n" + minimal, nil},
		{"metrics on the listen port", "listen = \"127.0.0.1:9180\"\nmetrics_listen = \"0.0.0.0:9180\"\n" + minimal, []string{"metrics_listen", "different ports"}},
		{"metrics not host:port", "metrics_listen = \"nope\"\n" + minimal, []string{"metrics_listen", "not host:port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("c.toml", tc.text)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.API.Auth == "" {
					t.Error("api.auth has no default")
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestListenOverrides: CDCD_LISTEN and then a flag replace the file's
// listen, and meet the same rule, named as what set them.
func TestListenOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(path, []byte("listen = \"127.0.0.1:1000\"\n"+minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(o ...Override) string {
		t.Helper()
		cfg, err := Load(path, o...)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Listen
	}
	t.Setenv(ListenEnv, "")
	if got := load(); got != "127.0.0.1:1000" {
		t.Errorf("the file's listen: %q", got)
	}
	t.Setenv(ListenEnv, "127.0.0.1:2000")
	if got := load(); got != "127.0.0.1:2000" {
		t.Errorf("with %s: %q", ListenEnv, got)
	}
	if got := load(Listen("--listen", "127.0.0.1:3000")); got != "127.0.0.1:3000" {
		t.Errorf("with --listen over %s: %q", ListenEnv, got)
	}
	if got := load(Listen("--listen", "")); got != "127.0.0.1:2000" {
		t.Errorf("an empty --listen replaced %s: %q", ListenEnv, got)
	}
	t.Setenv(ListenEnv, "0.0.0.0:9180")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "listen (set by CDCD_LISTEN)") {
		t.Errorf("an open listen from %s: %v", ListenEnv, err)
	}
	if _, err := Load(path, Listen("--listen", "0.0.0.0:9180")); err == nil || !strings.Contains(err.Error(), "listen (set by --listen)") {
		t.Errorf("an open listen from --listen: %v", err)
	}
}

func TestClientURLs(t *testing.T) {
	for _, tc := range []struct {
		listen, metrics, cert string
		api, probe            string
	}{
		{"127.0.0.1:9180", "", "", "http://127.0.0.1:9180", "http://127.0.0.1:9180"},
		{"0.0.0.0:9443", "0.0.0.0:9180", "/c", "https://127.0.0.1:9443", "http://127.0.0.1:9180"},
		{":9443", "[::]:9180", "/c", "https://127.0.0.1:9443", "http://[::1]:9180"},
		{"cdcd.internal:9443", "", "/c", "https://cdcd.internal:9443", "https://cdcd.internal:9443"},
	} {
		c := &Config{Listen: tc.listen, MetricsListen: tc.metrics, API: APIConfig{TLSCertFile: tc.cert}}
		if got := c.ControlPlaneURL(); got != tc.api {
			t.Errorf("%s: ControlPlaneURL = %q, want %q", tc.listen, got, tc.api)
		}
		if got := c.ProbeURL(); got != tc.probe {
			t.Errorf("%s, %s: ProbeURL = %q, want %q", tc.listen, tc.metrics, got, tc.probe)
		}
	}
}

func TestClusterID(t *testing.T) {
	one := &Config{Clusters: []Cluster{{Identifier: "kmabugltfmjdaj2siqr2qbxgju"}}}
	two := &Config{Clusters: []Cluster{{Identifier: "a"}, {Identifier: "b"}}}
	var none *Config
	for _, tc := range []struct {
		c        *Config
		id, want string
	}{
		{one, "", "kmabugltfmjdaj2siqr2qbxgju"}, {one, "given", "given"}, {two, "", ""}, {none, "", ""}, {none, "given", "given"},
	} {
		if got := tc.c.ClusterID(tc.id); got != tc.want {
			t.Errorf("ClusterID(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
}
