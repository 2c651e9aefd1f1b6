// Command bigtxn measures one large transaction through the daemon: the
// real capture → pipeline → sink path of `cdcd run`, against the local
// PostgreSQL and an in-process test/kinesisfake endpoint, and reports the
// daemon's peak RSS (VmHWM of /proc/<pid>/status) and throughput.
//
//	bash test/infra/up.sh && . .cache/env
//	go run ./test/bench/bigtxn                         # 32 MB, quick
//	go run ./test/bench/bigtxn -size 200MB
//	go run ./test/bench/bigtxn -size 2GB -max-rss 300MB
//
// The transaction is one INSERT … SELECT of -size bytes of row data (ids and
// payloads of -row bytes) into a fresh table; PostgreSQL streams it while in
// progress (protocol 2), the daemon spills it past -budget
// ([stream.delivery] memory_budget), compacts it externally and sends every
// row to the fake endpoint, where each must arrive exactly once.
// Times: "insert" is the INSERT and COMMIT, "drain" from the commit to the
// last record accepted, "total" the two; throughput is row data over total.
// -max-rss makes the run fail when the peak is higher: memory is asserted
// here only, never in a unit test.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

type options struct {
	size, row, budget, queue, maxRSS int64
	bin, dsn                         string
	timeout                          time.Duration
	keep                             bool
	timeline                         time.Duration
	// expectSpill fails the run unless the transaction spilled.
	expectSpill bool
}

func main() {
	var o options
	var size, budget, queue, maxRSS string
	flag.StringVar(&size, "size", "32MB", "bytes of row data in the transaction (KB, MB, GB suffixes)")
	flag.Int64Var(&o.row, "row", 1000, "payload bytes per row")
	flag.StringVar(&budget, "budget", "64MB", "the stream's memory_budget")
	flag.StringVar(&queue, "queue", "64MB", "the stream's queue_bytes")
	flag.StringVar(&maxRSS, "max-rss", "", "fail when the daemon's peak RSS is above this")
	flag.StringVar(&o.bin, "cdcd", "", "cdcd binary (default: go build ./cmd/cdcd)")
	flag.StringVar(&o.dsn, "dsn", os.Getenv("CDCD_TEST_PG_DSN"), "PostgreSQL DSN with a password (default $CDCD_TEST_PG_DSN)")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (config, logs, state)")
	flag.DurationVar(&o.timeline, "timeline", 0, "print the daemon's peak RSS over each interval of this length")
	flag.BoolVar(&o.expectSpill, "expect-spill", false, "fail unless the transaction spilled to disk")
	flag.Parse()
	var err error
	for _, p := range []struct {
		s   string
		dst *int64
	}{{size, &o.size}, {budget, &o.budget}, {queue, &o.queue}, {maxRSS, &o.maxRSS}} {
		if *p.dst, err = parseBytes(p.s); err != nil {
			fatal(err)
		}
	}
	if o.dsn == "" {
		fatal(errors.New("no DSN: source .cache/env (bash test/infra/up.sh writes it) or pass -dsn"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fatal(err)
	}
}

// memStatus reads VmRSS and VmHWM (bytes) of a process.
func memStatus(pid int) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = n << 10
		case "VmHWM:":
			hwm = n << 10
		}
	}
	return rss, hwm
}

// timeline prints the highest RSS seen in each interval, sampled every
// 100 ms, until stop.
func timeline(pid int, every time.Duration, stop <-chan struct{}) {
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var peak int64
	next := start.Add(every)
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			if rss, _ := memStatus(pid); rss > peak {
				peak = rss
			}
			if now.After(next) {
				fmt.Printf("  t=%6.1fs  rss %s\n", now.Sub(start).Seconds(), human(peak))
				peak, next = 0, next.Add(every)
			}
		}
	}
}

// scrape returns a metric's value from the daemon's /metrics.
func scrape(listen, metric string) string {
	resp, err := http.Get("http://" + listen + "/metrics")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(sb.String(), "\n") {
		if strings.HasPrefix(line, metric+"{") || strings.HasPrefix(line, metric+" ") {
			return line[strings.LastIndexByte(line, ' ')+1:]
		}
	}
	return "?"
}

// waitFor polls cond every 100 ms until it holds, the daemon exits, or
// limit or ctx passes.
func waitFor(ctx context.Context, exited <-chan error, limit time.Duration, what string, cond func() bool) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case err := <-exited:
			return fmt.Errorf("the daemon exited (%v) while waiting for %s", err, what)
		case <-deadline.C:
			return fmt.Errorf("timed out waiting for %s", what)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// parseBytes reads "2GB", "200MB", "64KB" (powers of 1000 for GB/MB/KB,
// of 1024 for GiB/MiB/KiB) or a plain number; "" is 0.
func parseBytes(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("size %q: want a number and a unit like 200MB", s)
			}
			return int64(n * float64(u.mult)), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number and a unit like 200MB", s)
	}
	return n, nil
}

func human(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bigtxn:", err)
	os.Exit(1)
}
