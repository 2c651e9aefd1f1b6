package pipeline

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cdcd-dev/cdcd/state/api"
)

// TestClientOptions: what a command on this host takes from the daemon's
// configuration file, and what its flags keep.
func TestClientOptions(t *testing.T) {
	t.Setenv("CDCD_LISTEN", "")
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	guarded := write("guarded.toml", `listen = "0.0.0.0:9443"
metrics_listen = "0.0.0.0:9180"
[aws]
region = "eu-west-1"
[api]
auth = "token"
token_file = "/run/secrets/token"
tls_cert_file = "/c"
tls_key_file = "/k"
`)
	plain := write("plain.toml", "listen = \"127.0.0.1:9280\"\n")
	for _, tc := range []struct {
		name, path string
		flags      api.ClientOptions
		probe      bool
		want       api.ClientOptions
	}{
		{"no file", "", api.ClientOptions{}, false, api.ClientOptions{Endpoint: "http://127.0.0.1:9180", Region: "us-east-1"}},
		{"no file, an address", "", api.ClientOptions{Endpoint: "10.0.0.1:9180"}, true, api.ClientOptions{Endpoint: "http://10.0.0.1:9180", Region: "us-east-1"}},
		{"plain", plain, api.ClientOptions{}, true, api.ClientOptions{Endpoint: "http://127.0.0.1:9280", Region: "us-east-1"}},
		{"guarded control plane", guarded, api.ClientOptions{CAFile: "/ca"}, false,
			api.ClientOptions{Endpoint: "https://127.0.0.1:9443", Region: "eu-west-1", CAFile: "/ca", TokenFile: "/run/secrets/token"}},
		{"guarded, probe", guarded, api.ClientOptions{}, true, api.ClientOptions{Endpoint: "http://127.0.0.1:9180", Region: "eu-west-1"}},
		{"guarded, an endpoint by hand", guarded, api.ClientOptions{Endpoint: "https://elsewhere:9443"}, false,
			api.ClientOptions{Endpoint: "https://elsewhere:9443", Region: "eu-west-1"}},
		{"guarded, a token file by hand", guarded, api.ClientOptions{TokenFile: "/mine"}, false,
			api.ClientOptions{Endpoint: "https://127.0.0.1:9443", Region: "eu-west-1", TokenFile: "/mine"}},
	} {
		_, got, err := clientOptions(tc.path, tc.flags, tc.probe)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	if _, _, err := clientOptions(filepath.Join(dir, "none.toml"), api.ClientOptions{}, false); err == nil {
		t.Error("a missing file: no error")
	}
}
