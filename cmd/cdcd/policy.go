package main

import (
	"context"
	"fmt"
	"io"
	"strings"

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
		caller, err := rolecreds.CallerIdentity(ctx, cfg.AWS.Region, cfg.AWS.STSEndpoint)
		if err != nil {
			return fmt.Errorf("find cdcd's base identity (or pass --principal ARN): %w", err)
		}
		*principal = caller.ARN
	}
	return writePolicies(cfg, *name, *principal, *only, stdout)
}

// writePolicies prints a stream's role trust and permissions policies and
// the base principal's policy to read its source, or the one only names.
func writePolicies(cfg *config.Config, name, principal, only string, w io.Writer) error {
	p, err := cfg.Policies(name, principal)
	if err != nil {
		return err
	}
	source := fmt.Sprintf("# Identity policy of cdcd's base principal %s, to read the source of cluster %s\n%s", principal, p.Cluster, p.Source)
	if p.RoleARN == "" {
		if p.Source == "" {
			return fmt.Errorf("stream %s has no target.role_arn and its cluster needs no AWS permission: cdcd writes with its base identity, so there is no policy to print", name)
		}
		_, err = fmt.Fprint(w, source)
		return err
	}
	switch only {
	case "trust":
		_, err = fmt.Fprintln(w, p.Trust)
	case "permissions":
		_, err = fmt.Fprint(w, p.Permissions)
	case "source":
		_, err = fmt.Fprint(w, p.Source)
	default:
		_, err = fmt.Fprintf(w, "# Trust policy of %s (IAM: the role's trust relationships)\n%s\n\n# Permissions policy of %s (IAM: an inline or managed policy on the role)\n%s",
			p.RoleARN, strings.TrimRight(p.Trust, "\n"), p.RoleARN, p.Permissions)
		if err == nil && p.Source != "" {
			_, err = fmt.Fprint(w, "\n"+source)
		}
	}
	return err
}
