package rolecreds_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/rolecreds"
	"github.com/cdcd-dev/cdcd/test/stsstub"
)

const baseKey = "AKIDBASEEXAMPLE"

// stsClient is the SDK's real STS client, signing with static base
// credentials and sending to the stand-in.
func stsClient(s *stsstub.Server) *sts.Client {
	return sts.New(sts.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider(baseKey, "base-secret", ""),
	})
}

func newProvider(t *testing.T, s *stsstub.Server, cfg rolecreds.Config) aws.CredentialsProvider {
	t.Helper()
	p, err := rolecreds.New(cfg, stsClient(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.(io.Closer).Close() })
	return p
}

// retrieve bounds each call so that a Retrieve that blocks fails the test
// instead of hanging it; the bound is a hang guard, not a speed check.
func retrieve(p aws.CredentialsProvider) (aws.Credentials, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.Retrieve(ctx)
}

func mustRetrieve(t *testing.T, p aws.CredentialsProvider) aws.Credentials {
	t.Helper()
	c, err := retrieve(p)
	if err != nil {
		t.Fatalf("Retrieve: %v", err)
	}
	if !c.HasKeys() || !c.CanExpire || !c.Expires.After(time.Now()) {
		t.Fatalf("Retrieve returned unusable credentials %+v", c)
	}
	return c
}

// pause waits between loop iterations without a bare time.Sleep.
func pause(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	<-timer.C
}

