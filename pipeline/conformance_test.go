package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dsql"
	"github.com/aws/aws-sdk-go-v2/service/dsql/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcd-dev/cdcd/ident"
	"github.com/cdcd-dev/cdcd/rolecreds"
	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/state/api"
)

// These tests drive cdcd's control plane with the real AWS SDK dsql client:
// if the SDK decodes every answer and error, DSQL tooling works unchanged.

const (
	cluster   = "kmabugltfmjdaj2siqr2qbxgju"
	cluster2  = "ffthunp5stx6ffs2vyfqoatmfu"
	account   = "123456789012"
	kinesisA  = "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
	roleA     = "arn:aws:iam::123456789012:role/cdcd-orders"
	roleOther = "arn:aws:iam::123456789012:role/admin"
)

// fixture is a control plane on a state directory, reopenable to simulate
// a daemon restart.
type fixture struct {
	t        *testing.T
	dir      string
	cfg      SupervisorConfig
	store    *state.Store
	reg      *Supervisor
	prom     *prometheus.Registry
	srv      *httptest.Server
	client   *dsql.Client
	stopOnce bool
}

func newFixture(t *testing.T, mod func(*SupervisorConfig)) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir()}
	f.cfg = SupervisorConfig{
		Region: "us-east-1", Account: account,
		Clusters: []string{cluster, cluster2},
		Roles:    mustAllow(t, "arn:aws:iam::123456789012:role/cdcd-*"),
		Runner:   IdleRunner{Delay: 20 * time.Millisecond},
	}
	if mod != nil {
		mod(&f.cfg)
	}
	f.start()
	t.Cleanup(f.stop)
	return f
}

func (f *fixture) start() {
	t := f.t
	t.Helper()
	var err error
	logger := slog.New(slog.DiscardHandler)
	if f.store, err = state.Open(f.dir, logger); err != nil {
		t.Fatal(err)
	}
	f.prom = prometheus.NewRegistry()
	cfg := f.cfg
	cfg.Store, cfg.Logger = f.store, logger
	if cfg.Metrics, err = state.NewMetrics(f.prom); err != nil {
		t.Fatal(err)
	}
	if f.reg, err = NewSupervisor(cfg); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(api.NewServer(f.reg, f.prom, logger))
	f.client = dsql.New(dsql.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(f.srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		HTTPClient:   f.srv.Client(),
	})
	f.stopOnce = false
}

func (f *fixture) stop() {
	if f.stopOnce {
		return
	}
	f.stopOnce = true
	f.srv.Close()
	_ = f.reg.Close()
	_ = f.store.Close()
}

