package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cdcd-dev/cdcd/ident"
	"github.com/cdcd-dev/cdcd/state"
)

const (
	defaultMaxResults = 10
	maxMaxResults     = 100
	// maxBody bounds a CreateStream body: 50 tags at the DSQL limits and
	// two ARNs fit in well under this.
	maxBody = 64 << 10
	// requestTimeout bounds one Controller call so that a wedged disk
	// turns into a retryable error rather than a hung client.
	requestTimeout = 30 * time.Second
)

// Server is the control plane's HTTP handler.
type Server struct {
	ctl Controller
	log *slog.Logger
	mux *http.ServeMux
}

var _ http.Handler = (*Server)(nil)

// NewServer serves ctl's streams, the health endpoints and, when gatherer
// is not nil, its metrics.
func NewServer(ctl Controller, gatherer prometheus.Gatherer, logger *slog.Logger) *Server {
	s := NewProbeServer(ctl, gatherer, logger)
	s.mux.HandleFunc("POST /stream/{clusterIdentifier}", s.createStream)
	s.mux.HandleFunc("GET /stream/{clusterIdentifier}", s.listStreams)
	s.mux.HandleFunc("GET /stream/{clusterIdentifier}/{streamIdentifier}", s.getStream)
	s.mux.HandleFunc("DELETE /stream/{clusterIdentifier}/{streamIdentifier}", s.deleteStream)
	return s
}

// NewProbeServer serves /healthz, /readyz and, when gatherer is not nil,
// /metrics, and none of the stream operations: what a scraper or a probe
// may see without access to the control plane.
func NewProbeServer(ctl Controller, gatherer prometheus.Gatherer, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{ctl: ctl, log: logger, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	if gatherer != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	}
	// Anything else gets an AWS-shaped error, so an SDK client calling an
	// operation cdcd lacks (CreateCluster, TagResource) fails clearly.
	s.mux.HandleFunc("/", unknownOperation)
	return s
}

// unknownOperation answers a request that names no operation cdcd has.
func unknownOperation(w http.ResponseWriter, r *http.Request) {
	writeAWSError(w, awsError{Status: http.StatusNotFound, Type: "UnknownOperationException",
		Body: map[string]any{"message": fmt.Sprintf("cdcd does not implement %s %s", r.Method, r.URL.Path)}})
}

// ServeHTTP gives each request an id (which the SDK reports as its request
// id) and logs it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	w.Header().Set("X-Amzn-Requestid", id)
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	start := time.Now()
	if strings.HasPrefix(r.URL.Path, "/") {
		s.mux.ServeHTTP(rw, r)
	} else {
		// A target that is not a path ("GET *", "CONNECT host:port")
		// matches no pattern, and the mux would answer it with a bare 400
		// or a plain-text 404 that an AWS client cannot read.
		unknownOperation(rw, r)
	}
	s.log.Debug("control plane request", "request_id", id, "method", r.Method, "path", r.URL.Path,
		"status", rw.status, "duration", time.Since(start))
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// fail writes err as an AWS error, logging what the client cannot see.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, op string, err error) {
	e, internal := toAWS(err)
	if internal {
		s.log.Error("control plane operation failed", "operation", op,
			"request_id", w.Header().Get("X-Amzn-Requestid"), "error", err)
	}
	writeAWSError(w, e)
}

func checkIDs(r *http.Request, names ...string) error {
	var fs []FieldError
	for _, n := range names {
		if v := r.PathValue(n); !ident.ValidID(v) {
			fs = append(fs, FieldError{Name: n, Message: fmt.Sprintf("%q is not %d characters of [a-z0-9]", v, ident.IDLen)})
		}
	}
	if len(fs) > 0 {
		return &ValidationError{Fields: fs}
	}
	return nil
}

