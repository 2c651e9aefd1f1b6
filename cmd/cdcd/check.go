package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/capture/pgauth"
)

// checkOnline connects to every stream's source as cdcd would and reports
// each missing prerequisite with the SQL that fixes it. It changes nothing.
func checkOnline(ctx context.Context, cfg *Config, w io.Writer) error {
	problems := 0
	for i := range cfg.Streams {
		sc := &cfg.Streams[i]
		cl := cfg.cluster(sc.Cluster)
		findings, err := streamFindings(ctx, cl, sc)
		if err != nil {
			cause, msg := pgauth.Describe(err)
			fmt.Fprintf(w, "stream %s: cannot reach cluster %s (%s): %s\n", sc.Name, cl.Name, cause, msg)
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

func streamFindings(ctx context.Context, cl *Cluster, sc *Stream) ([]pgauth.Finding, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pcfg, err := pgx.ParseConfig(cl.DSN)
	if err != nil {
		return nil, fmt.Errorf("parse dsn: %w", err)
	}
	if pw := passwordSource(cl); pw != nil {
		if pcfg.Password, err = pw(ctx); err != nil {
			return nil, err
		}
	}
	conn, err := pgx.ConnectConfig(ctx, pcfg)
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
