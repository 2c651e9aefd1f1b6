package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dsql/types"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/ident"
	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/state/api"
)

func do(t *testing.T, method, url, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	return resp, m
}

func TestGetStreamWireShape(t *testing.T) {
	f := newFixture(t, func(c *SupervisorConfig) {
		c.Runner = funcRunner{
			run: func(ctx context.Context, s *state.Stream) error {
				_ = s.Created()
				_ = s.Checkpoint(state.Checkpoint{LSN: 0x16_B374D848, TsNs: 1})
				_ = s.Lag(1500 * time.Millisecond)
				_ = s.Fault(codes.KinesisKMSAccessDenied, errors.New("key 1234 is disabled"))
				<-ctx.Done()
				return nil
			},
			describe: func(*state.Stream) (*api.SourceInfo, *api.TargetInfo) {
				lag := int64(2048)
				return &api.SourceInfo{Slot: "cdcd_orders", Publication: "cdcd_orders", RetainedWALBytes: 4096, WALStatus: "reserved",
						LagBytes: &lag, Snapshot: &api.SnapshotInfo{Table: "public.orders", TablesDone: 1, Tables: 3, Rows: 1200, EstimatedRows: 5000}},
					&api.TargetInfo{EncryptionType: "KMS", KeyID: "alias/orders"}
			},
		}
	})
	out, err := f.client.CreateStream(ctxT(t), createInput(cluster))
	if err != nil {
		t.Fatal(err)
	}
	id := *out.StreamIdentifier
	sdk := waitStatus(t, f.client, id, types.StreamStatusImpaired)
	if sdk.StatusReason == nil || sdk.StatusReason.Error != "KINESIS_KMS_ACCESS_DENIED" || sdk.StatusReason.UpdatedAt == nil {
		t.Fatalf("SDK statusReason = %+v", sdk.StatusReason)
	}

	resp, m := do(t, "GET", f.srv.URL+"/stream/"+cluster+"/"+id, "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if _, ok := m["creationTime"].(float64); !ok {
		t.Errorf("creationTime = %#v, want a number", m["creationTime"])
	}
	reason := m["statusReason"].(map[string]any)
	if reason["error"] != "KINESIS_KMS_ACCESS_DENIED" || reason["message"] != "key 1234 is disabled (see docs/runbook.md#kinesis_kms_access_denied)" {
		t.Errorf("statusReason = %v", reason)
	}
	src := m["source"].(map[string]any)
	if src["slot"] != "cdcd_orders" || src["confirmedLsn"] != "16/B374D848" || src["walStatus"] != "reserved" ||
		src["retainedWalBytes"] != 4096.0 || src["lagSeconds"] != 1.5 || src["lagBytes"] != 2048.0 {
		t.Errorf("source = %v", src)
	}
	wantSnap := map[string]any{"done": false, "table": "public.orders", "tablesDone": 1.0, "tables": 3.0, "rows": 1200.0, "estimatedRows": 5000.0}
	if snap, _ := src["snapshot"].(map[string]any); !maps.Equal(snap, wantSnap) {
		t.Errorf("source.snapshot = %v, want %v", src["snapshot"], wantSnap)
	}
	if tg := m["target"].(map[string]any); tg["encryptionType"] != "KMS" || tg["keyId"] != "alias/orders" {
		t.Errorf("target = %v", tg)
	}
	if td := m["targetDefinition"].(map[string]any); len(td) != 1 || td["kinesis"] == nil {
		t.Errorf("targetDefinition must hold exactly one union member: %v", td)
	}
	if resp.Header.Get("X-Amzn-Requestid") == "" {
		t.Error("no request id")
	}
}

func TestErrorWireShape(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name, method, path, body string
		status                   int
		errType                  string
	}{
		{"unknown stream", "GET", "/stream/" + cluster + "/" + ident.NewStreamID(), "", 404, "ResourceNotFoundException"},
		{"malformed body", "POST", "/stream/" + cluster, "{", 400, "ValidationException"},
		{"unknown member", "POST", "/stream/" + cluster, `{"format":"JSON","truncate":"emit"}`, 400, "ValidationException"},
		{"missing target", "POST", "/stream/" + cluster, `{"format":"JSON","ordering":"ROW"}`, 400, "ValidationException"},
		{"unknown operation", "POST", "/cluster", "{}", 404, "UnknownOperationException"},
		{"wrong method", "PUT", "/stream/" + cluster, "{}", 404, "UnknownOperationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, m := do(t, tt.method, f.srv.URL+tt.path, tt.body)
			if resp.StatusCode != tt.status || resp.Header.Get("X-Amzn-Errortype") != tt.errType {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), tt.status, tt.errType)
			}
			if msg, _ := m["message"].(string); msg == "" {
				t.Errorf("no message: %v", m)
			}
		})
	}
}

