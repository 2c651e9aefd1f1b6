package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcd-dev/cdcd/state"
)

const (
	fuzzCluster = "kmabugltfmjdaj2siqr2qbxgju"
	// fuzzSecret is in every internal error the fake controller returns:
	// it belongs in the log and never in a response.
	fuzzSecret = "open /var/lib/cdcd/fake-secret: permission denied"
)

// validID is the identifier rule, restated so that the fuzz targets check
// the server against it rather than against its own check.
var validID = regexp.MustCompile(`^[a-z0-9]{26}$`).MatchString

// fuzzMethods are the methods a fuzzed request uses, by index: the
// operations' own, and ones no route has.
var fuzzMethods = []string{"GET", "POST", "DELETE", "HEAD", "PUT", "PATCH", "OPTIONS", "CONNECT"}

// fuzzStreams is what the fake controller lists for a cluster: more than a
// page at the default page size, out of order, with creation times shared
// by several streams so that paging must break ties by identifier.
func fuzzStreams(cluster string) []StreamView {
	base := time.Date(2025, 1, 15, 10, 0, 0, 0, time.UTC)
	var vs []StreamView
	for i := 13; i >= 0; i-- {
		vs = append(vs, view(cluster, fmt.Sprintf("%026d", i), base.Add(time.Duration(i/3)*time.Second), state.Active))
	}
	return vs
}

// awsErrorStatus is the status each AWS error type goes with.
var awsErrorStatus = map[string]int{
	"ValidationException":           http.StatusBadRequest,
	"ServiceQuotaExceededException": http.StatusPaymentRequired,
	"AccessDeniedException":         http.StatusForbidden,
	"ResourceNotFoundException":     http.StatusNotFound,
	"UnknownOperationException":     http.StatusNotFound,
	"ConflictException":             http.StatusConflict,
	"ThrottlingException":           http.StatusTooManyRequests,
	"InternalServerException":       http.StatusInternalServerError,
}

// Controller outcomes a fuzzed request selects.
const (
	ctlOK = iota
	ctlInternal
	ctlTimeout
	ctlNotFound
	ctlOutcomes
)

// FuzzServer sends arbitrary requests (method, target with path and query,
// body) to the control plane. The server never panics; it calls the
// controller only with identifiers and a CreateRequest that are valid; it
// answers 200, a redirect, /readyz's 503, or an AWS error whose type matches
// its status and whose body is a JSON object with a message; a 500 comes
// only from a controller's internal error, whose text is logged and never
// sent.
func FuzzServer(f *testing.F) {
	tok := pageToken{Cluster: fuzzCluster, CreatedNs: fuzzStreams(fuzzCluster)[7].Definition.CreationTime.UnixNano(),
		Stream: fuzzStreams(fuzzCluster)[7].Definition.StreamID}.encode()
	create := `{"clientToken":"t-1","format":"JSON","ordering":"ROW","tags":{"team":"orders"},` +
		`"targetDefinition":{"kinesis":{"streamArn":"arn:aws:kinesis:us-east-1:123456789012:stream/orders",` +
		`"roleArn":"arn:aws:iam::123456789012:role/cdcd"}}}`
	stream := "/stream/" + fuzzCluster + "/" + fmt.Sprintf("%026d", 3)
	for _, s := range []struct {
		method  uint8
		target  string
		body    string
		outcome uint8
	}{
		{1, "/stream/" + fuzzCluster, create, ctlOK},
		{1, "/stream/" + fuzzCluster, create, ctlInternal},
		{1, "/stream/" + fuzzCluster, `{"format":"JSON","unknown":1}`, ctlOK},
		{1, "/stream/" + fuzzCluster, `{"format":"JSON","ordering":"ROW","tags":{"aws:x":""}}`, ctlOK},
		{1, "/stream/NOT-AN-ID", create, ctlOK},
		{0, "/stream/" + fuzzCluster, "", ctlOK},
		{0, "/stream/" + fuzzCluster + "?max-results=3", "", ctlOK},
		{0, "/stream/" + fuzzCluster + "?max-results=2&next-token=" + tok, "", ctlOK},
		{0, "/stream/" + fuzzCluster + "?max-results=0&next-token=%%", "", ctlOK},
		{0, "/stream/" + fuzzCluster + "?next-token=" + tok, "", ctlTimeout},
		{0, stream, "", ctlOK},
		{0, stream, "", ctlNotFound},
		{2, stream + "?client-token=abc", "", ctlOK},
		{2, stream, "", ctlInternal},
		{0, "/stream/" + fuzzCluster + "/../x", "", ctlOK},
		{0, "/readyz", "", ctlOK},
		{0, "/readyz", "", ctlInternal},
		{0, "/healthz", "", ctlOK},
		{0, "/metrics", "", ctlOK},
		{4, "/stream/" + fuzzCluster, create, ctlOK},
	} {
		f.Add(s.method, s.target, []byte(s.body), s.outcome)
	}
	f.Fuzz(func(t *testing.T, method uint8, target string, body []byte, outcome uint8) {
		raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: cdcd\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
			fuzzMethods[int(method)%len(fuzzMethods)], target, len(body))
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw + string(body))))
		if err != nil {
			return // net/http refuses it before any handler sees it
		}
		outcome %= ctlOutcomes
		var logs bytes.Buffer
		ctl, called := outcomeController(t, outcome)
		srv := NewServer(ctl, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(&logs, nil)))
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, r)
		checkResponse(t, r, rec, outcome, *called)
		if rec.Code == http.StatusInternalServerError && !strings.Contains(logs.String(), fuzzSecret) {
			t.Errorf("internal error not logged: %s", logs.String())
		}
	})
}

