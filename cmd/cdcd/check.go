package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/pipeline"
)

// checkOnline prints what starting each stream would find, one line per
// prerequisite with what fixes it. It changes nothing.
func checkOnline(ctx context.Context, cfg *config.Config, w io.Writer) error {
	results, err := pipeline.Check(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		fmt.Fprintln(w, r)
		if r.Err != nil {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d checks failed", failed, len(results))
	}
	return nil
}
