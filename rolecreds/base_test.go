package rolecreds_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/cdcd-dev/cdcd/rolecreds"
	"github.com/cdcd-dev/cdcd/test/stsstub"
)

// TestBaseConfigWiring is the daemon's wiring: base identity from the
// standard chain (here the environment), an STS client from it pointed at
// the stand-in, and the role provider on top.
func TestBaseConfigWiring(t *testing.T) {
	stsstub.UseEnvironment(t, "AKIDFROMENVIRONMENT")
	s := stsstub.New(t)
	s.SetCaller(testBase)
	s.AddRole(testRole, testExternal, true)
	ctx := context.Background()
	cfg, err := rolecreds.BaseConfig(ctx, "us-east-1", s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "us-east-1" || cfg.BaseEndpoint != nil {
		t.Errorf("region %q base endpoint %v; want us-east-1 and no global endpoint", cfg.Region, cfg.BaseEndpoint)
	}
	if ep := kinesis.NewFromConfig(cfg).Options().BaseEndpoint; ep != nil {
		t.Errorf("Kinesis client endpoint %q, want the default", *ep)
	}

	client := sts.NewFromConfig(cfg)
	id, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(id.Arn) != testBase {
		t.Errorf("caller %q, want %q", aws.ToString(id.Arn), testBase)
	}
	if c, err := rolecreds.CallerIdentity(ctx, "us-east-1", s.URL()); err != nil || c.ARN != testBase || c.Account != "123456789012" {
		t.Errorf("CallerIdentity = %+v, %v; want %q in account 123456789012", c, err, testBase)
	}
	p, err := rolecreds.New(testConfig(), client)
	if err != nil {
		t.Fatal(err)
	}
	mustRetrieve(t, p)
	for _, r := range s.Requests() {
		if r.AccessKeyID != "AKIDFROMENVIRONMENT" {
			t.Errorf("%s signed with %q, want the environment's key", r.Action, r.AccessKeyID)
		}
	}
}

func TestBaseConfigRejects(t *testing.T) {
	tests := []struct{ name, region, endpoint, field string }{
		{"region", "US East", "", "Region"},
		{"endpoint scheme", "us-east-1", "sts.example.com", "STSEndpoint"},
		{"endpoint host", "us-east-1", "https://", "STSEndpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rolecreds.BaseConfig(context.Background(), tt.region, tt.endpoint)
			var fe *rolecreds.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("error %v, want a FieldError for %s", err, tt.field)
			}
		})
	}
}
