// Package stsstub is an in-process stand-in for AWS STS, for tests. It
// speaks the awsQuery protocol (form-encoded POST, Version=2011-06-15, XML
// responses) for AssumeRole and GetCallerIdentity, so the SDK's real sts
// client, stscreds and credential caches run unchanged against it.
//
// AssumeRole is checked as STS checks it: parameter validation first
// (400 ValidationError, MalformedPolicyDocument), then authorisation
// against the roles the test configured (403 AccessDenied for an unknown
// role, a trust policy that refuses, a wrong or missing external id, tags
// without sts:TagSession, or a role the test denied). Signatures are not
// verified; the SigV4 Authorization header must be present and well formed,
// and its access key id is recorded.
package stsstub

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/ident"
)

// DefaultCaller is the identity GetCallerIdentity reports until SetCaller.
const DefaultCaller = "arn:aws:iam::111122223333:user/cdcd"

// Every secret key and session token AssumeRole hands out starts with
// these, so tests can look for them where they must not be.
const (
	SecretKeyPrefix    = "stub-secret-"
	SessionTokenPrefix = "stub-session-token-"
)

// Role is one role's configuration: what its trust policy would allow.
type Role struct {
	// ExternalID the trust policy requires; "" requires none.
	ExternalID string
	// TrustAllowed is whether the trust policy lets the caller assume the
	// role at all.
	TrustAllowed bool
	// TagSession is whether the trust policy allows sts:TagSession, which
	// STS requires when the request carries tags.
	TagSession bool
	// MaxSessionDuration is the role's limit on DurationSeconds; 0 means
	// IAM's default of one hour.
	MaxSessionDuration time.Duration
}

// Tag is one session tag of a request.
type Tag struct {
	Key, Value string
}

// Request is one request as the stand-in parsed it.
type Request struct {
	Action            string
	RoleARN           string
	RoleSessionName   string
	ExternalID        string
	Policy            string
	DurationSeconds   int // 0 when absent
	Tags              []Tag
	TransitiveTagKeys []string
	AccessKeyID       string    // from the Authorization header
	ErrorCode         string    // "" when the call succeeded
	Expiration        time.Time // of the issued credentials; zero on failure
}

// Server is a running stand-in. Its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	roles    map[string]Role
	denied   map[string]bool
	lifetime time.Duration
	caller   string
	requests []Request
	gate     chan struct{} // non-nil while held; closed to release
	closing  chan struct{}
	seq      int
}

// Start runs a stand-in until Close.
func Start() *Server {
	s := &Server{
		roles:   map[string]Role{},
		denied:  map[string]bool{},
		caller:  DefaultCaller,
		closing: make(chan struct{}),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// New runs a stand-in that is closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := Start()
	t.Cleanup(s.Close)
	return s
}

// UseEnvironment makes the AWS SDK's default chain find the base identity,
// for the rest of the test, in the environment only (access key
// accessKeyID), with no shared files and no instance metadata. It skips
// the test where AWS_ENDPOINT_URL is set: the SDK would then ignore the
// stand-in's service-specific endpoint.
func UseEnvironment(t testing.TB, accessKeyID string) {
	t.Helper()
	if _, ok := os.LookupEnv("AWS_ENDPOINT_URL"); ok {
		t.Skip("AWS_ENDPOINT_URL is set; the SDK then ignores service-specific endpoints")
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", accessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
}

// URL is the endpoint to give an sts client as its BaseEndpoint.
func (s *Server) URL() string { return s.srv.URL }

// Close releases held requests and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.closing:
	default:
		close(s.closing)
	}
	s.mu.Unlock()
	s.srv.Close()
}

// AddRole configures a role whose trust policy requires externalID (none
// when "") and allows the caller when trustAllowed, allows sts:TagSession,
// and has the default one-hour MaxSessionDuration.
func (s *Server) AddRole(roleARN, externalID string, trustAllowed bool) {
	s.AddRoleWith(roleARN, Role{ExternalID: externalID, TrustAllowed: trustAllowed, TagSession: true})
}

// AddRoleWith configures a role, replacing any earlier configuration.
func (s *Server) AddRoleWith(roleARN string, r Role) {
	if r.MaxSessionDuration == 0 {
		r.MaxSessionDuration = time.Hour
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[roleARN] = r
}

// Deny makes every AssumeRole of roleARN fail with AccessDenied, as an
// explicit deny would, until Allow.
func (s *Server) Deny(roleARN string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[roleARN] = true
}

// Allow undoes Deny.
func (s *Server) Allow(roleARN string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.denied, roleARN)
}

// SetLifetime makes issued credentials expire d after issue, whatever the
// DurationSeconds asked for; 0 restores DurationSeconds (default 1h).
func (s *Server) SetLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = d
}

// SetCaller sets the ARN GetCallerIdentity reports and AccessDenied
// messages name.
func (s *Server) SetCaller(callerARN string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.caller = callerARN
}

// Hold makes AssumeRole requests wait, after they are recorded, until
// release is called (or the server closes). Tests use it to show that a
// refresh in flight does not block callers. release may be called more
// than once.
func (s *Server) Hold() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate == nil {
		s.gate = make(chan struct{})
	}
	gate := s.gate
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			close(gate)
			if s.gate == gate {
				s.gate = nil
			}
		})
	}
}

