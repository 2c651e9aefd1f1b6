package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// healthTimeout bounds one health check: a daemon that does not answer in
// this long is not healthy, whatever the caller's own deadline.
const healthTimeout = 10 * time.Second

// Health asks the daemon at o.Endpoint whether it is live (/healthz) or,
// with ready, ready (/readyz). It returns one line that says what the
// daemon answered; when that is not 200, the line is the error's message.
func Health(ctx context.Context, o ClientOptions, ready bool) (string, error) {
	rt, err := o.transport()
	if err != nil {
		return "", err
	}
	path := "/healthz"
	if ready {
		path = "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(o.Endpoint, "/")+path, nil)
	if err != nil {
		return "", fmt.Errorf("health check of %q: %w", o.Endpoint, err)
	}
	client := &http.Client{Transport: rt}
	// The transport is this call's own: leave no connection behind.
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", req.URL, err)
	}
	line := healthLine(resp, body)
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(line)
	}
	return line, nil
}

// readyAnswer is what /readyz answers, as far as a line needs it.
type readyAnswer struct {
	Ready    bool   `json:"ready"`
	Streams  int    `json:"streams"`
	Error    string `json:"error"`
	NotReady []struct {
		Cluster      string `json:"clusterIdentifier"`
		Stream       string `json:"streamIdentifier"`
		Status       string `json:"status"`
		StatusReason *struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		} `json:"statusReason"`
	} `json:"notReady"`
}

// healthLine says in one line what a health endpoint answered.
func healthLine(resp *http.Response, body []byte) string {
	if t := resp.Header.Get("X-Amzn-Errortype"); t != "" {
		var e struct{ Message string }
		_ = json.Unmarshal(body, &e)
		return oneLine(t + ": " + e.Message)
	}
	var a readyAnswer
	if resp.Request.URL.Path != "/readyz" || json.Unmarshal(body, &a) != nil {
		if resp.StatusCode == http.StatusOK {
			return "live: " + oneLine(string(body))
		}
		return oneLine(fmt.Sprintf("%s from %s: %s", resp.Status, resp.Request.URL, body))
	}
	switch {
	case a.Ready && a.Streams == 0:
		return "ready: no streams"
	case a.Ready && a.Streams == 1:
		return "ready: 1 stream, ACTIVE"
	case a.Ready:
		return fmt.Sprintf("ready: %d streams, all ACTIVE", a.Streams)
	case a.Error != "":
		return "not ready: " + a.Error
	}
	parts := make([]string, len(a.NotReady))
	for i, n := range a.NotReady {
		parts[i] = fmt.Sprintf("stream %s (cluster %s) is %s", n.Stream, n.Cluster, n.Status)
		if r := n.StatusReason; r != nil {
			parts[i] += fmt.Sprintf(": %s %s", r.Error, r.Message)
		}
	}
	return oneLine(fmt.Sprintf("not ready: %d of %d streams: %s", len(a.NotReady), a.Streams, strings.Join(parts, "; ")))
}

// oneLine keeps a line one line, whatever a status message holds.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
