package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/capture/pgauth"
	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/rolecreds"
)

func cmdPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("policy", stderr)
	path := fs.String("config", "", "configuration file")
	name := fs.String("stream", "", "stream whose role policies to print")
	principal := fs.String("principal", "", "ARN of cdcd's base identity (default: ask STS GetCallerIdentity)")
	only := fs.String("only", "", `print one document only: "trust", "permissions" or "source" (for piping into the AWS CLI)`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" || *name == "" {
		return usageError{"policy needs --config FILE --stream NAME"}
	}
	if *only != "" && *only != "trust" && *only != "permissions" && *only != "source" {
		return usageError{fmt.Sprintf("--only %q: want trust, permissions or source", *only)}
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if *principal == "" {
		base, err := rolecreds.BaseConfig(ctx, cfg.AWS.Region, cfg.AWS.STSEndpoint)
		if err != nil {
			return err
		}
		id, err := sts.NewFromConfig(base).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return fmt.Errorf("find cdcd's base identity (or pass --principal ARN): %w", err)
		}
		*principal = aws.ToString(id.Arn)
	}
	return writePolicies(cfg, *name, *principal, *only, stdout)
}

// writePolicies prints the role's trust policy and permissions policy for
// one stream, each a JSON document ready to paste into IAM.
func writePolicies(cfg *config.Config, name, principal, only string, w io.Writer) error {
	var sc *config.Stream
	for i := range cfg.Streams {
		if cfg.Streams[i].Name == name {
			sc = &cfg.Streams[i]
		}
	}
	if sc == nil {
		return fmt.Errorf("--stream %q names no stream in %s", name, cfg.Path)
	}
	cl := cfg.ClusterNamed(sc.Cluster)
	source, err := sourcePolicy(cfg, cl)
	if err != nil {
		return err
	}
	if sc.Target.RoleARN == "" {
		if source == "" {
			return fmt.Errorf("stream %s has no target.role_arn and its cluster needs no AWS permission: cdcd writes with its base identity, so there is no policy to print", name)
		}
		_, err = fmt.Fprintf(w, "# Identity policy of cdcd's base principal %s, to read the source of cluster %s\n%s", principal, cl.Name, source)
		return err
	}
	rc, err := cfg.RoleConfig(sc, "", cl.Identifier, nil)
	if err != nil {
		return err
	}
	trust, err := rolecreds.TrustPolicy(principal, rc, true)
	if err != nil {
		return err
	}
	perms, err := rolecreds.PermissionsPolicy(rc)
	if err != nil {
		return err
	}
	switch only {
	case "trust":
		_, err = fmt.Fprintln(w, trust)
	case "permissions":
		_, err = fmt.Fprint(w, perms)
	case "source":
		_, err = fmt.Fprint(w, source)
	default:
		_, err = fmt.Fprintf(w, "# Trust policy of %s (IAM: the role's trust relationships)\n%s\n\n# Permissions policy of %s (IAM: an inline or managed policy on the role)\n%s",
			sc.Target.RoleARN, strings.TrimRight(trust, "\n"), sc.Target.RoleARN, perms)
		if err == nil && source != "" {
			_, err = fmt.Fprintf(w, "\n# Identity policy of cdcd's base principal %s, to read the source of cluster %s\n%s", principal, cl.Name, source)
		}
	}
	return err
}

// sourcePolicy is the identity policy cdcd's base principal needs to reach a
// cluster: rds-db:connect for IAM authentication, secretsmanager and
// kms:Decrypt for a secret; "" when it needs none.
func sourcePolicy(cfg *config.Config, cl *config.Cluster) (string, error) {
	pcfg, err := pgconn.ParseConfig(cl.DSN)
	if err != nil {
		return "", fmt.Errorf("cluster %s dsn: %w", cl.Name, err)
	}
	stmts, err := cl.Source.Policy(pgauth.Account{Partition: cfg.AWS.Partition, Region: cfg.AWS.Region, ID: cfg.AWS.Account}, pcfg.User)
	if err != nil || len(stmts) == 0 {
		return "", err
	}
	return pgauth.PolicyDocument(stmts)
}
