package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/rolecreds"
	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/state/api"
	"github.com/cdcd-dev/cdcd/test/testpki"
)

const (
	testCluster = "kmabugltfmjdaj2siqr2qbxgju"
	testKinesis = "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
	testRole    = "arn:aws:iam::123456789012:role/cdcd-orders"
)

// controlPlane serves cdcd's control plane in-process, its streams run by
// runner, and returns its URL.
func controlPlane(t *testing.T, runner pipeline.Runner) string {
	t.Helper()
	return guardedControlPlane(t, runner, api.Guard{})
}

// guardedControlPlane is controlPlane behind g, over TLS when g has a
// certificate.
func guardedControlPlane(t *testing.T, runner pipeline.Runner, g api.Guard) string {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	store, err := state.Open(t.TempDir(), logger)
	if err != nil {
		t.Fatal(err)
	}
	prom := prometheus.NewRegistry()
	metrics, err := state.NewMetrics(prom)
	if err != nil {
		t.Fatal(err)
	}
	roles, err := rolecreds.NewAllowList([]string{"arn:aws:iam::123456789012:role/cdcd-*"})
	if err != nil {
		t.Fatal(err)
	}
	sup, err := pipeline.NewSupervisor(pipeline.SupervisorConfig{
		Store: store, Logger: logger, Metrics: metrics, Region: "us-east-1", Account: "123456789012",
		Clusters: []string{testCluster}, Roles: roles, Runner: runner,
	})
	if err != nil {
		t.Fatal(err)
	}
	h, tc, err := g.Wrap(api.NewServer(sup, prom, logger), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sup.Close()
		_ = store.Close()
	})
	return testpki.Serve(t, h, tc, logger)
}

// streams runs cdcd streams against the control plane at url.
func streams(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, stderr bytes.Buffer
	err := run(ctx, append(append([]string{"streams"}, args...), "--endpoint", url, "--cluster", testCluster), &out, &stderr)
	return out.String(), err
}

// streamsJSON runs cdcd streams with --json and decodes what it prints.
func streamsJSON(t *testing.T, v any, url string, args ...string) {
	t.Helper()
	out, err := streams(t, url, append(args, "--json")...)
	if err != nil {
		t.Fatalf("streams %v: %v", args, err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("streams %v printed no JSON document: %v\n%s", args, err, out)
	}
}

func create(t *testing.T, url string, extra ...string) api.Stream {
	t.Helper()
	var s api.Stream
	streamsJSON(t, &s, url, append([]string{"create", "--kinesis-stream-arn", testKinesis, "--role-arn", testRole}, extra...)...)
	if s.StreamIdentifier == "" || s.Status == "" || s.CreationTime.IsZero() {
		t.Fatalf("created %+v", s)
	}
	return s
}

func TestStreamsLifecycle(t *testing.T) {
	url := controlPlane(t, pipeline.IdleRunner{})
	created := create(t, url, "--ordering", "ROW", "--tag", "team=orders", "--client-token", "t1")
	if again := create(t, url, "--ordering", "ROW", "--tag", "team=orders", "--client-token", "t1"); again.StreamIdentifier != created.StreamIdentifier {
		t.Errorf("a retried create made %s, want %s", again.StreamIdentifier, created.StreamIdentifier)
	}
	id := created.StreamIdentifier

	var got api.Stream
	for deadline := time.Now().Add(10 * time.Second); got.Status != "ACTIVE" && time.Now().Before(deadline); {
		streamsJSON(t, &got, url, "get", "--stream", id)
	}
	if got.Status != "ACTIVE" || got.Ordering != "ROW" || got.KinesisStreamArn != testKinesis || got.RoleArn != testRole ||
		got.Tags["team"] != "orders" || !got.CreationTime.Equal(created.CreationTime) {
		t.Errorf("get --json = %+v", got)
	}
	out, err := streams(t, url, "get", "--stream", id, "--json")
	if err != nil || !strings.Contains(out, `"creationTime": "`+created.CreationTime.Format(time.RFC3339Nano)+`"`) {
		t.Errorf("get --json does not show the creation time in RFC 3339: %v\n%s", err, out)
	}
	out, err = streams(t, url, "get", "--stream", id)
	for _, want := range []string{"stream:", id, "status:", "ACTIVE", "ordering:", "kinesis stream:", testKinesis,
		"tag team:", "created:", created.CreationTime.UTC().Format(time.RFC3339), "lag:", "source:", `"confirmedLsn"`} {
		if !strings.Contains(out, want) {
			t.Errorf("get lacks %q: %v\n%s", want, err, out)
		}
	}
	out, err = streams(t, url, "list")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); err != nil || len(lines) != 2 ||
		strings.Join(strings.Fields(lines[1]), " ") != id+" ACTIVE ROW orders" {
		t.Errorf("list: %v\n%s", err, out)
	}

	var deleted api.Stream
	if streamsJSON(t, &deleted, url, "delete", "--stream", id); deleted.Status != "DELETING" {
		t.Errorf("delete --json = %+v", deleted)
	}
}

