package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"log/slog"

	"github.com/cdcd-dev/cdcd/capture/pgauth"
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
		findings, err := streamFindings(ctx, cl, sc, auth)
		if err != nil {
			fmt.Fprintf(w, "stream %s: %v\n", sc.Name, err)
			problems++
			continue
		}
		if len(findings) == 0 {
			fmt.Fprintf(w, "stream %s: source ready\n", sc.Name)
			continue
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

func streamFindings(ctx context.Context, cl *config.Cluster, sc *config.Stream, auth *pgauth.Provider) ([]pgauth.Finding, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pipeline.ConnectSource(ctx, cl, auth)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var findings []pgauth.Finding
	var walLevel string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		return nil, err
	}
	if walLevel != "logical" {
		findings = append(findings, pgauth.Finding{Check: "wal_level", Object: "server",
			Problem: fmt.Sprintf("wal_level is %s; logical replication needs logical (rds.logical_replication = 1 on RDS), then a restart", walLevel),
			Fix:     "ALTER SYSTEM SET wal_level = logical;"})
	}
	return append(findings, pgauth.CheckGrants(ctx, conn, sc.Tables, sc.Publication)...), nil
}
