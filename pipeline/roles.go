package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/rolecreds"
)

// streamCredentials returns the credentials a stream writes with: its role,
// narrowed by a session policy to the one stream, or the base identity when
// the stream has no role. The closer stops background refreshes.
func (d *Daemon) streamCredentials(ctx context.Context, s *config.Stream, streamARN, clusterID string, log *slog.Logger) (aws.CredentialsProvider, io.Closer, error) {
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
	rc, err := d.cfg.RoleConfig(s, streamARN, clusterID, log.With("component", "rolecreds"))
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

// kinesisClient is a stream's Kinesis client, writing with creds.
func (d *Daemon) kinesisClient(creds aws.CredentialsProvider) *kinesis.Client {
	return kinesis.NewFromConfig(d.aws, func(o *kinesis.Options) {
		o.Credentials = creds
		if d.cfg.AWS.KinesisEndpoint != "" {
			o.BaseEndpoint = aws.String(d.cfg.AWS.KinesisEndpoint)
		}
	})
}
