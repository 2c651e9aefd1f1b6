package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/cdcd-dev/cdcd/rolecreds"
)

// kinesisStreamARN is the target stream's ARN: configured, or built from the
// name in the role's account (a role writes to its own account's streams),
// or in aws.account when the stream has no role.
func (c *Config) kinesisStreamARN(s *Stream) (string, error) {
	if s.Target.KinesisStreamARN != "" {
		return s.Target.KinesisStreamARN, nil
	}
	account := c.AWS.Account
	if s.Target.RoleARN != "" {
		role, err := rolecreds.ParseRoleARN(s.Target.RoleARN)
		if err != nil {
			return "", fmt.Errorf("stream %s target.role_arn: %w", s.Name, err)
		}
		account = role.AccountID
	}
	return fmt.Sprintf("arn:%s:kinesis:%s:%s:stream/%s", c.AWS.Partition, c.AWS.Region, account, s.Target.KinesisStream), nil
}

// roleConfig is the rolecreds configuration of one stream.
func (c *Config) roleConfig(s *Stream, streamARN, clusterID string, log *slog.Logger) (rolecreds.Config, error) {
	kinARN, err := c.kinesisStreamARN(s)
	if err != nil {
		return rolecreds.Config{}, err
	}
	return rolecreds.Config{
		RoleARN: s.Target.RoleARN, ExternalID: s.Target.ExternalID, StreamName: s.Name,
		StreamARN: streamARN, ClusterID: clusterID, KinesisStreamARN: kinARN,
		Region: c.AWS.Region, Partition: c.AWS.Partition, Duration: s.Target.SessionDuration.Duration, Logger: log,
	}, nil
}

// streamCredentials returns the credentials a stream writes with: its role,
// narrowed by a session policy to the one stream, or the base identity when
// the stream has no role. The closer stops background refreshes.
func (d *daemon) streamCredentials(ctx context.Context, s *Stream, streamARN, clusterID string, log *slog.Logger) (aws.CredentialsProvider, io.Closer, error) {
	if s.Target.RoleARN == "" {
		return d.aws.Credentials, io.NopCloser(nil), nil
	}
	allow, err := rolecreds.NewAllowList(d.cfg.AWS.RoleARNAllow)
	if err != nil {
		return nil, nil, fmt.Errorf("aws.role_arn_allow: %w", err)
	}
	if err := allow.Check(s.Target.RoleARN); err != nil {
		return nil, nil, err
	}
	rc, err := d.cfg.roleConfig(s, streamARN, clusterID, log.With("component", "rolecreds"))
	if err != nil {
		return nil, nil, err
	}
	base, err := rolecreds.BaseConfig(ctx, d.cfg.AWS.Region, d.cfg.AWS.STSEndpoint)
	if err != nil {
		return nil, nil, err
	}
	p, err := rolecreds.New(rc, sts.NewFromConfig(base))
	if err != nil {
		return nil, nil, fmt.Errorf("stream %s role: %w", s.Name, err)
	}
	closer, _ := p.(io.Closer)
	if closer == nil {
		closer = io.NopCloser(nil)
	}
	return p, closer, nil
}
