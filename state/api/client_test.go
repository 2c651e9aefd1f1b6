package api

import (
	"context"
	"errors"
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
