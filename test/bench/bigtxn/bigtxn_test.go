package main

import (
	"context"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// TestBigTxnSpills runs the benchmark small, as CI can: a transaction
// several times the smallest memory budget goes through the daemon, spills,
// and every row arrives exactly once. Memory is not asserted here (see
// -max-rss); run the command itself for the numbers.
func TestBigTxnSpills(t *testing.T) {
	env := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := run(ctx, options{
		size: 6 << 20, row: 300, budget: 1 << 20, queue: 1 << 20,
		dsn: env.PGDSN, timeout: 4 * time.Minute, expectSpill: true,
	})
	if err != nil {
		t.Fatal(err)
	}
}
