package stsstub_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/cdcd-dev/cdcd/test/stsstub"
)

const (
	roleARN    = "arn:aws:iam::123456789012:role/cdcd/writer"
	externalID = "ext-0123456789"
	baseKey    = "AKIDBASEEXAMPLE"
)

func client(s *stsstub.Server) *sts.Client {
	return sts.New(sts.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(s.URL()),
		Credentials:      credentials.NewStaticCredentialsProvider(baseKey, "base-secret", ""),
		RetryMaxAttempts: 1,
	})
}

func input() *sts.AssumeRoleInput {
	return &sts.AssumeRoleInput{
		RoleArn:         aws.String(roleARN),
		RoleSessionName: aws.String("cdcd-orders"),
		ExternalId:      aws.String(externalID),
		DurationSeconds: aws.Int32(900),
		Policy:          aws.String(`{"Version":"2012-10-17","Statement":[]}`),
		Tags:            []types.Tag{{Key: aws.String("cdcd:stream"), Value: aws.String("s1")}},
	}
}

func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

func TestAssumeRoleIssuesCredentialsAndRecords(t *testing.T) {
	s := stsstub.New(t)
	s.AddRole(roleARN, externalID, true)
	before := time.Now()
	out, err := client(s).AssumeRole(context.Background(), input())
	if err != nil {
		t.Fatal(err)
	}
	c := out.Credentials
	if aws.ToString(c.AccessKeyId) == "" || aws.ToString(c.SecretAccessKey) == "" || aws.ToString(c.SessionToken) == "" {
		t.Errorf("credentials incomplete: %+v", c)
	}
	if exp := aws.ToTime(c.Expiration); exp.Before(before.Add(899*time.Second)) || exp.After(time.Now().Add(901*time.Second)) {
		t.Errorf("expiration %v, want DurationSeconds (900s) from now", exp)
	}
	if got, want := aws.ToString(out.AssumedRoleUser.Arn), "arn:aws:sts::123456789012:assumed-role/writer/cdcd-orders"; got != want {
		t.Errorf("assumed role ARN %q, want %q", got, want)
	}
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests recorded, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Action != "AssumeRole" || r.RoleARN != roleARN || r.RoleSessionName != "cdcd-orders" || r.ExternalID != externalID ||
		r.DurationSeconds != 900 || r.Policy != aws.ToString(input().Policy) || r.AccessKeyID != baseKey || r.ErrorCode != "" {
		t.Errorf("recorded %+v", r)
	}
	if len(r.Tags) != 1 || r.Tags[0] != (stsstub.Tag{Key: "cdcd:stream", Value: "s1"}) {
		t.Errorf("tags %+v", r.Tags)
	}
}

func TestLifetimeOverridesDuration(t *testing.T) {
	s := stsstub.New(t)
	s.AddRole(roleARN, externalID, true)
	s.SetLifetime(3 * time.Second)
	out, err := client(s).AssumeRole(context.Background(), input())
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(aws.ToTime(out.Credentials.Expiration)); left > 3*time.Second || left < time.Second {
		t.Errorf("credentials expire in %v, want about 3s", left)
	}
}