func TestRetrieveSendsScopedAssumeRole(t *testing.T) {
	s := stsstub.New(t)
	s.AddRole(testRole, testExternal, true)
	cfg := testConfig()
	cfg.KeyARN = testKey
	p := newProvider(t, s, cfg)

	c := mustRetrieve(t, p)
	if left := time.Until(c.Expires); left < 59*time.Minute || left > time.Hour {
		t.Errorf("credentials expire in %v, want the 1h default session", left)
	}
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d STS requests, want 1", len(reqs))
	}
	r := reqs[0]
	for _, f := range []struct{ name, got, want string }{
		{"Action", r.Action, "AssumeRole"},
		{"RoleArn", r.RoleARN, testRole},
		{"RoleSessionName", r.RoleSessionName, "cdcd-orders"},
		{"ExternalId", r.ExternalID, testExternal},
		{"signing key", r.AccessKeyID, baseKey},
		{"error", r.ErrorCode, ""},
	} {
		if f.got != f.want {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	if r.DurationSeconds != 3600 {
		t.Errorf("DurationSeconds = %d, want 3600", r.DurationSeconds)
	}
	wantTags := []stsstub.Tag{{Key: "cdcd:stream", Value: testStreamARN}, {Key: "cdcd:cluster", Value: testCluster}}
	if !slices.Equal(r.Tags, wantTags) {
		t.Errorf("Tags = %+v, want %+v", r.Tags, wantTags)
	}
	if len(r.TransitiveTagKeys) != 0 {
		t.Errorf("TransitiveTagKeys = %q, want none", r.TransitiveTagKeys)
	}
	if want, _ := rolecreds.SessionPolicy(cfg); r.Policy != want {
		t.Errorf("Policy = %s\nwant %s", r.Policy, want)
	}
	checkSessionPolicy(t, r.Policy)
}

// checkSessionPolicy decodes the policy STS received and checks it field by
// field, independently of the golden files.
func checkSessionPolicy(t *testing.T, policy string) {
	t.Helper()
	var doc struct {
		Version   string
		Statement []struct {
			Effect    string
			Action    json.RawMessage
			Resource  json.RawMessage
			Condition map[string]map[string]string
			Principal json.RawMessage
			NotAction json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		t.Fatalf("policy is not JSON: %v", err)
	}
	if doc.Version != "2012-10-17" || len(doc.Statement) != 2 {
		t.Fatalf("policy version %q with %d statements, want 2012-10-17 with 2", doc.Version, len(doc.Statement))
	}
	var actions []string
	if err := json.Unmarshal(doc.Statement[0].Action, &actions); err != nil {
		t.Fatal(err)
	}
	want := []string{"kinesis:DescribeStreamSummary", "kinesis:ListShards", "kinesis:PutRecord", "kinesis:PutRecords"}
	if !slices.Equal(actions, want) {
		t.Errorf("kinesis actions %q, want %q", actions, want)
	}
	if got := string(doc.Statement[0].Resource); got != `"`+testKinesis+`"` {
		t.Errorf("kinesis resource %s, want %s", got, testKinesis)
	}
	if doc.Statement[0].Condition != nil {
		t.Errorf("kinesis statement has conditions %v", doc.Statement[0].Condition)
	}
	kms := doc.Statement[1]
	if string(kms.Action) != `"kms:GenerateDataKey"` || string(kms.Resource) != `"`+testKey+`"` {
		t.Errorf("kms statement action %s resource %s", kms.Action, kms.Resource)
	}
	wantCond := map[string]string{
		"kms:ViaService":                        "kinesis.us-east-1.amazonaws.com",
		"kms:EncryptionContext:aws:kinesis:arn": testKinesis,
		"aws:ResourceAccount":                   "${aws:PrincipalAccount}",
	}
	if len(kms.Condition) != 1 || len(kms.Condition["StringEquals"]) != len(wantCond) {
		t.Errorf("kms conditions %v, want StringEquals %v", kms.Condition, wantCond)
	}
	for k, v := range wantCond {
		if got := kms.Condition["StringEquals"][k]; got != v {
			t.Errorf("condition %s = %q, want %q", k, got, v)
		}
	}
	for i, st := range doc.Statement {
		if st.Effect != "Allow" || st.Principal != nil || st.NotAction != nil {
			t.Errorf("statement %d: effect %q principal %s notaction %s", i, st.Effect, st.Principal, st.NotAction)
		}
	}
}

func TestRetrieveReusesCredentials(t *testing.T) {
	s := stsstub.New(t)
	s.AddRole(testRole, testExternal, true)
	p := newProvider(t, s, testConfig())
	first := mustRetrieve(t, p)
	for range 5 {
		if c := mustRetrieve(t, p); c.AccessKeyID != first.AccessKeyID {
			t.Fatalf("credentials changed from %s to %s", first.AccessKeyID, c.AccessKeyID)
		}
	}
	if n := s.AssumeRoleCalls(); n != 1 {
		t.Errorf("%d AssumeRole calls, want 1", n)
	}
}

func TestNoTagsWithoutStreamARNAndCluster(t *testing.T) {
	s := stsstub.New(t)
	s.AddRoleWith(testRole, stsstub.Role{ExternalID: testExternal, TrustAllowed: true, TagSession: false})
	cfg := testConfig()
	cfg.StreamARN, cfg.ClusterID = "", ""
	mustRetrieve(t, newProvider(t, s, cfg))
	if tags := s.Requests()[0].Tags; tags != nil {
		t.Errorf("tags sent: %+v", tags)
	}
}

func TestRoleAccessDeniedThenAllowed(t *testing.T) {
	s := stsstub.New(t)
	s.AddRole(testRole, testExternal, true)
	s.Deny(testRole)
	p := newProvider(t, s, testConfig())

	_, err := retrieve(p)
	if code, ok := rolecreds.Classify(err); code != codes.RoleAccessDenied || !ok {
		t.Fatalf("Classify(%v) = %q, %v; want ROLE_ACCESS_DENIED", err, code, ok)
	}
	var are *rolecreds.AssumeRoleError
	if !errors.As(err, &are) || are.RoleARN != testRole {
		t.Errorf("error %v does not name the role", err)
	}

	s.Allow(testRole)
	mustRetrieve(t, p)
	if n := s.AssumeRoleCalls(); n != 2 {
		t.Errorf("%d AssumeRole calls, want 2", n)
	}
}

func TestAssumeRoleFailuresClassified(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*stsstub.Server)
		edit  func(*rolecreds.Config)
		code  codes.Code
	}{
		{"missing role", func(*stsstub.Server) {}, nil, codes.RoleAccessDenied},
		{"trust refuses", func(s *stsstub.Server) { s.AddRole(testRole, testExternal, false) }, nil, codes.RoleAccessDenied},
		{"wrong external id", func(s *stsstub.Server) { s.AddRole(testRole, "ext-other", true) }, nil, codes.RoleAccessDenied},
		{"no sts:TagSession", func(s *stsstub.Server) {
			s.AddRoleWith(testRole, stsstub.Role{ExternalID: testExternal, TrustAllowed: true})
		}, nil, codes.RoleAccessDenied},
		{"duration over role max", func(s *stsstub.Server) { s.AddRole(testRole, testExternal, true) },
			func(c *rolecreds.Config) { c.Duration = 2 * time.Hour }, codes.InternalError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stsstub.New(t)
			tt.setup(s)
			cfg := testConfig()
			if tt.edit != nil {
				tt.edit(&cfg)
			}
			_, err := retrieve(newProvider(t, s, cfg))
			if code, ok := rolecreds.Classify(err); code != tt.code || !ok {
				t.Errorf("Classify(%v) = %q, %v; want %q", err, code, ok, tt.code)
			}
		})
	}
}

