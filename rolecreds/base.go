package rolecreds

import (
	"context"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/cdcd-dev/cdcd/ident"
)

// BaseConfig loads the standard AWS chain (environment, shared files, SSO,
// web identity, container and instance roles) for the daemon's base
// identity, in region. A non-empty stsEndpoint is used by STS clients made
// from the result and by no other service, so the same aws.Config can build
// the Kinesis and KMS clients.
//
// The endpoint is supplied the way the SDK supplies AWS_ENDPOINT_URL_STS: as
// a service-specific endpoint source placed ahead of the loaded ones.
// aws.Config.BaseEndpoint would redirect every service. The SDK's own rules
// still apply: AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true, or AWS_ENDPOINT_URL
// set without AWS_ENDPOINT_URL_STS, win over stsEndpoint.
//
// No HTTP client is passed to LoadDefaultConfig: with AWS_CA_BUNDLE set it
// refuses a custom client; callers needing one set cfg.HTTPClient afterwards.
func BaseConfig(ctx context.Context, region, stsEndpoint string) (aws.Config, error) {
	if region != "" && !ident.ValidRegion(region) {
		return aws.Config{}, fieldErr("Region", region, "want a region such as us-east-1")
	}
	if stsEndpoint != "" {
		u, err := url.Parse(stsEndpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return aws.Config{}, fieldErr("STSEndpoint", stsEndpoint, "want an http or https URL")
		}
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region))
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS config: %w", err)
	}
	if stsEndpoint != "" {
		cfg.ConfigSources = append([]any{stsEndpointSource(stsEndpoint)}, cfg.ConfigSources...)
	}
	return cfg, nil
}

// Caller is cdcd's base identity as STS GetCallerIdentity reports it.
type Caller struct {
	ARN     string
	Account string
}

// CallerIdentity asks STS GetCallerIdentity who the base identity that
// BaseConfig loads is. The call needs no IAM permission.
func CallerIdentity(ctx context.Context, region, stsEndpoint string) (Caller, error) {
	cfg, err := BaseConfig(ctx, region, stsEndpoint)
	if err != nil {
		return Caller{}, err
	}
	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return Caller{}, fmt.Errorf("STS GetCallerIdentity: %w", err)
	}
	return Caller{ARN: aws.ToString(id.Arn), Account: aws.ToString(id.Account)}, nil
}

// stsEndpointSource answers the SDK's service-specific endpoint lookup for
// STS only.
type stsEndpointSource string

// GetServiceBaseEndpoint is the method the SDK's service clients look for
// among aws.Config.ConfigSources.
func (s stsEndpointSource) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	if sdkID == "STS" {
		return string(s), true, nil
	}
	return "", false, nil
}