// outcomeController is a fake controller that answers every call with
// outcome and fails t when the server hands it a request it should have
// refused. *called reports whether any method ran.
func outcomeController(t *testing.T, outcome uint8) (*fakeController, *bool) {
	called := new(bool)
	answer := func(v StreamView) (StreamView, error) {
		*called = true
		switch outcome {
		case ctlInternal:
			return StreamView{}, errors.New(fuzzSecret)
		case ctlTimeout:
			return StreamView{}, context.DeadlineExceeded
		case ctlNotFound:
			return StreamView{}, &NotFoundError{Type: "stream", ID: v.Definition.StreamID}
		}
		return v, nil
	}
	ids := func(op string, ids ...string) {
		for _, id := range ids {
			if !validID(id) {
				t.Errorf("%s called with identifier %q", op, id)
			}
		}
	}
	created := time.Date(2025, 1, 15, 10, 0, 0, 0, time.UTC)
	return &fakeController{
		createStream: func(_ context.Context, req CreateRequest) (StreamView, error) {
			if err := req.Validate(); err != nil {
				t.Errorf("CreateStream called with an invalid request: %v", err)
			}
			return answer(view(req.ClusterID, fmt.Sprintf("%026d", 99), created, state.Creating))
		},
		getStream: func(_ context.Context, cluster, stream string) (StreamView, error) {
			ids("GetStream", cluster, stream)
			return answer(view(cluster, stream, created, state.Active))
		},
		deleteStream: func(_ context.Context, cluster, stream, _ string) (StreamView, error) {
			ids("DeleteStream", cluster, stream)
			return answer(view(cluster, stream, created, state.Deleting))
		},
		listStreams: func(_ context.Context, cluster string) ([]StreamView, error) {
			ids("ListStreams", cluster)
			if _, err := answer(StreamView{}); err != nil {
				return nil, err
			}
			return fuzzStreams(cluster), nil
		},
		streams: func(context.Context) ([]StreamView, error) {
			if _, err := answer(StreamView{}); err != nil {
				return nil, err
			}
			return append(fuzzStreams(fuzzCluster), view(fuzzCluster, fmt.Sprintf("%026d", 99), created, state.Creating)), nil
		},
	}, called
}

func checkResponse(t *testing.T, r *http.Request, rec *httptest.ResponseRecorder, outcome uint8, called bool) {
	t.Helper()
	body := rec.Body.Bytes()
	for k, vs := range rec.Header() {
		if strings.Contains(k+strings.Join(vs, " "), fuzzSecret) {
			t.Fatalf("header %s leaks the internal error", k)
		}
	}
	if bytes.Contains(body, []byte(fuzzSecret)) {
		t.Fatalf("%d leaks the internal error: %s", rec.Code, body)
	}
	switch code := rec.Code; {
	case code == http.StatusOK:
		if strings.HasPrefix(r.URL.Path, "/stream/") && !json.Valid(body) {
			t.Fatalf("200 with a body that is not JSON: %q", body)
		}
		checkListPage(t, r, body)
	case code == http.StatusMovedPermanently || code == http.StatusTemporaryRedirect || code == http.StatusPermanentRedirect:
		if rec.Header().Get("Location") == "" {
			t.Fatalf("%d without a Location", code)
		}
	case code == http.StatusServiceUnavailable:
		var ready struct{ Ready *bool }
		if r.URL.Path != "/readyz" || json.Unmarshal(body, &ready) != nil || ready.Ready == nil || *ready.Ready {
			t.Fatalf("503 for %s %q: %s", r.Method, r.URL.Path, body)
		}
	default:
		typ := rec.Header().Get("X-Amzn-Errortype")
		want, known := awsErrorStatus[typ]
		if !known || want != code {
			t.Fatalf("%s %q: status %d with error type %q: %s", r.Method, r.RequestURI, code, typ, body)
		}
		var e map[string]any
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" || json.Unmarshal(body, &e) != nil {
			t.Fatalf("%d %s with a body that is not a JSON object (%s): %q", code, typ, ct, body)
		}
		if m, ok := e["message"].(string); !ok || m == "" {
			t.Fatalf("%d %s without a message: %s", code, typ, body)
		}
		switch {
		case code == http.StatusInternalServerError && (!called || outcome != ctlInternal):
			t.Fatalf("%s %q: 500 without an internal controller error: %s", r.Method, r.RequestURI, body)
		case code == http.StatusTooManyRequests && (!called || outcome != ctlTimeout):
			t.Fatalf("%s %q: 429 without a controller timeout: %s", r.Method, r.RequestURI, body)
		case typ == "ResourceNotFoundException" && !called:
			t.Fatalf("%s %q: ResourceNotFoundException without asking the controller", r.Method, r.RequestURI)
		}
	}
}

