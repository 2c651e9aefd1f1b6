package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
)

// AuthMode is how a control plane listener authenticates its callers.
type AuthMode string

const (
	AuthNone  AuthMode = "none"
	AuthToken AuthMode = "token"
	AuthMTLS  AuthMode = "mtls"
)

// TokenHeader carries the token of AuthToken. It is not Authorization,
// because the AWS SDK puts its SigV4 signature there.
const TokenHeader = "X-Cdcd-Token"

// minTokenLen keeps a guessable token out of a token file.
const minTokenLen = 16

// Guard is who may call a control plane listener and what they may change
// (docs/api.md#authentication).
type Guard struct {
	Auth AuthMode
	// CertFile and KeyFile, when set, make the listener serve TLS.
	CertFile, KeyFile string
	// ClientCAFile verifies client certificates for AuthMTLS.
	ClientCAFile string
	// TokenFile holds the token of AuthToken.
	TokenFile string
	// ReadOnly refuses every request but GET and HEAD.
	ReadOnly bool
}

// Wrap puts h behind g and returns the TLS configuration its listener must
// serve with (nil: plain HTTP). It reads g's files now, so that a mistake
// stops cdcd at start, and again whenever they change.
func (g Guard) Wrap(h http.Handler, log *slog.Logger) (http.Handler, *tls.Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gh := &guarded{next: h, log: log, auth: g.Auth, readOnly: g.ReadOnly}
	var tc *tls.Config
	if g.CertFile != "" || g.KeyFile != "" {
		var err error
		if tc, err = g.serverTLS(log); err != nil {
			return nil, nil, err
		}
	}
	switch g.Auth {
	case AuthNone, "":
	case AuthToken:
		gh.token = newWatched("token", log, func(b [][]byte) ([sha256.Size]byte, error) {
			t, err := parseToken(b[0])
			return sha256.Sum256(t), err
		}, g.TokenFile)
		if _, err := gh.token.get(); err != nil {
			return nil, nil, fmt.Errorf("token file: %w", err)
		}
	case AuthMTLS:
		if tc == nil || g.ClientCAFile == "" {
			return nil, nil, errors.New("client certificates need TLS and a CA file to verify them")
		}
	default:
		return nil, nil, fmt.Errorf("unknown authentication mode %q", g.Auth)
	}
	return gh, tc, nil
}

// serverTLS serves the certificate of CertFile and KeyFile and, for
// AuthMTLS, verifies the client certificates that ClientCAFile signs, each
// read again when it changes.
func (g Guard) serverTLS(log *slog.Logger) (*tls.Config, error) {
	cert := newWatched("certificate", log, func(b [][]byte) (*tls.Certificate, error) {
		c, err := tls.X509KeyPair(b[0], b[1])
		return &c, err
	}, g.CertFile, g.KeyFile)
	if _, err := cert.get(); err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert.get() }}
	if g.Auth != AuthMTLS || g.ClientCAFile == "" {
		return tc, nil
	}
	cas := newWatched("client CA", log, func(b [][]byte) (*x509.CertPool, error) { return parsePool(b[0]) }, g.ClientCAFile)
	if _, err := cas.get(); err != nil {
		return nil, fmt.Errorf("client CA file: %w", err)
	}
	// A certificate is asked for, not required, by the handshake, so that
	// a caller without one gets an answer it can read (and /healthz) rather
	// than a broken connection; one that is sent must verify.
	tc.ClientAuth = tls.VerifyClientCertIfGiven
	// Every connection is verified against the CA file as it is now: a
	// resumed session would skip that.
	tc.SessionTicketsDisabled = true
	tc.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		pool, err := cas.get()
		if err != nil {
			return nil, err
		}
		c := tc.Clone()
		c.GetConfigForClient, c.ClientCAs = nil, pool
		return c, nil
	}
	return tc, nil
}

// guarded is the middleware Wrap returns.
type guarded struct {
	next     http.Handler
	log      *slog.Logger
	auth     AuthMode
	token    *watched[[sha256.Size]byte]
	readOnly bool
}

func (g *guarded) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Liveness tells nothing but "ok", and the probes of Docker and
	// Kubernetes carry no credentials.
	if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		g.next.ServeHTTP(w, r)
		return
	}
	if e, refused := g.authenticate(r); refused {
		g.log.Warn("control plane request refused", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path,
			"reason", e.Body["message"])
		writeAWSError(w, e)
		return
	}
	if g.readOnly && r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeAWSError(w, awsError{Status: http.StatusForbidden, Type: "AccessDeniedException", Body: map[string]any{
			"message": "this control plane is read-only (api.read_only): streams are created and deleted in the configuration file"}})
		return
	}
	g.next.ServeHTTP(w, r)
}

// authenticate returns the error to answer when r does not prove who sent
// it. The answer never repeats what was sent.
func (g *guarded) authenticate(r *http.Request) (awsError, bool) {
	unrecognized := func(msg string) (awsError, bool) {
		return awsError{Status: http.StatusUnauthorized, Type: "UnrecognizedClientException",
			Body: map[string]any{"message": msg}}, true
	}
	switch g.auth {
	case AuthToken:
		want, err := g.token.get()
		if err != nil {
			return awsError{Status: http.StatusServiceUnavailable, Type: "InternalServerException",
				Body: map[string]any{"message": "cdcd cannot read its token file; the cdcd log has the detail"}}, true
		}
		got := r.Header.Get(TokenHeader)
		if got == "" {
			return unrecognized("no token: send it in the " + TokenHeader + " header")
		}
		// Comparing digests keeps the time taken independent of the
		// token's length as well as its bytes.
		if sum := sha256.Sum256([]byte(got)); subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			return unrecognized("the token is not the one cdcd holds")
		}
	case AuthMTLS:
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			return unrecognized("no client certificate: connect with one that the control plane's client CA signs")
		}
	}
	return awsError{}, false
}

// parseToken is the token a token file holds: its content without
// surrounding white space. Errors never quote it.
func parseToken(b []byte) ([]byte, error) {
	t := bytes.TrimSpace(b)
	if len(t) < minTokenLen {
		return nil, fmt.Errorf("the token has %d characters; want at least %d", len(t), minTokenLen)
	}
	for _, c := range t {
		if c < 0x20 || c == 0x7f {
			return nil, errors.New("the token holds a control character, which an HTTP header cannot carry")
		}
	}
	return t, nil
}

// parsePool reads PEM CA certificates.
func parsePool(pem []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("holds no PEM certificate")
	}
	return pool, nil
}
