// Package faultproxy is an HTTP reverse proxy for AWS JSON-protocol services
// (Kinesis, KMS) that injects faults on a test's command: AWS errors in the
// exact JSON 1.1 shape, so the AWS SDK for Go v2 decodes them into the
// service's typed errors; delays; dropped connections; and per-record
// PutRecords failures, where the proxy forwards only the surviving entries
// so they really land upstream.
//
// Kinesalite and local-kms never throttle or deny; this is how tests reach
// the sink's and the lifecycle's error paths against real servers.
//
//	p := faultproxy.New(env.KinesisEndpoint).Start(t)
//	client := testenv.KinesisClient(t, env, p.URL())
//	p.Inject(faultproxy.Rule{Op: "PutRecords", Err: "AccessDeniedException", Times: 1})
package faultproxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Rule is one fault. A request matches when its operation (the X-Amz-Target
// suffix, e.g. "PutRecords" or "GenerateDataKey") equals Op, or for any
// operation when Op is empty. The first matching rule, in the order
// injected, applies: it waits Delay, then answers Err, or drops the
// connection, or forwards the request (and, with DropResponse, drops the
// connection in place of the upstream's answer).
type Rule struct {
	Op string

	// Err is the AWS error code, e.g. "AccessDeniedException",
	// "ProvisionedThroughputExceededException", "InternalFailure".
	Err string
	// Message is the error message; empty picks a plausible one.
	Message string
	// Status is the HTTP status; 0 picks 500 for InternalFailure,
	// InternalFailureException, ServiceUnavailable and KMSInternalException,
	// else 400.
	Status int

	// Delay holds the request before the rule acts; a client that gives up
	// first sees its own timeout.
	Delay time.Duration

	// Drop closes the connection without an answer; the request never
	// reaches the upstream.
	Drop bool
	// DropResponse forwards the request, then closes the connection instead
	// of answering: the upstream applied the call but the client saw a
	// failure (and retries, producing duplicates).
	DropResponse bool

	// Times is how many matching requests the rule applies to; 0 means
	// until Clear.
	Times int
}

// Entry is one PutRecords request entry, as the FailRecords deciders see it.
type Entry struct {
	Data            []byte
	PartitionKey    string
	ExplicitHashKey string
}

// Per-record error codes of PutRecords.
const (
	CodeThroughputExceeded = "ProvisionedThroughputExceededException"
	CodeInternalFailure    = "InternalFailure"
)

// Proxy is the fault-injecting reverse proxy. It is an http.Handler; Start
// serves it on a loopback port for the rest of the test.
type Proxy struct {
	upstream string
	client   *http.Client
	server   *httptest.Server
	reqID    atomic.Int64

	// failMu serialises calls to the record deciders, which may call back
	// into the proxy (Calls, Clear) and so run without mu.
	failMu sync.Mutex

	mu       sync.Mutex
	rules    []*rule
	failers  map[string]func(i int, e Entry) string
	calls    map[string]int
	faults   map[string]int
	forwards map[string]int
	entries  map[string]EntryCount // by PutRecords entry data
}

// EntryCount is what the proxy did with one PutRecords entry, told apart
// from the others by its data: how many times it forwarded the entry
// upstream and how many times a record decider failed it. Under record
// deciders alone, a client that resends only the failed entries until
// they land leaves Forwarded at 1 for every entry.
type EntryCount struct {
	Forwarded int
	Failed    int
}

type rule struct {
	Rule
	left int // matches left; <0 means unlimited
}

// New returns a proxy that forwards to upstream, e.g. "http://127.0.0.1:4567".
func New(upstream string) *Proxy {
	return &Proxy{
		upstream: strings.TrimRight(upstream, "/"),
		client:   &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}},
		failers:  map[string]func(int, Entry) string{},
		calls:    map[string]int{},
		faults:   map[string]int{},
		forwards: map[string]int{},
		entries:  map[string]EntryCount{},
	}
}