// TestShortLivedCredentialsRefreshInSteadyLoop runs callers continuously
// over credentials that live 2s and are refreshed 1s ahead: every call must
// succeed with unexpired credentials while AssumeRole is called again and
// again.
func TestShortLivedCredentialsRefreshInSteadyLoop(t *testing.T) {
	s := stsstub.New(t)
	s.AddRole(testRole, testExternal, true)
	s.SetLifetime(2 * time.Second)
	cfg := testConfig()
	cfg.ExpiryWindow = time.Second
	p := newProvider(t, s, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		keys = map[string]bool{}
		errs []error
	)
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil && s.AssumeRoleCalls() < 5 {
				c, err := retrieve(p)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case !c.Expires.After(time.Now()):
					errs = append(errs, errors.New("expired credentials "+c.AccessKeyID))
				default:
					keys[c.AccessKeyID] = true
				}
				mu.Unlock()
				pause(10 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d failed calls, first: %v", len(errs), errs[0])
	}
	if n := s.AssumeRoleCalls(); n < 5 {
		t.Fatalf("%d AssumeRole calls before the deadline, want at least 5", n)
	}
	if len(keys) < 4 {
		t.Errorf("callers saw %d distinct credentials, want at least 4", len(keys))
	}
}

// TestRefreshInFlightDoesNotBlockCallers holds the refresh inside the
// stand-in: callers must keep getting the current credentials meanwhile,
// which they could not if Retrieve waited for STS.
func TestRefreshInFlightDoesNotBlockCallers(t *testing.T) {
	s := stsstub.New(t)
	s.AddRole(testRole, testExternal, true)
	s.SetLifetime(10 * time.Second) // refresh from 2s, served until 8s
	cfg := testConfig()
	cfg.ExpiryWindow = 8 * time.Second
	p := newProvider(t, s, cfg)

	first := mustRetrieve(t, p)
	release := s.Hold()
	defer release()
	for s.AssumeRoleCalls() < 2 {
		if c := mustRetrieve(t, p); c.AccessKeyID != first.AccessKeyID {
			t.Fatalf("credentials changed before the refresh was released")
		}
		if time.Now().After(first.Expires) {
			t.Fatal("no refresh started before expiry")
		}
		pause(10 * time.Millisecond)
	}
	for range 10 {
		if c := mustRetrieve(t, p); c.AccessKeyID != first.AccessKeyID {
			t.Fatalf("got %s while the refresh is held, want the current %s", c.AccessKeyID, first.AccessKeyID)
		}
	}
	release()
	waitForNewKey(t, p, first.AccessKeyID)
	if n := s.AssumeRoleCalls(); n != 2 {
		t.Errorf("%d AssumeRole calls, want 2: one refresh at a time", n)
	}
}

// TestFailedRefreshKeepsValidCredentials denies the role once credentials
// are held: background refreshes fail, callers keep the still-valid
// credentials, and the next refresh after Allow replaces them.
func TestFailedRefreshKeepsValidCredentials(t *testing.T) {
	s := stsstub.New(t)
	s.AddRole(testRole, testExternal, true)
	s.SetLifetime(10 * time.Second)
	cfg := testConfig()
	cfg.ExpiryWindow = 8 * time.Second // background retries 1s apart
	p := newProvider(t, s, cfg)

	first := mustRetrieve(t, p)
	s.Deny(testRole)
	for s.AssumeRoleCalls() < 3 {
		if c := mustRetrieve(t, p); c.AccessKeyID != first.AccessKeyID {
			t.Fatal("credentials changed while the role is denied")
		}
		if time.Now().After(first.Expires) {
			t.Fatal("background refresh was not retried before expiry")
		}
		pause(10 * time.Millisecond)
	}
	s.Allow(testRole)
	waitForNewKey(t, p, first.AccessKeyID)
}

