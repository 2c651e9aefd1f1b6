package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dsql"
	"github.com/aws/aws-sdk-go-v2/service/dsql/types"

	"github.com/cdcd-dev/cdcd/test/stsstub"
)

// TestControlPlane drives the daemon with the AWS SDK's DSQL client: a
// config-managed stream is listed and cannot be deleted through the API; a
// stream created through the API becomes ACTIVE, delivers every table of
// the database, survives a restart, and on deletion releases its slot and
// its metric series.
func TestControlPlane(t *testing.T) {
	t.Parallel()
	const apiRole = "arn:aws:iam::000000000000:role/cdcd-api"
	sts := stsstub.New(t)
	// The trust of API-created streams names the cdcd stream ARN as the
	// external id, which exists only after creation: this role asks none.
	sts.AddRoleWith(apiRole, stsstub.Role{TrustAllowed: true, TagSession: true})
	h := newHarness(t, harnessOptions{
		tables: []string{"public.items"}, shards: 1,
		aws:     fmt.Sprintf("sts_endpoint = %q\nrole_arn_allow = [%q]", sts.URL(), apiRole),
		cluster: "set_replica_identity_full = true",
	})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	h.exec(`CREATE TABLE notes (id int PRIMARY KEY, body text)`)
	d := h.start()
	h.waitStatus("ACTIVE", "", 30*time.Second)
	cluster, configured := h.streamIDs()
	cp := h.controlPlane()
	ctx := context.Background()

	list, err := cp.ListStreams(ctx, &dsql.ListStreamsInput{ClusterIdentifier: &cluster})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Streams) != 1 || aws.ToString(list.Streams[0].StreamIdentifier) != configured {
		t.Fatalf("ListStreams = %+v, want the configured stream %s", list.Streams, configured)
	}
	_, err = cp.DeleteStream(ctx, &dsql.DeleteStreamInput{ClusterIdentifier: &cluster, StreamIdentifier: &configured})
	var conflict *types.ConflictException
	if !errors.As(err, &conflict) || !strings.Contains(aws.ToString(conflict.Message), h.config) {
		t.Fatalf("deleting a config-managed stream: got %v, want ConflictException naming %s", err, h.config)
	}

	// The same through cdcd streams.
	cli := func(args ...string) (string, error) {
		out, err := exec.Command(binary, append([]string{"streams"}, append(args, "--endpoint", "http://"+h.listen, "--cluster", cluster)...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := cli("list"); err != nil || !strings.Contains(out, configured) {
		t.Errorf("cdcd streams list: %v\n%s", err, out)
	}
	if out, err := cli("get", "--stream", configured, "--json"); err != nil || !strings.Contains(out, `"ACTIVE"`) || !strings.Contains(out, `"slot"`) {
		t.Errorf("cdcd streams get: %v\n%s", err, out)
	}
	if out, err := cli("delete", "--stream", configured); err == nil || !strings.Contains(out, "ConflictException") {
		t.Errorf("cdcd streams delete of a config-managed stream: %v\n%s", err, out)
	}

	// A stream created through the API, on another Kinesis stream.
	apiID, kin := h.createAPIStream(cluster, apiRole, 2, func(in *dsql.CreateStreamInput) {
		in.Ordering = types.StreamOrdering("ROW") // cdcd extension; the SDK sends unknown enum values as given
		in.ClientToken = aws.String("e2e-token-1")
	})
	get := &dsql.GetStreamInput{ClusterIdentifier: &cluster, StreamIdentifier: &apiID}
	if err := dsql.NewStreamActiveWaiter(cp).Wait(ctx, get, time.Minute); err != nil {
		t.Fatalf("StreamActive waiter: %v\n%s", err, d.Logs())
	}
	h.exec(`INSERT INTO items VALUES (1, 'a')`)
	h.exec(`INSERT INTO notes VALUES (1, 'n')`)
	tables := func(recs []cdcRecord) map[string]bool {
		got := map[string]bool{}
		for _, r := range recs {
			got[r.Source.Table] = true
		}
		return got
	}
	h.waitRecordsFrom(kin, 60*time.Second, func(recs []cdcRecord) bool {
		got := tables(recs)
		return got["items"] && got["notes"]
	})

	// Restart: the API-created stream is still there and ACTIVE.
	d.stop(t)
	d = h.start()
	if err := dsql.NewStreamActiveWaiter(cp).Wait(ctx, get, time.Minute); err != nil {
		t.Fatalf("API-created stream after restart: %v", err)
	}
	h.exec(`INSERT INTO notes VALUES (2, 'after restart')`)
	h.waitRecordsFrom(kin, 60*time.Second, func(recs []cdcRecord) bool {
		for _, r := range recs {
			if r.Source.Table == "notes" && string(r.After["id"]) == "2" {
				return true
			}
		}
		return false
	})

	// A running stream has series of every component; the deleted one
	// below must have none left (but its transition counts, which state
	// keeps until the process restarts).
	series := h.streamSeries(apiID)
	for _, name := range []string{"cdcd_stream_status", "cdcd_capture_transactions_total", "cdcd_slot_wal_status",
		"cdcd_published_records_total", "cdcd_behind_source_lag_seconds"} {
		if series[name] == 0 {
			t.Errorf("before the deletion, /metrics has no %s series of stream %s", name, apiID)
		}
	}

	if _, err := cp.DeleteStream(ctx, &dsql.DeleteStreamInput{ClusterIdentifier: &cluster, StreamIdentifier: &apiID}); err != nil {
		t.Fatal(err)
	}
	if err := dsql.NewStreamNotExistsWaiter(cp).Wait(ctx, get, time.Minute); err != nil {
		t.Fatalf("StreamNotExists waiter: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := h.db.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, "cdcd_"+apiID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted stream's slot cdcd_%s still exists", apiID)
		}
		time.Sleep(200 * time.Millisecond)
	}
	series = h.streamSeries(apiID)
	if len(series) != 0 {
		t.Errorf("/metrics still has series of the deleted stream %s: %v", apiID, series)
	}
	d.stop(t)
}

// streamSeries scrapes the daemon's /metrics and counts the samples
// labelled stream=<stream>, by sample name.
func (h *harness) streamSeries(stream string) map[string]int {
	h.t.Helper()
	resp, err := http.Get("http://" + h.listen + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	label := `stream="` + stream + `"`
	out := map[string]int{}
	for line := range strings.Lines(string(b)) {
		name, labels, ok := strings.Cut(line, "{")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(labels, label) || strings.Contains(labels, ","+label) {
			out[name]++
		}
	}
	return out
}

// waitRecordsFrom is waitRecords on another Kinesis stream.
func (h *harness) waitRecordsFrom(stream string, timeout time.Duration, ok func([]cdcRecord) bool) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		recs := h.tailArgs(time.Second, "--kinesis-stream", stream, "--endpoint", h.env.KinesisEndpoint, "--region", h.env.Region)
		if ok(recs) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("records did not arrive on %s within %s; got %d", stream, timeout, len(recs))
		}
	}
}