// Start serves the proxy on a loopback port until the test ends, and returns
// it for chaining.
func (p *Proxy) Start(t testing.TB) *Proxy {
	t.Helper()
	if p.server != nil {
		t.Fatal("faultproxy: Start called twice")
	}
	p.server = httptest.NewServer(p)
	t.Cleanup(p.Close)
	return p
}

// URL is the started proxy's base URL, to use as a client's endpoint.
func (p *Proxy) URL() string {
	if p.server == nil {
		panic("faultproxy: URL called before Start")
	}
	return p.server.URL
}

// Close stops a started proxy. Start registers it as a test cleanup.
func (p *Proxy) Close() {
	if p.server != nil {
		p.server.CloseClientConnections()
		p.server.Close()
	}
	p.client.CloseIdleConnections()
}

// Inject adds a rule after those already injected.
func (p *Proxy) Inject(r Rule) {
	left := r.Times
	if left <= 0 {
		left = -1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &rule{Rule: r, left: left})
}

// FailRecords fails the entries of op's requests for which fail returns true
// with ProvisionedThroughputExceededException, and forwards the rest. Only
// "PutRecords" has per-record results. i is the entry's index in the
// request (a retry holding only the failed entries renumbers them). Calls to
// fail are serialised. A nil fail removes the decider.
func (p *Proxy) FailRecords(op string, fail func(i int, e Entry) bool) {
	if fail == nil {
		p.FailRecordsWith(op, nil)
		return
	}
	p.FailRecordsWith(op, func(i int, e Entry) string {
		if fail(i, e) {
			return CodeThroughputExceeded
		}
		return ""
	})
}

// FailRecordsWith is FailRecords with a per-entry error code: fail returns
// CodeThroughputExceeded, CodeInternalFailure, or "" to forward the entry.
func (p *Proxy) FailRecordsWith(op string, fail func(i int, e Entry) string) {
	if op != "PutRecords" {
		panic("faultproxy: per-record failures exist only for PutRecords, not " + op)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if fail == nil {
		delete(p.failers, op)
		return
	}
	p.failers[op] = fail
}

// Clear removes every rule and record decider; counters stay.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
	clear(p.failers)
}

// Calls is how many requests for op arrived, faulted or not.
func (p *Proxy) Calls(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[op]
}

// Faults is how many requests for op a rule answered, dropped or delayed,
// or had entries failed by a decider.
func (p *Proxy) Faults(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults[op]
}

// Forwarded is how many requests for op reached the upstream.
func (p *Proxy) Forwarded(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.forwards[op]
}

// Entries is, for every PutRecords entry data the proxy forwarded or
// failed, what it did with it. A whole-call rule's answer counts for none
// of the request's entries.
func (p *Proxy) Entries() map[string]EntryCount {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.entries)
}

// countEntries applies inc to the count of each entry; p.mu is held.
func (p *Proxy) countEntries(es []Entry, inc func(*EntryCount)) {
	for _, e := range es {
		c := p.entries[string(e.Data)]
		inc(&c)
		p.entries[string(e.Data)] = c
	}
}

// ResetCounts zeroes Calls, Faults, Forwarded and Entries.
func (p *Proxy) ResetCounts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.calls)
	clear(p.faults)
	clear(p.forwards)
	clear(p.entries)
}

