package api

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/state"
)

func TestHealth(t *testing.T) {
	impaired := testView(state.Impaired)
	impaired.StatusReason = &state.Reason{Code: codes.SourceUnavailable, Message: "connect:\nconnection refused", UpdatedAt: time.Unix(1705318200, 0)}
	for _, tc := range []struct {
		name  string
		views []StreamView
		ready bool
		line  string // the printed line, or the error's
		ok    bool
	}{
		{"live", []StreamView{impaired}, false, "live: ok", true},
		{"no streams", nil, true, "ready: no streams", true},
		{"all active", []StreamView{testView(state.Active), testView(state.Active)}, true, "ready: 2 streams, all ACTIVE", true},
		{"impaired", []StreamView{testView(state.Active), impaired}, true,
			"not ready: 1 of 2 streams: stream " + testStream + " (cluster " + testCluster + ") is IMPAIRED: SOURCE_UNAVAILABLE connect: connection refused", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			views := tc.views
			ctl := &fakeController{streams: func(context.Context) ([]StreamView, error) { return views, nil }}
			srv := httptest.NewServer(NewProbeServer(ctl, nil, nil))
			defer srv.Close()
			line, err := Health(context.Background(), ClientOptions{Endpoint: srv.URL + "/"}, tc.ready)
			if tc.ok && (err != nil || line != tc.line) {
				t.Errorf("got %q, %v; want %q", line, err, tc.line)
			}
			if !tc.ok && (err == nil || err.Error() != tc.line || line != "") {
				t.Errorf("got %q, %v; want the error %q", line, err, tc.line)
			}
		})
	}
}

func TestHealthUnreachable(t *testing.T) {
	srv := httptest.NewServer(NewProbeServer(oneStream(), nil, nil))
	url := srv.URL
	srv.Close()
	if _, err := Health(context.Background(), ClientOptions{Endpoint: url}, false); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("a daemon that is not there: %v", err)
	}
	if _, err := Health(context.Background(), ClientOptions{Endpoint: url, CAFile: "/nonexistent/ca.pem"}, false); err == nil || !strings.Contains(err.Error(), "ca.pem") {
		t.Errorf("a CA file that is not there: %v", err)
	}
}
