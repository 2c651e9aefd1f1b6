package pipeline

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/state/api"
)

// apiGuard is the control plane's guard that [api] describes.
func apiGuard(c config.APIConfig) api.Guard {
	return api.Guard{Auth: api.AuthMode(c.Auth), CertFile: c.TLSCertFile, KeyFile: c.TLSKeyFile,
		ClientCAFile: c.ClientCAFile, TokenFile: c.TokenFile, ReadOnly: c.ReadOnly}
}

// startHTTP serves h on addr (the config key key), over TLS when tc is not
// nil, and returns the function that shuts it down and the address it got.
func startHTTP(key, addr string, h http.Handler, tc *tls.Config, log *slog.Logger) (func(context.Context), net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s (the %s key): %w", addr, key, err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	// Failed handshakes (a client certificate of another CA, a scanner)
	// go to cdcd's log rather than the standard logger.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "listener", key, "err", err)
		}
	}()
	return func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, ln.Addr(), nil
}

// both stops a and b at once, so that shutting down takes the longer of
// the two, not their sum.
func both(a, b func(context.Context)) func(context.Context) {
	return func(ctx context.Context) {
		done := make(chan struct{})
		go func() { defer close(done); b(ctx) }()
		a(ctx)
		<-done
	}
}