// Requests returns a copy of every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Tags = append([]Tag(nil), r.Tags...)
		r.TransitiveTagKeys = append([]string(nil), r.TransitiveTagKeys...)
		out[i] = r
	}
	return out
}

// AssumeRoleCalls counts AssumeRole requests received, failed ones included.
func (s *Server) AssumeRoleCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Action == "AssumeRole" {
			n++
		}
	}
	return n
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	requestID := fmt.Sprintf("00000000-0000-4000-8000-%012d", seq)

	req, apiErr := parseRequest(r)
	if apiErr != nil {
		req.ErrorCode = apiErr.code
		s.record(req)
		writeError(w, apiErr, requestID)
		return
	}
	switch req.Action {
	case "GetCallerIdentity":
		s.record(req)
		s.writeCallerIdentity(w, requestID)
	case "AssumeRole":
		s.assumeRole(w, r, req, seq, requestID)
	}
}

func (s *Server) record(req Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
}

func (s *Server) assumeRole(w http.ResponseWriter, r *http.Request, req Request, seq int, requestID string) {
	s.mu.Lock()
	role, known := s.roles[req.RoleARN]
	denied := s.denied[req.RoleARN]
	caller, lifetime, gate := s.caller, s.lifetime, s.gate
	s.mu.Unlock()

	apiErr := authorize(req, role, known, denied, caller)
	now := time.Now()
	if apiErr == nil {
		if lifetime == 0 {
			lifetime = time.Duration(req.DurationSeconds) * time.Second
			if lifetime == 0 {
				lifetime = time.Hour
			}
		}
		req.Expiration = now.Add(lifetime)
	} else {
		req.ErrorCode = apiErr.code
	}
	s.record(req)

	if gate != nil {
		select {
		case <-gate:
		case <-s.closing:
		case <-r.Context().Done():
			return
		}
	}
	if apiErr != nil {
		writeError(w, apiErr, requestID)
		return
	}

	var out assumeRoleResponse
	out.XMLNS = stsNamespace
	out.Metadata.RequestID = requestID
	res := &out.Result
	roleARN, _ := ident.ParseRoleARN(req.RoleARN) // parseAssumeRole checked it
	res.AssumedRoleUser.AssumedRoleID = fmt.Sprintf("AROA%017d:%s", seq, req.RoleSessionName)
	res.AssumedRoleUser.Arn = "arn:" + roleARN.Partition + ":sts::" + roleARN.AccountID + ":assumed-role/" + roleARN.Name + "/" + req.RoleSessionName
	res.Credentials.AccessKeyID = fmt.Sprintf("ASIA%016d", seq)
	res.Credentials.SecretAccessKey = fmt.Sprintf("%s%d", SecretKeyPrefix, seq)
	res.Credentials.SessionToken = fmt.Sprintf("%s%d", SessionTokenPrefix, seq)
	res.Credentials.Expiration = stsTime(req.Expiration)
	if req.Policy != "" || len(req.Tags) > 0 {
		// STS reports the packed size as a percentage of its limit; the
		// real packing is not public, so this is an estimate.
		n := len(req.Policy)
		for _, t := range req.Tags {
			n += len(t.Key) + len(t.Value)
		}
		pct := n * 100 / 2048
		res.PackedPolicySize = &pct
	}
	writeXML(w, http.StatusOK, out)
}

func (s *Server) writeCallerIdentity(w http.ResponseWriter, requestID string) {
	s.mu.Lock()
	caller := s.caller
	s.mu.Unlock()
	var out callerIdentityResponse
	out.XMLNS = stsNamespace
	out.Metadata.RequestID = requestID
	out.Result.Arn = caller
	out.Result.Account = accountOf(caller)
	out.Result.UserID = "AIDASTUBSTUBSTUBSTUB"
	writeXML(w, http.StatusOK, out)
}

// authorize applies the role's trust policy, after validation passed, in
// the order STS would deny: explicit deny, unknown role or untrusted caller,
// external id, then sts:TagSession.
func authorize(req Request, role Role, known, denied bool, caller string) *apiError {
	notAuthorized := func(action string) *apiError {
		return accessDenied("User: " + caller + " is not authorized to perform: " + action + " on resource: " + req.RoleARN)
	}
	switch {
	case denied, !known, !role.TrustAllowed:
		return notAuthorized("sts:AssumeRole")
	case role.ExternalID != "" && req.ExternalID != role.ExternalID:
		return notAuthorized("sts:AssumeRole")
	case len(req.Tags) > 0 && !role.TagSession:
		return notAuthorized("sts:TagSession")
	case req.DurationSeconds > int(role.MaxSessionDuration/time.Second):
		return validationError("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
	}
	return nil
}

func accountOf(a string) string { return field(a, 4) }

// field returns the i-th colon-separated part of an ARN, the last part
// keeping any further colons.
func field(a string, i int) string {
	parts := strings.SplitN(a, ":", 6)
	if i < len(parts) {
		return parts[i]
	}
	return ""
}
