package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/pipeline"
)

// checkOnline connects to every stream's source as cdcd would and reports
// each missing prerequisite with the SQL that fixes it. It changes nothing.
func checkOnline(ctx context.Context, cfg *config.Config, w io.Writer) error {
	awsCfg, err := config.LoadAWS(ctx, cfg.AWS.Region)
	if err != nil {
		return err
	}
	problems := 0
	for i := range cfg.Streams {
		sc := &cfg.Streams[i]
		cl := cfg.ClusterNamed(sc.Cluster)
		auth, err := pipeline.SourceAuth(cfg, cl, awsCfg, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		findings, err := pipeline.CheckSource(ctx, cl, sc, auth)
		switch {
		case err != nil:
			fmt.Fprintf(w, "stream %s: %v\n", sc.Name, err)
			problems++
		case len(findings) == 0:
			fmt.Fprintf(w, "stream %s: source ready\n", sc.Name)
		}
		for _, f := range findings {
			problems++
			fmt.Fprintf(w, "stream %s: %s %s: %s\n", sc.Name, f.Check, f.Object, f.Problem)
			if f.Fix != "" {
				fmt.Fprintf(w, "    fix: %s\n", f.Fix)
			}
		}
	}
	if problems > 0 {
		return fmt.Errorf("%d problems found", problems)
	}
	return nil
}