// failingController answers every call with err.
type failingController struct{ err error }

func (c failingController) CreateStream(context.Context, api.CreateRequest) (api.StreamView, error) {
	return api.StreamView{}, c.err
}
func (c failingController) GetStream(context.Context, string, string) (api.StreamView, error) {
	return api.StreamView{}, c.err
}
func (c failingController) ListStreams(context.Context, string) ([]api.StreamView, error) {
	return nil, c.err
}
func (c failingController) DeleteStream(context.Context, string, string, string) (api.StreamView, error) {
	return api.StreamView{}, c.err
}
func (c failingController) Streams(context.Context) ([]api.StreamView, error) { return nil, c.err }

func TestInternalErrorsAreNotLeaked(t *testing.T) {
	s := api.NewServer(failingController{err: errors.New("open /var/lib/cdcd/secret: permission denied")}, nil, nil)
	rec := httptestRecorder(s, "GET", "/stream/"+cluster+"/"+cluster2)
	if rec.Code != 500 || rec.Header().Get("X-Amzn-Errortype") != "InternalServerException" ||
		strings.Contains(rec.Body.String(), "secret") {
		t.Fatalf("%d %s %s", rec.Code, rec.Header().Get("X-Amzn-Errortype"), rec.Body)
	}
	s = api.NewServer(failingController{err: context.DeadlineExceeded}, nil, nil)
	rec = httptestRecorder(s, "GET", "/stream/"+cluster+"/"+cluster2)
	if rec.Code != 429 || rec.Header().Get("X-Amzn-Errortype") != "ThrottlingException" || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("%d %s", rec.Code, rec.Header().Get("X-Amzn-Errortype"))
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	f := newFixture(t, nil)
	if resp, _ := do(t, "GET", f.srv.URL+"/healthz", ""); resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
	if resp, m := do(t, "GET", f.srv.URL+"/readyz", ""); resp.StatusCode != 200 || m["ready"] != true {
		t.Fatalf("readyz with no streams: %d %v", resp.StatusCode, m)
	}
	out, err := f.client.CreateStream(ctxT(t), createInput(cluster))
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.StreamIdentifier)
	waitStatus(t, f.client, id, types.StreamStatusActive)
	if resp, _ := do(t, "GET", f.srv.URL+"/readyz", ""); resp.StatusCode != 200 {
		t.Fatalf("readyz with an ACTIVE stream: %d", resp.StatusCode)
	}

	_ = mustStream(t, f.reg, id).Fault(codes.RoleAccessDenied, errors.New("sts:AssumeRole denied"))
	resp, m := do(t, "GET", f.srv.URL+"/readyz", "")
	if resp.StatusCode != 503 || m["ready"] != false {
		t.Fatalf("readyz with an IMPAIRED stream: %d %v", resp.StatusCode, m)
	}
	bad := m["notReady"].([]any)[0].(map[string]any)
	if bad["streamIdentifier"] != id || bad["status"] != "IMPAIRED" ||
		bad["statusReason"].(map[string]any)["message"] != "sts:AssumeRole denied (see docs/runbook.md#role_access_denied)" {
		t.Fatalf("notReady = %v", bad)
	}

	resp, err = http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`cdcd_stream_transitions_total{from="CREATING",stream="` + id + `",to="ACTIVE"} 1`,
		`cdcd_stream_transitions_total{from="ACTIVE",stream="` + id + `",to="IMPAIRED"} 1`,
		`cdcd_stream_impaired{stream="` + id + `"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestServeShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- api.ListenAndServe(ctx, "127.0.0.1:0", api.NewServer(failingController{}, nil, nil)) }()
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("ListenAndServe did not return after cancel")
	}
}

func httptestRecorder(h http.Handler, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}
