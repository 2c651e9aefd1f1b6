package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// TestSmoke runs the harness small, as CI can: a mixed drain over two
// tables, one offered load, and a transaction several times the smallest
// memory budget, which must spill and arrive row for row exactly once.
// Nothing here is timed: the figures are the command's business.
func TestSmoke(t *testing.T) {
	env := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	o, err := parseOptions([]string{"-only", "drain,latency,bigtxn", "-dsn", env.PGDSN, "-pg-bin", env.PGBin, "-pg-socket", env.PGSocket,
		"-drain", "3000", "-tables", "2", "-txn", "40", "-updates", "0.25", "-deletes", "0.1",
		"-rates", "200", "-latency-duration", "2s", "-latency-warmup", "0s", "-clients", "2",
		"-big", "6MB,2MB", "-big-row", "300", "-budget", "1MiB", "-queue", "1MiB"})
	if err != nil {
		t.Fatal(err)
	}
	o.expectSpill = true
	rep, err := run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Drains) != 1 || rep.Drains[0].Cdcd.Records != 3000 || rep.Drains[0].WALBytes <= 0 {
		t.Errorf("drains: %+v, want one of 3000 records", rep.Drains)
	}
	if len(rep.Latency) != 1 || rep.Latency[0].Samples == 0 {
		t.Errorf("latency: %+v, want samples at one load", rep.Latency)
	}
	if len(rep.BigTxns) != 2 || rep.BigTxns[0].Cdcd.Records != rep.BigTxns[0].Rows || rep.BigTxns[1].Cdcd.Records != rep.BigTxns[1].Rows {
		t.Errorf("large transactions: %+v, want two, each with every row", rep.BigTxns)
	}
	dir := t.TempDir()
	var out strings.Builder
	if err := publish(rep, dir, &out); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "e2e-*.json"))
	if len(files) != 1 || !strings.Contains(out.String(), "results: "+files[0]) {
		t.Fatalf("JSON files %v; output:\n%s", files, out.String())
	}
	b, _ := os.ReadFile(files[0])
	var back report
	if err := json.Unmarshal(b, &back); err != nil || len(back.BigTxns) != 2 || len(back.Drains) != 1 {
		t.Errorf("JSON does not read back: %v\n%s", err, b)
	}
}
