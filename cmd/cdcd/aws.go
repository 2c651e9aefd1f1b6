package main

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// loadAWS loads the base identity from the standard AWS chain (environment,
// shared config and profiles, web identity, ECS task role, instance
// metadata). It never sets an HTTP client here: with AWS_CA_BUNDLE set, the
// SDK refuses a custom client at load time.
func loadAWS(ctx context.Context, region string) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region))
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg, nil
}