// Operation is the operation a request names in X-Amz-Target
// ("Kinesis_20131202.PutRecords" → "PutRecords"), or "" if none.
func Operation(r *http.Request) string {
	target := r.Header.Get("X-Amz-Target")
	if i := strings.LastIndexByte(target, '.'); i >= 0 {
		return target[i+1:]
	}
	return target
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := Operation(r)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		// The client went away mid-request; nothing to answer.
		return
	}

	p.mu.Lock()
	p.calls[op]++
	var act *Rule
	for i, ru := range p.rules {
		if ru.Op != "" && ru.Op != op {
			continue
		}
		copied := ru.Rule
		act = &copied
		if ru.left > 0 {
			ru.left--
			if ru.left == 0 {
				p.rules = append(p.rules[:i:i], p.rules[i+1:]...)
			}
		}
		break
	}
	failer := p.failers[op]
	if act != nil {
		p.faults[op]++
	}
	p.mu.Unlock()

	if act != nil {
		if act.Delay > 0 {
			t := time.NewTimer(act.Delay)
			select {
			case <-r.Context().Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		switch {
		case act.Err != "":
			p.writeError(w, act.Err, act.Message, act.Status)
			return
		case act.Drop:
			hangUp(w)
			return
		case act.DropResponse:
			if resp, _, err := p.forward(r, op, body); err == nil {
				resp.Body.Close()
			}
			hangUp(w)
			return
		}
	}
	if failer != nil {
		p.putRecordsWithFailures(w, r, op, body, failer)
		return
	}
	p.forwardAsIs(w, r, op, body)
}

// forward sends the request, with body in place of the original, upstream
// and reads the whole answer.
func (p *Proxy) forward(r *http.Request, op string, body []byte) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for k, vs := range r.Header {
		if hopByHop[http.CanonicalHeaderKey(k)] {
			continue
		}
		req.Header[k] = append([]string(nil), vs...)
	}
	// Let the transport negotiate compression, and undo it, so the proxy can
	// read and rewrite answers.
	req.Header.Del("Accept-Encoding")
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Length", fmt.Sprint(len(body)))

	var forwarded []Entry
	if op == "PutRecords" {
		forwarded = putRecordsEntries(body)
	}
	p.mu.Lock()
	p.forwards[op]++
	p.countEntries(forwarded, func(c *EntryCount) { c.Forwarded++ })
	p.mu.Unlock()

	resp, err := p.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	return resp, respBody, nil
}

var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Content-Length": true,
}

func copyResponse(w http.ResponseWriter, resp *http.Response, body []byte) {
	for k, vs := range resp.Header {
		if hopByHop[http.CanonicalHeaderKey(k)] {
			continue
		}
		w.Header()[k] = append([]string(nil), vs...)
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

// hangUp closes the client's connection without writing a response.
func hangUp(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		// HTTP/2 cannot be hijacked; aborting the handler resets the stream.
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// writeError answers in the AWS JSON 1.1 error shape: the code in __type and
// in X-Amzn-ErrorType, which the SDK maps to the service's typed error.
func (p *Proxy) writeError(w http.ResponseWriter, code, message string, status int) {
	if status == 0 {
		status = defaultStatus(code)
	}
	if message == "" {
		message = defaultMessage(code)
	}
	body, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{code, message})
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h.Set("X-Amzn-ErrorType", code)
	h.Set("X-Amzn-RequestId", p.requestID())
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeUpstreamError reports an unreachable upstream as a 502 the SDK
// retries, unless the client is already gone.
func (p *Proxy) writeUpstreamError(w http.ResponseWriter, err error) {
	p.writeError(w, "InternalFailure", "faultproxy: upstream: "+err.Error(), http.StatusBadGateway)
}

func (p *Proxy) requestID() string {
	return fmt.Sprintf("faultproxy-%08d-0000-0000-0000-000000000000", p.reqID.Add(1))
}

func defaultStatus(code string) int {
	switch code {
	case "InternalFailure", "InternalFailureException", "KMSInternalException", "InternalServerError":
		return http.StatusInternalServerError
	case "ServiceUnavailable", "ServiceUnavailableException":
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

func defaultMessage(code string) string {
	switch code {
	case "AccessDeniedException":
		return "User: arn:aws:sts::000000000000:assumed-role/cdcd/test is not authorized to perform this action (faultproxy)"
	case "ResourceNotFoundException":
		return "Stream not found (faultproxy)"
	case CodeThroughputExceeded:
		return "Rate exceeded for shard (faultproxy)"
	case "LimitExceededException":
		return "Limit exceeded (faultproxy)"
	case "InternalFailure", "InternalFailureException":
		return "Internal service failure. (faultproxy)"
	}
	if strings.HasPrefix(code, "KMS") {
		return "KMS failure " + code + " (faultproxy)"
	}
	return code + " (faultproxy)"
}
