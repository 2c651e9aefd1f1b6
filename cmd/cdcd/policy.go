package main

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/rolecreds"
)

func cmdPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("policy", stderr)
	path := fs.String("config", "", "configuration file")
	name := fs.String("stream", "", "print what this stream needs only (default: every stream)")
	principal := fs.String("principal", "", "ARN of cdcd's base identity (default: ask STS GetCallerIdentity)")
	only := fs.String("only", "", `print one document only, for piping into the AWS CLI: base, trust, permissions, source, source-trust or reader`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return usageError{"policy needs --config FILE"}
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

// writePolicies prints every policy document, each under a comment naming
// whose it is and where it goes, or the one document of the part only names.
func writePolicies(cfg *config.Config, name, principal, only string, w io.Writer) error {
	docs, err := cfg.Policies(name, principal)
	if err != nil {
		return err
	}
	if only == "" {
		for i, d := range docs {
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "# %s\n%s", d.Title, d.JSON)
		}
		return nil
	}
	docs = slices.DeleteFunc(docs, func(d config.Document) bool { return d.Part != only })
	if len(docs) != 1 {
		return fmt.Errorf("--only %s: %d documents match, want one: base, trust, permissions, source, source-trust or reader, with --stream NAME when several streams have one", only, len(docs))
	}
	_, err = fmt.Fprint(w, docs[0].JSON)
	return err
}