// TestExpiredCredentialsReportDenial lets denied refreshes run until the
// credentials are too close to expiry: Retrieve then fails with
// ROLE_ACCESS_DENIED, and succeeds again as soon as the role is allowed.
func TestExpiredCredentialsReportDenial(t *testing.T) {
	s := stsstub.New(t)
	s.AddRole(testRole, testExternal, true)
	s.SetLifetime(2 * time.Second)
	cfg := testConfig()
	cfg.ExpiryWindow = time.Second
	p := newProvider(t, s, cfg)

	first := mustRetrieve(t, p)
	s.Deny(testRole)
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); pause(10 * time.Millisecond) {
		var c aws.Credentials
		if c, err = retrieve(p); err != nil {
			break
		}
		if c.AccessKeyID != first.AccessKeyID || !c.Expires.After(time.Now()) {
			t.Fatalf("got %+v while denied, want the first, unexpired credentials", c)
		}
	}
	if code, ok := rolecreds.Classify(err); code != codes.RoleAccessDenied || !ok {
		t.Fatalf("Classify(%v) = %q, %v; want ROLE_ACCESS_DENIED", err, code, ok)
	}
	s.Allow(testRole)
	if c := mustRetrieve(t, p); c.AccessKeyID == first.AccessKeyID {
		t.Error("old credentials returned after they expired")
	}
}

// TestCallerContextDoesNotCancelRefresh gives up waiting on a held first
// refresh; the refresh itself must go on and serve the next caller.
func TestCallerContextDoesNotCancelRefresh(t *testing.T) {
	s := stsstub.New(t)
	s.AddRole(testRole, testExternal, true)
	p := newProvider(t, s, testConfig())
	release := s.Hold()
	defer release()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.Retrieve(ctx)
		done <- err
	}()
	for s.AssumeRoleCalls() == 0 {
		pause(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Retrieve after cancel = %v, want context.Canceled", err)
	}
	release()
	mustRetrieve(t, p)
	if n := s.AssumeRoleCalls(); n != 1 {
		t.Errorf("%d AssumeRole calls, want the one refresh to have served both", n)
	}
}

func TestCloseCancelsRefreshAndStopsRetrieve(t *testing.T) {
	s := stsstub.New(t)
	s.AddRole(testRole, testExternal, true)
	p, err := rolecreds.New(testConfig(), stsClient(s))
	if err != nil {
		t.Fatal(err)
	}
	release := s.Hold()
	defer release()
	done := make(chan error, 1)
	go func() {
		_, err := retrieve(p)
		done <- err
	}()
	for s.AssumeRoleCalls() == 0 {
		pause(5 * time.Millisecond)
	}
	if err := p.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Error("Retrieve waiting on a cancelled refresh succeeded")
	}
	if _, err := retrieve(p); !errors.Is(err, rolecreds.ErrClosed) {
		t.Errorf("Retrieve after Close = %v, want ErrClosed", err)
	}
}

func TestNewRejects(t *testing.T) {
	s := stsstub.New(t)
	if _, err := rolecreds.New(testConfig(), nil); err == nil {
		t.Error("New accepted a nil AssumeRoleAPI")
	}
	cfg := testConfig()
	cfg.Duration = time.Minute
	var fe *rolecreds.FieldError
	if _, err := rolecreds.New(cfg, stsClient(s)); !errors.As(err, &fe) || fe.Field != "Duration" {
		t.Errorf("New with a 1m session = %v, want a Duration FieldError", err)
	}
}

func waitForNewKey(t *testing.T, p aws.CredentialsProvider, old string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); pause(10 * time.Millisecond) {
		if c := mustRetrieve(t, p); c.AccessKeyID != old {
			return
		}
	}
	t.Fatal("credentials were not refreshed")
}