// impairingRunner makes each stream ACTIVE, then IMPAIRED.
type impairingRunner struct{ pipeline.IdleRunner }

func (impairingRunner) RunStream(ctx context.Context, s *state.Stream) error {
	if err := s.Created(); err != nil {
		return err
	}
	if err := s.Fault(codes.KinesisAccessDenied, errors.New("not authorized to perform kinesis:PutRecords")); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func TestStreamsStatusReason(t *testing.T) {
	url := controlPlane(t, impairingRunner{})
	id := create(t, url).StreamIdentifier
	var got api.Stream
	for deadline := time.Now().Add(10 * time.Second); got.Status != "IMPAIRED" && time.Now().Before(deadline); {
		streamsJSON(t, &got, url, "get", "--stream", id)
	}
	if r := got.StatusReason; r == nil || r.Code != "KINESIS_ACCESS_DENIED" || !strings.Contains(r.Message, "kinesis:PutRecords") || r.UpdatedAt.IsZero() {
		t.Fatalf("get --json = %+v, reason %+v", got, got.StatusReason)
	}
	out, err := streams(t, url, "get", "--stream", id)
	if err != nil || !strings.Contains(out, "status reason:") || !strings.Contains(out, "KINESIS_ACCESS_DENIED") ||
		!strings.Contains(out, "status message:") || !strings.Contains(out, "not authorized to perform kinesis:PutRecords") {
		t.Errorf("get: %v\n%s", err, out)
	}
	if out, err := streams(t, url, "list"); err != nil || !strings.Contains(out, "IMPAIRED") || !strings.Contains(out, "KINESIS_ACCESS_DENIED") {
		t.Errorf("list: %v\n%s", err, out)
	}
}

// TestStreamsListPages: the control plane answers at most 100 streams a
// page; streams list shows every one.
func TestStreamsListPages(t *testing.T) {
	url := controlPlane(t, pipeline.IdleRunner{})
	ids := map[string]bool{}
	for i := range 123 {
		ids[create(t, url, "--client-token", fmt.Sprint("page-", i)).StreamIdentifier] = true
	}
	if len(ids) != 123 {
		t.Fatalf("created %d streams, want 123", len(ids))
	}
	var list []api.Stream
	streamsJSON(t, &list, url, "list")
	for _, s := range list {
		delete(ids, s.StreamIdentifier)
	}
	if len(list) != 123 || len(ids) != 0 {
		t.Errorf("list --json shows %d streams, missing %v", len(list), ids)
	}
	out, err := streams(t, url, "list")
	if n := strings.Count(out, "\n"); err != nil || n != 1+123 {
		t.Errorf("list printed %d lines, want a header and 123 streams: %v", n, err)
	}
}

func TestStreamsErrors(t *testing.T) {
	url := controlPlane(t, pipeline.IdleRunner{})
	var ue usageError
	for _, args := range [][]string{{"get"}, {"delete"}, {"create", "--role-arn", testRole}, {"rename"}} {
		if _, err := streams(t, url, args...); !errors.As(err, &ue) {
			t.Errorf("streams %v: got %v, want a usage error", args, err)
		}
	}
	if _, err := streams(t, url, "get", "--stream", "aaaaaaaaaaaaaaaaaaaaaaaaaa"); err == nil || !strings.HasPrefix(err.Error(), "ResourceNotFoundException: ") {
		t.Errorf("get of an unknown stream: %v", err)
	}
	_, err := streams(t, url, "create", "--kinesis-stream-arn", testKinesis, "--role-arn", "arn:aws:iam::123456789012:role/admin")
	if err == nil || !strings.HasPrefix(err.Error(), "AccessDeniedException: ") {
		t.Errorf("create with a role outside the allow-list: %v", err)
	}
	out, err := streams(t, url, "list")
	if err != nil || strings.TrimSpace(out) != "STREAM  STATUS  ORDERING  KINESIS STREAM  REASON" {
		t.Errorf("list of no streams: %v\n%q", err, out)
	}
	if out, err := streams(t, url, "list", "--json"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("list --json of no streams: %v\n%q", err, out)
	}
}