func (s *Server) createStream(w http.ResponseWriter, r *http.Request) {
	const op = "CreateStream"
	var body createStreamBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	// An unknown member is an option cdcd does not implement; accepting it
	// silently would create a stream that behaves differently from what
	// was asked.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		s.fail(w, r, op, &ValidationError{Reason: "cannotParse", Message: "cannot parse request body: " + err.Error()})
		return
	}
	req := CreateRequest{
		ClusterID: r.PathValue("clusterIdentifier"),
		Format:    body.Format, Ordering: body.Ordering, Tags: body.Tags,
	}
	if body.ClientToken != nil {
		req.ClientToken = *body.ClientToken
	}
	if t := body.TargetDefinition; t != nil && t.Kinesis != nil {
		req.Target = state.Target{StreamARN: t.Kinesis.StreamARN, RoleARN: t.Kinesis.RoleARN}
	}
	if err := req.Validate(); err != nil {
		s.fail(w, r, op, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	v, err := s.ctl.CreateStream(ctx, req)
	if err != nil {
		s.fail(w, r, op, err)
		return
	}
	writeJSON(w, http.StatusOK, summary(v, true))
}

func (s *Server) getStream(w http.ResponseWriter, r *http.Request) {
	const op = "GetStream"
	if err := checkIDs(r, "clusterIdentifier", "streamIdentifier"); err != nil {
		s.fail(w, r, op, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	v, err := s.ctl.GetStream(ctx, r.PathValue("clusterIdentifier"), r.PathValue("streamIdentifier"))
	if err != nil {
		s.fail(w, r, op, err)
		return
	}
	writeJSON(w, http.StatusOK, getOutput(v))
}

func (s *Server) listStreams(w http.ResponseWriter, r *http.Request) {
	const op = "ListStreams"
	if err := checkIDs(r, "clusterIdentifier"); err != nil {
		s.fail(w, r, op, err)
		return
	}
	cluster := r.PathValue("clusterIdentifier")
	q := r.URL.Query()
	limit := defaultMaxResults
	if v := q.Get("max-results"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxMaxResults {
			s.fail(w, r, op, &ValidationError{Fields: []FieldError{{Name: "maxResults",
				Message: fmt.Sprintf("%q: want 1 to %d", v, maxMaxResults)}}})
			return
		}
		limit = n
	}
	var after *pageToken
	if v := q.Get("next-token"); v != "" {
		p, err := decodePageToken(v, cluster)
		if err != nil {
			s.fail(w, r, op, err)
			return
		}
		after = &p
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	views, err := s.ctl.ListStreams(ctx, cluster)
	if err != nil {
		s.fail(w, r, op, err)
		return
	}
	sort.Slice(views, func(i, j int) bool { return state.Less(views[i].Definition, views[j].Definition) })
	out := listStreamsOutput{Streams: []streamSummary{}}
	for _, v := range views {
		if after != nil && !after.before(v.Definition) {
			continue
		}
		if len(out.Streams) == limit {
			last := out.Streams[limit-1]
			tok := pageToken{Cluster: cluster, CreatedNs: time.Time(last.CreationTime).UnixNano(), Stream: last.StreamIdentifier}.encode()
			out.NextToken = &tok
			break
		}
		out.Streams = append(out.Streams, summary(v, false))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteStream(w http.ResponseWriter, r *http.Request) {
	const op = "DeleteStream"
	if err := checkIDs(r, "clusterIdentifier", "streamIdentifier"); err != nil {
		s.fail(w, r, op, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	v, err := s.ctl.DeleteStream(ctx, r.PathValue("clusterIdentifier"), r.PathValue("streamIdentifier"),
		r.URL.Query().Get("client-token"))
	if err != nil {
		s.fail(w, r, op, err)
		return
	}
	writeJSON(w, http.StatusOK, summary(v, false))
}

// notReady is one stream that keeps /readyz from answering 200.
type notReady struct {
	ClusterIdentifier string        `json:"clusterIdentifier"`
	StreamIdentifier  string        `json:"streamIdentifier"`
	Status            state.Status  `json:"status"`
	StatusReason      *statusReason `json:"statusReason,omitempty"`
}

// readyz answers 200 when every stream is ACTIVE and 503 otherwise, listing
// the streams that are not and why, so that one curl explains an alert.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	views, err := s.ctl.Streams(ctx)
	if err != nil {
		s.log.Error("readiness check failed", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "error": "cannot list streams"})
		return
	}
	sort.Slice(views, func(i, j int) bool { return state.Less(views[i].Definition, views[j].Definition) })
	bad := []notReady{}
	for _, v := range views {
		if v.Status == state.Active {
			continue
		}
		n := notReady{ClusterIdentifier: v.Definition.ClusterID, StreamIdentifier: v.Definition.StreamID, Status: v.Status}
		if rs := v.StatusReason; rs != nil {
			n.StatusReason = &statusReason{Error: rs.Code, UpdatedAt: epochSeconds(rs.UpdatedAt), Message: rs.Message}
		}
		bad = append(bad, n)
	}
	status := http.StatusOK
	if len(bad) > 0 {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": len(bad) == 0, "streams": len(views), "notReady": bad})
}

// ListenAndServe serves h on addr until ctx is done, then shuts down,
// giving requests in flight up to five seconds.
func ListenAndServe(ctx context.Context, addr string, h http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return Serve(ctx, l, h)
}

// Serve is ListenAndServe on an existing listener.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve control plane: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shut down control plane: %w", err)
	}
	return nil
}