func TestAssumeRoleChecks(t *testing.T) {
	long := `{"Version":"2012-10-17","Statement":[],"Pad":"` + strings.Repeat("x", 2048) + `"}`
	tests := []struct {
		name  string
		role  stsstub.Role
		edit  func(*sts.AssumeRoleInput)
		setup func(*stsstub.Server)
		code  string
	}{
		{name: "bad role ARN", edit: func(in *sts.AssumeRoleInput) { in.RoleArn = aws.String("arn:aws:iam::123:user/x-long-enough") }, code: "ValidationError"},
		{name: "short session name", edit: func(in *sts.AssumeRoleInput) { in.RoleSessionName = aws.String("c") }, code: "ValidationError"},
		{name: "session name chars", edit: func(in *sts.AssumeRoleInput) { in.RoleSessionName = aws.String("cdcd orders") }, code: "ValidationError"},
		{name: "session name too long", edit: func(in *sts.AssumeRoleInput) { in.RoleSessionName = aws.String(strings.Repeat("a", 65)) }, code: "ValidationError"},
		{name: "duration too short", edit: func(in *sts.AssumeRoleInput) { in.DurationSeconds = aws.Int32(899) }, code: "ValidationError"},
		{name: "duration too long", edit: func(in *sts.AssumeRoleInput) { in.DurationSeconds = aws.Int32(43201) }, code: "ValidationError"},
		{name: "duration over role max", edit: func(in *sts.AssumeRoleInput) { in.DurationSeconds = aws.Int32(7200) }, code: "ValidationError"},
		{name: "policy not JSON", edit: func(in *sts.AssumeRoleInput) { in.Policy = aws.String("{") }, code: "MalformedPolicyDocument"},
		{name: "policy without statement", edit: func(in *sts.AssumeRoleInput) { in.Policy = aws.String(`{"Version":"2012-10-17"}`) }, code: "MalformedPolicyDocument"},
		{name: "policy too long", edit: func(in *sts.AssumeRoleInput) { in.Policy = aws.String(long) }, code: "ValidationError"},
		{name: "external id chars", edit: func(in *sts.AssumeRoleInput) { in.ExternalId = aws.String("ext id") }, code: "ValidationError"},
		{name: "tag key reserved", edit: func(in *sts.AssumeRoleInput) {
			in.Tags = []types.Tag{{Key: aws.String("aws:x"), Value: aws.String("v")}}
		}, code: "ValidationError"},
		{name: "tag value chars", edit: func(in *sts.AssumeRoleInput) {
			in.Tags = []types.Tag{{Key: aws.String("k"), Value: aws.String("a*b")}}
		}, code: "ValidationError"},
		{name: "duplicate tag keys", edit: func(in *sts.AssumeRoleInput) {
			in.Tags = []types.Tag{{Key: aws.String("K"), Value: aws.String("1")}, {Key: aws.String("k"), Value: aws.String("2")}}
		}, code: "ValidationError"},
		{name: "transitive key not a tag", edit: func(in *sts.AssumeRoleInput) { in.TransitiveTagKeys = []string{"other"} }, code: "ValidationError"},
		{name: "unknown role", edit: func(in *sts.AssumeRoleInput) { in.RoleArn = aws.String("arn:aws:iam::123456789012:role/other") }, code: "AccessDenied"},
		{name: "trust refuses", role: stsstub.Role{ExternalID: externalID}, code: "AccessDenied"},
		{name: "wrong external id", edit: func(in *sts.AssumeRoleInput) { in.ExternalId = aws.String("ext-wrong") }, code: "AccessDenied"},
		{name: "missing external id", edit: func(in *sts.AssumeRoleInput) { in.ExternalId = nil }, code: "AccessDenied"},
		{name: "tags without TagSession", role: stsstub.Role{ExternalID: externalID, TrustAllowed: true}, code: "AccessDenied"},
		{name: "denied", setup: func(s *stsstub.Server) { s.Deny(roleARN) }, code: "AccessDenied"},
		{name: "denied then allowed", setup: func(s *stsstub.Server) { s.Deny(roleARN); s.Allow(roleARN) }},
		{name: "no external id required", role: stsstub.Role{TrustAllowed: true, TagSession: true}, edit: func(in *sts.AssumeRoleInput) { in.ExternalId = nil }},
		{name: "longer role max", role: stsstub.Role{ExternalID: externalID, TrustAllowed: true, TagSession: true, MaxSessionDuration: 12 * time.Hour},
			edit: func(in *sts.AssumeRoleInput) { in.DurationSeconds = aws.Int32(43200) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stsstub.New(t)
			role := tt.role
			if role == (stsstub.Role{}) {
				role = stsstub.Role{ExternalID: externalID, TrustAllowed: true, TagSession: true}
			}
			s.AddRoleWith(roleARN, role)
			if tt.setup != nil {
				tt.setup(s)
			}
			in := input()
			if tt.edit != nil {
				tt.edit(in)
			}
			_, err := client(s).AssumeRole(context.Background(), in)
			if got := errorCode(err); got != tt.code {
				t.Fatalf("error code %q (%v), want %q", got, err, tt.code)
			}
			if reqs := s.Requests(); len(reqs) != 1 || reqs[0].ErrorCode != tt.code {
				t.Errorf("recorded %+v, want one request with error code %q", reqs, tt.code)
			}
		})
	}
}

func TestHoldDelaysResponseUntilRelease(t *testing.T) {
	s := stsstub.New(t)
	s.AddRole(roleARN, externalID, true)
	release := s.Hold()
	done := make(chan error, 1)
	go func() {
		_, err := client(s).AssumeRole(context.Background(), input())
		done <- err
	}()
	for s.AssumeRoleCalls() == 0 {
		select {
		case err := <-done:
			t.Fatalf("AssumeRole returned while held: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	release()
	release() // idempotent
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestGetCallerIdentity(t *testing.T) {
	s := stsstub.New(t)
	s.SetCaller("arn:aws:sts::444455556666:assumed-role/base/session")
	out, err := client(s).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Arn) != "arn:aws:sts::444455556666:assumed-role/base/session" || aws.ToString(out.Account) != "444455556666" {
		t.Errorf("caller %q account %q", aws.ToString(out.Arn), aws.ToString(out.Account))
	}
}

func TestProtocolErrors(t *testing.T) {
	const sig = "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=" +
		"0000000000000000000000000000000000000000000000000000000000000000"
	form := url.Values{"Action": {"GetCallerIdentity"}, "Version": {"2011-06-15"}}
	tests := []struct {
		name   string
		method string
		auth   string
		body   url.Values
		status int
		code   string
	}{
		{name: "ok", method: http.MethodPost, auth: sig, body: form, status: 200},
		{name: "no signature", method: http.MethodPost, body: form, status: 403, code: "MissingAuthenticationToken"},
		{name: "bad signature", method: http.MethodPost, auth: "AWS4-HMAC-SHA256 Credential=AKID", body: form, status: 403, code: "IncompleteSignature"},
		{name: "GET", method: http.MethodGet, auth: sig, body: form, status: 405, code: "InvalidAction"},
		{name: "old version", method: http.MethodPost, auth: sig, body: url.Values{"Action": {"AssumeRole"}, "Version": {"2010-01-01"}}, status: 400, code: "InvalidAction"},
		{name: "unknown action", method: http.MethodPost, auth: sig, body: url.Values{"Action": {"GetSessionToken"}, "Version": {"2011-06-15"}}, status: 400, code: "InvalidAction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stsstub.New(t)
			req, err := http.NewRequest(tt.method, s.URL(), strings.NewReader(tt.body.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || (tt.code != "" && !strings.Contains(string(body), "<Code>"+tt.code+"</Code>")) {
				t.Errorf("status %d body %s, want %d %s", resp.StatusCode, body, tt.status, tt.code)
			}
		})
	}
}
