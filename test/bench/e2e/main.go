// Command e2e is cdcd's end-to-end benchmark (`make bench-e2e`; method,
// targets and results in BENCHMARKS.md). Against the local PostgreSQL of
// test/infra and an in-process test/kinesisfake endpoint that accepts
// everything at once, it measures in one run:
//
//   - drain: a backlog of changes (-drain sizes, shaped by -txn, -row,
//     -tables, -updates, -deletes) read from a slot by `cdcd run` and, on
//     the same WAL, by pg_recvlogical to /dev/null: changes/s, MB/s, the
//     ratio, cdcd's CPU per change and peak RSS;
//   - latency: commit→acknowledgement at steady offered loads (-rates,
//     pgbench single-row transactions under synchronous_commit=on), the
//     endpoint's receipt time minus each record's source.ts_ns;
//   - bigtxn: one large transaction of each -big size through the spill path, against
//     pg_recvlogical with protocol 2 and streaming as cdcd reads;
//   - encode: `go test -bench BenchmarkEncode10Columns ./record`.
//
// It prints a table, the targets met or missed, and writes the same as
// JSON under -out. Run it with the servers up:
//
//	make bench-e2e                                   # the quick run
//	make bench-e2e BENCH_E2E_FLAGS='-big 2GB'        # only the 2 GB transaction
//	bash test/infra/up.sh && . .cache/env && go run ./test/bench/e2e -only drain -drain 1M -profile .cache/bench/prof
//
// -profile writes CPU and heap profiles of every cdcd run (cdcd run
// --cpuprofile/--memprofile) for go tool pprof.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// options are the command line.
type options struct {
	phases map[string]bool

	drains      []int64 // changes per drain
	shape       workload
	shards      int
	rates       []int64 // offered loads, changes/s
	latDur      time.Duration
	warmup      time.Duration
	clients     int
	bigSizes    []int64
	bigRow      int64
	bigUpdates  float64
	budget      int64    // the stream's memory_budget, 0: cdcd's default
	queue       int64    // queue_bytes, likewise
	delivery    []string // more [stream.delivery] lines
	expectSpill bool     // fail unless the large transaction spilled (tests)

	bin, dsn, pgBin, pgSocket string
	out, profile, work        string
	keep                      bool
	timeout                   time.Duration
}

var allPhases = []string{"encode", "drain", "latency", "bigtxn"}

func main() {
	o, err := parseOptions(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	rep, err := run(ctx, o)
	if err != nil {
		fatal(err)
	}
	if err := publish(rep, o.out, os.Stdout); err != nil {
		fatal(err)
	}
}

func parseOptions(args []string) (options, error) {
	fs := flag.NewFlagSet("e2e", flag.ContinueOnError)
	o := options{phases: map[string]bool{}, drains: []int64{100_000, 1_000_000}, rates: []int64{5_000, 10_000, 15_000},
		bigSizes: []int64{512e6, 2e9}, bigRow: 1000}
	for _, p := range allPhases {
		o.phases[p] = true
	}
	fs.Func("only", "phases to run, some of "+strings.Join(allPhases, ",")+" (default all)", o.setPhases)
	fs.Func("drain", "changes in each drain (default 100k,1M)", countsFlag(&o.drains))
	fs.IntVar(&o.shape.TxnRows, "txn", 100, "changes per transaction in a drain")
	fs.IntVar(&o.shape.RowBytes, "row", 100, "bytes of a row: an 8-byte id and a text payload of the rest")
	fs.IntVar(&o.shape.Tables, "tables", 1, "tables the transactions of a drain take turns on")
	fs.Float64Var(&o.shape.Updates, "updates", 0, "fraction of a drain's changes that are updates")
	fs.Float64Var(&o.shape.Deletes, "deletes", 0, "fraction of a drain's changes that are deletes")
	fs.IntVar(&o.shards, "shards", 4, "shards of the fake Kinesis stream")
	fs.Func("rates", "offered loads of the latency phase, changes/s (default 5k,10k,15k)", countsFlag(&o.rates))
	fs.DurationVar(&o.latDur, "latency-duration", 20*time.Second, "how long each offered load runs")
	fs.DurationVar(&o.warmup, "latency-warmup", 2*time.Second, "leading part of each load left out of the percentiles")
	fs.IntVar(&o.clients, "clients", 8, "pgbench clients of the latency phase")
	fs.Func("big", "bytes of row data in each large transaction, one after another: KB, MB, GB or KiB, MiB, GiB (default 512MB,2GB)", bytesListFlag(&o.bigSizes))
	fs.Func("big-row", "payload bytes per row of the large transaction (default 1000)", bytesFlag(&o.bigRow))
	fs.Float64Var(&o.bigUpdates, "big-updates", 0, "fraction of the large transaction's rows it updates after inserting them (0: INSERTs only)")
	fs.Func("budget", "the streams' memory_budget (default: cdcd's)", bytesFlag(&o.budget))
	fs.Func("queue", "the streams' queue_bytes (default: cdcd's)", bytesFlag(&o.queue))
	fs.Func("delivery", "a line for the streams' [stream.delivery], such as 'max_in_flight = 8' (repeatable)", func(s string) error {
		o.delivery = append(o.delivery, s)
		return nil
	})
	fs.StringVar(&o.bin, "cdcd", "", "cdcd binary (default: go build ./cmd/cdcd into the work directory)")
	fs.StringVar(&o.dsn, "dsn", os.Getenv(testenv.VarPGDSN), "PostgreSQL DSN of a superuser, with password (default $"+testenv.VarPGDSN+")")
	fs.StringVar(&o.pgBin, "pg-bin", os.Getenv(testenv.VarPGBin), "PostgreSQL's bin directory, for pg_recvlogical and pgbench")
	fs.StringVar(&o.pgSocket, "pg-socket", os.Getenv(testenv.VarPGSocket), "PostgreSQL's socket directory for pgbench (default: TCP)")
	fs.StringVar(&o.out, "out", ".cache/bench", "directory of the JSON results")
	fs.StringVar(&o.profile, "profile", "", "write each cdcd run's CPU and heap profiles to this directory")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, logs, state)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.dsn == "" || o.pgBin == "":
		return o, errors.New("no DSN or PostgreSQL bin directory: run under make bench-e2e, or source .cache/env (test/infra/up.sh writes it), or pass -dsn and -pg-bin")
	}
	return o, o.shape.check()
}

func (o *options) setPhases(s string) error {
	clear(o.phases)
	for p := range strings.SplitSeq(s, ",") {
		if !slices.Contains(allPhases, p) {
			return fmt.Errorf("unknown phase %q, want some of %s", p, strings.Join(allPhases, ","))
		}
		o.phases[p] = true
	}
	return nil
}

func countsFlag(dst *[]int64) func(string) error {
	return func(s string) (err error) {
		*dst, err = parseCounts(s)
		return err
	}
}

func bytesFlag(dst *int64) func(string) error {
	return func(s string) (err error) {
		*dst, err = parseBytes(s)
		return err
	}
}

func bytesListFlag(dst *[]int64) func(string) error {
	return func(s string) error {
		*dst = nil
		for f := range strings.SplitSeq(s, ",") {
			n, err := parseBytes(f)
			if err != nil {
				return err
			}
			*dst = append(*dst, n)
		}
		return nil
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "e2e:", err)
	os.Exit(1)
}