// checkListPage checks a ListStreams page against fuzzStreams: known
// streams in order, at most max-results of them, and a next token that
// ListStreams takes back.
func checkListPage(t *testing.T, r *http.Request, body []byte) {
	t.Helper()
	cluster, ok := strings.CutPrefix(r.URL.Path, "/stream/")
	if !ok || strings.Contains(cluster, "/") || (r.Method != "GET" && r.Method != "HEAD") {
		return
	}
	var page struct {
		Streams []struct {
			StreamIdentifier string
		}
		NextToken *string
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("ListStreams page: %v: %s", err, body)
	}
	limit := defaultMaxResults
	if v := r.URL.Query().Get("max-results"); v != "" {
		limit, _ = strconv.Atoi(v)
	}
	if len(page.Streams) > limit {
		t.Fatalf("%d streams with max-results %d", len(page.Streams), limit)
	}
	all := fuzzStreams(cluster)
	slices.SortFunc(all, func(a, b StreamView) int {
		if state.Less(a.Definition, b.Definition) {
			return -1
		}
		return 1
	})
	var after *pageToken
	if v := r.URL.Query().Get("next-token"); v != "" {
		p, err := decodePageToken(v, cluster)
		if err != nil {
			t.Fatalf("200 for next token %q: %v", v, err)
		}
		after = &p
	}
	last := -1
	for _, s := range page.Streams {
		i := slices.IndexFunc(all, func(v StreamView) bool { return v.Definition.StreamID == s.StreamIdentifier })
		if i <= last {
			t.Fatalf("stream %q out of order or unknown in %s", s.StreamIdentifier, body)
		}
		if after != nil && !after.before(all[i].Definition) {
			t.Fatalf("stream %q is not after the next token %+v", s.StreamIdentifier, *after)
		}
		last = i
	}
	if page.NextToken != nil {
		if _, err := decodePageToken(*page.NextToken, cluster); err != nil {
			t.Fatalf("next token %q does not decode: %v", *page.NextToken, err)
		}
		if len(page.Streams) != limit || last == len(all)-1 {
			t.Fatalf("next token after %d streams of %d (max-results %d)", len(page.Streams), len(all), limit)
		}
	} else if len(page.Streams) == limit && last != len(all)-1 {
		t.Fatalf("a full page of %d ending at %d of %d has no next token", limit, last, len(all))
	}
}

// FuzzDecodePageToken: decodePageToken never panics; it accepts only a
// token for the cluster asked about, naming a valid stream identifier, and
// refuses everything else as a ValidationException on nextToken; a token
// that ListStreams encodes decodes to the same position, on its own cluster
// only.
func FuzzDecodePageToken(f *testing.F) {
	tok := pageToken{Cluster: fuzzCluster, CreatedNs: 1736935200123456789, Stream: fmt.Sprintf("%026d", 7)}
	f.Add(tok.encode(), fuzzCluster, tok.CreatedNs, tok.Stream)
	f.Add(tok.encode(), "kmabugltfmjdaj2siqr2qbxgjv", int64(-1), "NOT-AN-ID")
	f.Add(tok.encode()+"=", fuzzCluster, int64(0), "")
	f.Add("eyJjIjoia21hYnVnbHRmbWpkYWoyc2lxcjJxYnhnanUiLCJ0IjoxLCJzIjoiMDAifQ", fuzzCluster, int64(1), "00")
	f.Add(`{"c":"x","t":1e99,"s":null}`, "x", int64(0), "x")
	f.Fuzz(func(t *testing.T, token, cluster string, createdNs int64, stream string) {
		p, err := decodePageToken(token, cluster)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Name != "nextToken" {
				t.Fatalf("error %v is not a ValidationError on nextToken", err)
			}
			if e, internal := toAWS(err); internal || e.Status != http.StatusBadRequest {
				t.Fatalf("error %v answers %d (internal %v)", err, e.Status, internal)
			}
		} else {
			if p.Cluster != cluster || !validID(p.Stream) {
				t.Fatalf("accepted %+v for cluster %q", p, cluster)
			}
			if q, err := decodePageToken(p.encode(), cluster); err != nil || q != p {
				t.Fatalf("accepted %+v re-encodes to %+v, %v", p, q, err)
			}
		}
		if !validID(cluster) || !validID(stream) {
			return
		}
		want := pageToken{Cluster: cluster, CreatedNs: createdNs, Stream: stream}
		if got, err := decodePageToken(want.encode(), cluster); err != nil || got != want {
			t.Fatalf("%+v decodes to %+v, %v", want, got, err)
		}
		other := []byte(cluster)
		if other[0] = 'a'; cluster[0] == 'a' {
			other[0] = 'b'
		}
		if _, err := decodePageToken(want.encode(), string(other)); err == nil {
			t.Fatalf("a token for cluster %q is accepted on cluster %q", cluster, other)
		}
	})
}
