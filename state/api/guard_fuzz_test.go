package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// FuzzGuard: whatever the method, path and token, a request passes a
// read-only, token-guarded listener only as GET or HEAD, and only with the
// token or for /healthz; every refusal is an AWS error that names its type.
func FuzzGuard(f *testing.F) {
	const token = "0123456789abcdef-fuzz"
	file := filepath.Join(f.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	reached := false
	h, _, err := Guard{Auth: AuthToken, TokenFile: file, ReadOnly: true}.Wrap(
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }), nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][3]string{
		{"GET", "/healthz", ""}, {"HEAD", "/healthz", ""}, {"POST", "/healthz", ""}, {"GET", "/healthz/", ""},
		{"GET", "//healthz", ""}, {"GET", "/readyz", "wrong"}, {"GET", "/stream/x", token}, {"POST", "/stream/x", token},
		{"DELETE", "/stream/x/y", token}, {"GET", "", token + " "}, {"CONNECT", "host:443", ""},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, method, path, tok string) {
		r := &http.Request{Method: method, URL: &url.URL{Path: path}, Header: http.Header{}, RemoteAddr: "192.0.2.1:1234"}
		if tok != "" {
			r.Header.Set(TokenHeader, tok)
		}
		reached = false
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		read := method == http.MethodGet || method == http.MethodHead
		if allowed := read && (tok == token || path == "/healthz"); reached != allowed {
			t.Fatalf("%s %q with token %q: passed %v, want %v", method, path, tok, reached, allowed)
		}
		if !reached && (rec.Code < 400 || rec.Header().Get("X-Amzn-Errortype") == "") {
			t.Fatalf("%s %q refused with %d and no error type", method, path, rec.Code)
		}
	})
}
