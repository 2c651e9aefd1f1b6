package pipeline

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/capture/pgauth"
	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/rolecreds"
)

// SourceAuth builds the credential provider of a cluster: password from the
// environment or a file, a Secrets Manager secret, or RDS IAM tokens signed
// with the base identity (a password never sits in the config file: docs/config.md).
func SourceAuth(cfg *config.Config, cl *config.Cluster, awsCfg aws.Config, log *slog.Logger) (*pgauth.Provider, error) {
	opts := pgauth.Options{Region: cfg.AWS.Region, Logger: log.With("component", "source-auth", "cluster", cl.Name)}
	if cl.RoleARN != "" {
		// aws_role_arn: the source's own role (often in the database's
		// account) signs IAM tokens and reads the secret, assumed from the
		// base identity and refreshed before expiry.
		stsClient := sts.NewFromConfig(awsCfg, func(o *sts.Options) {
			if cfg.AWS.STSEndpoint != "" {
				o.BaseEndpoint = aws.String(cfg.AWS.STSEndpoint)
			}
		})
		awsCfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, cl.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = rolecreds.SessionName("source-" + cl.Name)
		}))
	}
	if cl.SecretID != "" {
		opts.Secrets = secretsmanager.NewFromConfig(awsCfg)
	}
	if cl.IAMAuth {
		opts.Credentials = awsCfg.Credentials
	}
	p, err := pgauth.New(cl.Source, opts)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cl.Name, err)
	}
	return p, nil
}

// ConnectSource opens a regular connection to a cluster with fresh
// credentials.
func ConnectSource(ctx context.Context, cl *config.Cluster, auth *pgauth.Provider) (*pgx.Conn, error) {
	pcfg, err := pgx.ParseConfig(cl.DSN)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cl.Name, pgauth.DSNError(err))
	}
	if err := auth.Configure(ctx, &pcfg.Config); err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, pcfg)
	if err != nil {
		if pgauth.IsAuthFailure(err) {
			auth.AuthFailed()
		}
		cause, msg := pgauth.Describe(err)
		return nil, fmt.Errorf("connect to cluster %s (%s): %s", cl.Name, cause, msg)
	}
	return conn, nil
}
