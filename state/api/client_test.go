package api

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

func TestNewClientCredentials(t *testing.T) {
	ctx := context.Background()
	loaded := 0
	load := func(_ context.Context, region string) (aws.Config, error) {
		loaded++
		return aws.Config{Region: region, Credentials: credentials.NewStaticCredentialsProvider("AKIDCHAIN", "chain", "")}, nil
	}
	for endpoint, wantKey := range map[string]string{
		"http://127.0.0.1:9180":                 "cdcd",
		"http://localhost:9180/":                "cdcd",
		"http://[::1]:9180":                     "cdcd",
		"http://0.0.0.0:9180":                   "cdcd",
		"https://dsql.us-east-1.api.aws":        "AKIDCHAIN",
		"http://cdcd.internal.example.com:9180": "AKIDCHAIN",
		"https://10.1.2.3:9180":                 "AKIDCHAIN",
	} {
		loaded = 0
		c, err := NewClient(ctx, ClientOptions{Endpoint: endpoint, Region: "eu-west-1"}, load)
		if err != nil {
			t.Fatalf("%s: %v", endpoint, err)
		}
		o := c.Options()
		creds, err := o.Credentials.Retrieve(ctx)
		if err != nil || creds.AccessKeyID != wantKey || aws.ToString(o.BaseEndpoint) != endpoint || o.Region != "eu-west-1" {
			t.Errorf("%s: key %q (want %q), endpoint %q, region %q, %v", endpoint, creds.AccessKeyID, wantKey, aws.ToString(o.BaseEndpoint), o.Region, err)
		}
		if want := wantKey == "AKIDCHAIN"; (loaded == 1) != want {
			t.Errorf("%s: AWS configuration loaded %d times", endpoint, loaded)
		}
	}
	for _, bad := range []string{"127.0.0.1:9180", "ftp://127.0.0.1", "http://", ":"} {
		if _, err := NewClient(ctx, ClientOptions{Endpoint: bad, Region: "eu-west-1"}, load); err == nil {
			t.Errorf("endpoint %q accepted", bad)
		}
	}
	boom := errors.New("no AWS configuration")
	if _, err := NewClient(ctx, ClientOptions{Endpoint: "https://dsql.us-east-1.api.aws", Region: "us-east-1"}, func(context.Context, string) (aws.Config, error) {
		return aws.Config{}, boom
	}); !errors.Is(err, boom) {
		t.Errorf("a failing load: got %v", err)
	}
}

// TestProgress: the lag and the snapshot's progress read from GetStream's
// source member, each only when present.
func TestProgress(t *testing.T) {
	cases := []struct {
		source string
		want   [][2]string
	}{
		{``, nil},
		{`{"confirmedLsn":"0/0","lagSeconds":0}`, [][2]string{{"lag", "0s"}}},
		{`{"lagSeconds":42.5,"lagBytes":2048,"snapshot":{"done":false,"table":"public.orders","tablesDone":1,"tables":3,"rows":1200,"estimatedRows":5000}}`,
			[][2]string{{"lag", "42.5s, 2048 bytes of WAL"}, {"snapshot", "1 of 3 tables, 1200 rows of about 5000, reading public.orders"}}},
		{`{"lagSeconds":1,"snapshot":{"done":true,"tablesDone":3,"tables":3,"rows":1200,"estimatedRows":1200}}`,
			[][2]string{{"lag", "1s"}, {"snapshot", "done: 3 tables, 1200 rows"}}},
	}
	for _, tc := range cases {
		got := Stream{Source: json.RawMessage(tc.source)}.Progress()
		if !slices.Equal(got, tc.want) {
			t.Errorf("Progress of %s = %q, want %q", tc.source, got, tc.want)
		}
	}
}
