package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/cdcd-dev/cdcd/capture/pgauth"
	"github.com/cdcd-dev/cdcd/config"
)

// checkTimeout bounds CheckSource: a source that does not answer in this
// long is a finding of its own.
const checkTimeout = 30 * time.Second

// CheckSource connects to a stream's source as cdcd would and returns each
// missing prerequisite (server settings, the source role's attributes and
// grants) with the SQL that fixes it. It changes nothing.
func CheckSource(ctx context.Context, cl *config.Cluster, sc *config.Stream, auth *pgauth.Provider) ([]pgauth.Finding, error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	conn, err := ConnectSource(ctx, cl, auth)
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
