package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dsql"

	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// streamIDs reads the cluster and stream identifiers from the daemon's state
// directory, where it saves every stream it runs.
func (h *harness) streamIDs() (cluster, stream string) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(h.stateDir, "streams", "*.json"))
		if len(files) == 1 {
			var rec struct {
				Definition struct {
					ClusterID string `json:"clusterIdentifier"`
					StreamID  string `json:"streamIdentifier"`
				} `json:"definition"`
			}
			b, err := os.ReadFile(files[0])
			if err == nil && json.Unmarshal(b, &rec) == nil {
				return rec.Definition.ClusterID, rec.Definition.StreamID
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no stream state file in %s", h.stateDir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stateFile reads the stream's file in the daemon's state directory
// (state_dir/streams/<id>.json): its bytes and the record they hold.
func (h *harness) stateFile() ([]byte, state.File) {
	h.t.Helper()
	_, id := h.streamIDs()
	raw, err := os.ReadFile(filepath.Join(h.stateDir, "streams", id+".json"))
	if err != nil {
		h.t.Fatal(err)
	}
	var rec state.File
	if err := json.Unmarshal(raw, &rec); err != nil {
		h.t.Fatalf("state file of stream %s: %v", id, err)
	}
	return raw, rec
}

// controlPlane is the AWS SDK's DSQL client pointed at the daemon.
func (h *harness) controlPlane() *dsql.Client { return testenv.ControlPlane(h.env, h.listen) }

// waitStatus polls GetStream until the stream has status (and, if code is
// not empty, that status reason) or the timeout passes.
func (h *harness) waitStatus(status, code string, timeout time.Duration) {
	h.t.Helper()
	cluster, stream := h.streamIDs()
	cp := h.controlPlane()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		out, err := cp.GetStream(context.Background(), &dsql.GetStreamInput{ClusterIdentifier: &cluster, StreamIdentifier: &stream})
		if err == nil {
			got, reason := string(out.Status), ""
			if out.StatusReason != nil {
				reason = string(out.StatusReason.Error)
			}
			last = got + " " + reason
			if got == status && (code == "" || reason == code) {
				return
			}
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	h.t.Fatalf("stream did not reach %s %s within %s; last: %s", status, code, timeout, last)
}

// metric sums the daemon's /metrics samples of name whose labels include
// every one of labels (each written as in the exposition, `to="IMPAIRED"`).
func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	metrics, err := testenv.Metrics(h.listen)
	if err != nil {
		h.t.Fatal(err)
	}
	sum := 0.0
	for _, v := range testenv.Samples(metrics, name, labels...) {
		sum += v
	}
	return sum
}