// restart stops everything and opens the same state directory again.
func (f *fixture) restart(mod func(*SupervisorConfig)) {
	f.stop()
	if mod != nil {
		mod(&f.cfg)
	}
	f.start()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func createInput(clusterID string) *dsql.CreateStreamInput {
	return &dsql.CreateStreamInput{
		ClusterIdentifier: aws.String(clusterID),
		Format:            types.StreamFormatJson,
		Ordering:          types.StreamOrderingUnordered,
		Tags:              map[string]string{"team": "orders"},
		TargetDefinition: &types.TargetDefinitionMemberKinesis{Value: types.KinesisTargetDefinition{
			StreamArn: aws.String(kinesisA), RoleArn: aws.String(roleA),
		}},
	}
}

func fastActive(o *dsql.StreamActiveWaiterOptions) {
	o.MinDelay, o.MaxDelay = 10*time.Millisecond, 100*time.Millisecond
}

func fastNotExists(o *dsql.StreamNotExistsWaiterOptions) {
	o.MinDelay, o.MaxDelay = 10*time.Millisecond, 100*time.Millisecond
}

func getInput(streamID string) *dsql.GetStreamInput {
	return &dsql.GetStreamInput{ClusterIdentifier: aws.String(cluster), StreamIdentifier: aws.String(streamID)}
}

func TestConformanceLifecycle(t *testing.T) {
	f := newFixture(t, nil)
	ctx := ctxT(t)
	before := time.Now().Add(-time.Second)

	out, err := f.client.CreateStream(ctx, createInput(cluster))
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.StreamIdentifier)
	if !ident.ValidID(id) || aws.ToString(out.ClusterIdentifier) != cluster ||
		aws.ToString(out.Arn) != ident.StreamARN("aws", "us-east-1", account, cluster, id) ||
		out.Format != types.StreamFormatJson || out.Ordering != types.StreamOrderingUnordered ||
		out.Status != types.StreamStatusCreating ||
		out.CreationTime == nil || out.CreationTime.Before(before) || out.CreationTime.After(time.Now()) {
		t.Fatalf("CreateStream = %+v", out)
	}

	got, err := dsql.NewStreamActiveWaiter(f.client, fastActive).WaitForOutput(ctx, getInput(id), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != types.StreamStatusActive || got.StatusReason != nil ||
		!got.CreationTime.Equal(*out.CreationTime) || aws.ToString(got.Arn) != aws.ToString(out.Arn) ||
		got.Tags["team"] != "orders" || got.Ordering != types.StreamOrderingUnordered {
		t.Fatalf("GetStream = %+v", got)
	}
	k, ok := got.TargetDefinition.(*types.TargetDefinitionMemberKinesis)
	if !ok || aws.ToString(k.Value.StreamArn) != kinesisA || aws.ToString(k.Value.RoleArn) != roleA {
		t.Fatalf("targetDefinition = %#v", got.TargetDefinition)
	}

	del, err := f.client.DeleteStream(ctx, &dsql.DeleteStreamInput{
		ClusterIdentifier: aws.String(cluster), StreamIdentifier: aws.String(id),
	})
	if err != nil {
		t.Fatal(err)
	}
	if del.Status != types.StreamStatusDeleting && del.Status != types.StreamStatusDeleted ||
		aws.ToString(del.StreamIdentifier) != id || !del.CreationTime.Equal(*out.CreationTime) {
		t.Fatalf("DeleteStream = %+v", del)
	}
	if err := dsql.NewStreamNotExistsWaiter(f.client, fastNotExists).Wait(ctx, getInput(id), time.Minute); err != nil {
		t.Fatal(err)
	}
	_, err = f.client.GetStream(ctx, getInput(id))
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("GetStream after delete: %v", err)
	}
	// The file goes right after the stream turns DELETED (which already
	// reads as not found); wait for it without asserting on speed.
	for {
		if _, err := f.store.Load(id); errors.Is(err, state.ErrNotFound) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("stream file outlived DeleteStream")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestConformanceIdempotentCreate(t *testing.T) {
	f := newFixture(t, nil)
	ctx := ctxT(t)
	in := createInput(cluster)
	in.ClientToken = aws.String("retry-me-1")
	a, err := f.client.CreateStream(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.client.CreateStream(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(a.StreamIdentifier) != aws.ToString(b.StreamIdentifier) {
		t.Fatalf("a retried CreateStream made a second stream: %s, %s", *a.StreamIdentifier, *b.StreamIdentifier)
	}
	in.Ordering = "ROW"
	_, err = f.client.CreateStream(ctx, in)
	var ce *types.ConflictException
	if !errors.As(err, &ce) || aws.ToString(ce.ResourceId) != aws.ToString(a.StreamIdentifier) {
		t.Fatalf("same token, other body: %v", err)
	}
	// The SDK fills in a fresh token when none is given: two streams.
	c, err := f.client.CreateStream(ctx, createInput(cluster))
	if err != nil || aws.ToString(c.StreamIdentifier) == aws.ToString(a.StreamIdentifier) {
		t.Fatalf("tokenless create: %v, %v", c, err)
	}
}

func TestConformanceListStreamsPages(t *testing.T) {
	f := newFixture(t, nil)
	ctx := ctxT(t)
	want := map[string]bool{}
	for range 25 {
		out, err := f.client.CreateStream(ctx, createInput(cluster))
		if err != nil {
			t.Fatal(err)
		}
		want[*out.StreamIdentifier] = true
	}
	// A stream on another cluster must not show up.
	if _, err := f.client.CreateStream(ctx, createInput(cluster2)); err != nil {
		t.Fatal(err)
	}

	p := dsql.NewListStreamsPaginator(f.client, &dsql.ListStreamsInput{
		ClusterIdentifier: aws.String(cluster), MaxResults: aws.Int32(10),
	})
	var sizes []int
	seen := map[string]bool{}
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(page.Streams))
		for _, s := range page.Streams {
			id := aws.ToString(s.StreamIdentifier)
			if seen[id] || !want[id] || aws.ToString(s.ClusterIdentifier) != cluster || s.CreationTime == nil || s.Arn == nil {
				t.Fatalf("bad entry %+v (seen %v)", s, seen[id])
			}
			seen[id] = true
		}
	}
	if fmt.Sprint(sizes) != "[10 10 5]" || len(seen) != 25 {
		t.Fatalf("pages %v, %d streams", sizes, len(seen))
	}

	// Default page size is 10.
	out, err := f.client.ListStreams(ctx, &dsql.ListStreamsInput{ClusterIdentifier: aws.String(cluster)})
	if err != nil || len(out.Streams) != 10 || out.NextToken == nil {
		t.Fatalf("default page: %d streams, token %v, %v", len(out.Streams), out.NextToken, err)
	}
	// A token is bound to its cluster.
	_, err = f.client.ListStreams(ctx, &dsql.ListStreamsInput{ClusterIdentifier: aws.String(cluster2), NextToken: out.NextToken})
	var ve *types.ValidationException
	if !errors.As(err, &ve) {
		t.Fatalf("foreign token: %v", err)
	}
}

// statusOf is the HTTP status behind an SDK error.
func statusOf(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func TestConformanceErrors(t *testing.T) {
	f := newFixture(t, func(c *SupervisorConfig) { c.MaxStreamsPerCluster = 2 })
	ctx := ctxT(t)
	managed, err := f.reg.Adopt(state.Definition{
		ClusterID: cluster, StreamID: ident.DeriveID(cluster, "orders"), Format: "JSON", Ordering: "ROW",
		Target:     state.Target{StreamARN: kinesisA, RoleARN: roleA},
		ConfigFile: "/etc/cdcd/cdcd.toml",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.CreateStream(ctx, createInput(cluster)); err != nil {
		t.Fatal(err)
	}

	var (
		ve *types.ValidationException
		nf *types.ResourceNotFoundException
		ce *types.ConflictException
		ad *types.AccessDeniedException
		qe *types.ServiceQuotaExceededException
	)
	withInput := func(mod func(*dsql.CreateStreamInput)) func() error {
		return func() error {
			in := createInput(cluster2)
			mod(in)
			_, err := f.client.CreateStream(ctx, in)
			return err
		}
	}
	tests := []struct {
		name   string
		call   func() error
		target any
		status int
		text   string
	}{
		{"get unknown stream", func() error {
			_, err := f.client.GetStream(ctx, getInput(ident.NewStreamID()))
			return err
		}, &nf, 404, "not found"},
		{"get stream on the wrong cluster", func() error {
			_, err := f.client.GetStream(ctx, &dsql.GetStreamInput{ClusterIdentifier: aws.String(cluster2), StreamIdentifier: aws.String(managed.ID())})
			return err
		}, &nf, 404, "not found"},
		{"get malformed id", func() error {
			_, err := f.client.GetStream(ctx, getInput("NOT-AN-ID"))
			return err
		}, &ve, 400, "streamIdentifier"},
		{"list unknown cluster", func() error {
			_, err := f.client.ListStreams(ctx, &dsql.ListStreamsInput{ClusterIdentifier: aws.String(ident.DeriveID("nope"))})
			return err
		}, &nf, 404, "cluster"},
		{"list max-results 0", func() error {
			_, err := f.client.ListStreams(ctx, &dsql.ListStreamsInput{ClusterIdentifier: aws.String(cluster), MaxResults: aws.Int32(0)})
			return err
		}, &ve, 400, "maxResults"},
		{"list max-results 101", func() error {
			_, err := f.client.ListStreams(ctx, &dsql.ListStreamsInput{ClusterIdentifier: aws.String(cluster), MaxResults: aws.Int32(101)})
			return err
		}, &ve, 400, "maxResults"},
		{"list garbage token", func() error {
			_, err := f.client.ListStreams(ctx, &dsql.ListStreamsInput{ClusterIdentifier: aws.String(cluster), NextToken: aws.String("!!")})
			return err
		}, &ve, 400, "nextToken"},
		{"create on unknown cluster", func() error {
			_, err := f.client.CreateStream(ctx, createInput(ident.DeriveID("nope")))
			return err
		}, &nf, 404, "cluster"},
		{"create bad ordering", withInput(func(in *dsql.CreateStreamInput) { in.Ordering = "SORTED" }), &ve, 400, "ordering"},
		{"create bad format", withInput(func(in *dsql.CreateStreamInput) { in.Format = "AVRO" }), &ve, 400, "format"},
		{"create bad stream arn", withInput(func(in *dsql.CreateStreamInput) {
			in.TargetDefinition = &types.TargetDefinitionMemberKinesis{Value: types.KinesisTargetDefinition{
				StreamArn: aws.String("arn:aws:sqs:us-east-1:123456789012:q"), RoleArn: aws.String(roleA)}}
		}), &ve, 400, "streamArn"},
		{"create bad role arn", withInput(func(in *dsql.CreateStreamInput) {
			in.TargetDefinition = &types.TargetDefinitionMemberKinesis{Value: types.KinesisTargetDefinition{
				StreamArn: aws.String(kinesisA), RoleArn: aws.String("arn:aws:iam::123456789012:role/cdcd/")}}
		}), &ve, 400, "roleArn"},
		{"create reserved tag", withInput(func(in *dsql.CreateStreamInput) { in.Tags = map[string]string{"aws:x": "y"} }), &ve, 400, "reserved"},
		{"create role not allowed", withInput(func(in *dsql.CreateStreamInput) {
			in.TargetDefinition = &types.TargetDefinitionMemberKinesis{Value: types.KinesisTargetDefinition{
				StreamArn: aws.String(kinesisA), RoleArn: aws.String(roleOther)}}
		}), &ad, 403, "admin"},
		{"create past the quota", func() error {
			_, err := f.client.CreateStream(ctx, createInput(cluster))
			return err
		}, &qe, 402, "maximum"},
		{"delete config-managed stream", func() error {
			_, err := f.client.DeleteStream(ctx, &dsql.DeleteStreamInput{ClusterIdentifier: aws.String(cluster), StreamIdentifier: aws.String(managed.ID())})
			return err
		}, &ce, 409, "managed by config file /etc/cdcd/cdcd.toml"},
		{"delete unknown stream", func() error {
			_, err := f.client.DeleteStream(ctx, &dsql.DeleteStreamInput{ClusterIdentifier: aws.String(cluster), StreamIdentifier: aws.String(ident.NewStreamID())})
			return err
		}, &nf, 404, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("succeeded")
			}
			if !errors.As(err, tt.target) {
				t.Fatalf("error %T %v, want %T", err, err, tt.target)
			}
			if s := statusOf(err); s != tt.status {
				t.Errorf("HTTP status %d, want %d", s, tt.status)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("message %q lacks %q", err.Error(), tt.text)
			}
		})
	}
}

func mustAllow(t *testing.T, patterns ...string) *rolecreds.AllowList {
	t.Helper()
	a, err := rolecreds.NewAllowList(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
