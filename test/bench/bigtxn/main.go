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
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/test/kinesisfake"
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

func run(ctx context.Context, o options) error {
	work, err := os.MkdirTemp("", "cdcd-bigtxn-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	if o.bin == "" {
		o.bin = filepath.Join(work, "cdcd")
		build := exec.CommandContext(ctx, "go", "build", "-o", o.bin, "github.com/cdcd-dev/cdcd/cmd/cdcd")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build cdcd (run inside the repository or pass -cdcd): %w", err)
		}
	}

	db, err := pgx.Connect(ctx, o.dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer db.Close(context.WithoutCancel(ctx))
	name := fmt.Sprintf("bigtxn_%d", os.Getpid())
	table := "public." + name
	cleanup := func() {
		c := context.WithoutCancel(ctx)
		_, _ = db.Exec(c, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, "cdcd_"+name)
		_, _ = db.Exec(c, "DROP PUBLICATION IF EXISTS cdcd_"+name)
		_, _ = db.Exec(c, "DROP TABLE IF EXISTS "+table)
	}
	defer cleanup()
	if _, err := db.Exec(ctx, "CREATE TABLE "+table+" (id bigint PRIMARY KEY, payload text)"); err != nil {
		return err
	}
	// Row data: 8 bytes of id and the payload, which is what the WAL
	// carries of each row, give or take headers.
	rows := max(o.size/(8+o.row), 1)

	rc := newRowCheck(rows)
	fk := kinesisfake.Start(kinesisfake.Options{Stream: name, Shards: 4, OnEntry: func(e kinesisfake.Entry) { rc.check(e.Data) }})
	defer fk.Close()

	u, err := url.Parse(o.dsn)
	if err != nil {
		return err
	}
	password, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	listen, err := freeAddr()
	if err != nil {
		return err
	}
	config := filepath.Join(work, "cdcd.toml")
	text := fmt.Sprintf(`state_dir = %q
listen = %q
[log]
level = "info"
[aws]
region = "us-east-1"
kinesis_endpoint = %q
[[cluster]]
name = "src"
dsn = %q
password_env = "CDCD_BENCH_PG_PASSWORD"
[[stream]]
name = %q
cluster = "src"
tables = [%q]
ordering = "UNORDERED"
set_replica_identity_full = true
[stream.target]
kinesis_stream = %q
[stream.delivery]
status_interval = "1s"
queue_bytes = %d
memory_budget = %d
`, filepath.Join(work, "state"), listen, fk.URL(), u.String(), name, table, name, o.queue, o.budget)
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(work, "cdcd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(o.bin, "run", "--config", config)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "CDCD_BENCH_PG_PASSWORD="+password, "AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench",
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true")
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	if err := waitFor(ctx, exited, 60*time.Second, "the daemon to stream from its slot", func() bool {
		var active bool
		err := db.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, "cdcd_"+name).Scan(&active)
		return err == nil && active
	}); err != nil {
		return fmt.Errorf("%w (log: %s)", err, logf.Name())
	}
	idle, _ := memStatus(pid)
	if o.timeline > 0 {
		stop := make(chan struct{})
		defer close(stop)
		go timeline(pid, o.timeline, stop)
	}

	var walStart, walEnd uint64
	if err := db.QueryRow(ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint").Scan(&walStart); err != nil {
		return err
	}
	fmt.Printf("inserting %d rows of %d payload bytes (%s of row data) in one transaction; memory_budget %s, queue_bytes %s\n",
		rows, o.row, human(rows*(8+o.row)), human(o.budget), human(o.queue))
	start := time.Now()
	// md5 text is 32 characters; a prefix of repeats gives incompressible-ish
	// payloads of the asked length.
	reps := o.row/32 + 1
	if _, err := db.Exec(ctx, fmt.Sprintf(`INSERT INTO %s SELECT g, left(repeat(md5(g::text), %d), %d) FROM generate_series(1, %d) g`,
		table, reps, o.row, rows)); err != nil {
		return err
	}
	committed := time.Now()
	if err := db.QueryRow(ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint").Scan(&walEnd); err != nil {
		return err
	}
	fmt.Printf("committed after %s (%s of WAL); waiting for the records\n", committed.Sub(start).Round(time.Millisecond), human(int64(walEnd-walStart)))

	peakDuring := int64(0)
	if err := waitFor(ctx, exited, o.timeout, "every record", func() bool {
		if _, hwm := memStatus(pid); hwm > peakDuring {
			peakDuring = hwm
		}
		return fk.Records() >= rows
	}); err != nil {
		return fmt.Errorf("%w: %d of %d records (log: %s)", err, fk.Records(), rows, logf.Name())
	}
	done := fk.Last()
	rss, hwm := memStatus(pid)
	spilled := scrape(listen, "cdcd_capture_spilled_transactions_total")
	missing, dups, bad := rc.missing()

	total := done.Sub(start)
	data := rows * (8 + o.row)
	fmt.Printf("rows %d, records %d (%s of record data) in %d PutRecords calls; missing %d, duplicates %d, foreign %d\n",
		rows, fk.Records(), human(fk.Bytes()), fk.Calls(), missing, dups, bad)
	fmt.Printf("spilled transactions (cdcd_capture_spilled_transactions_total): %s\n", spilled)
	fmt.Printf("time: insert+commit %s, drain after commit %s, total %s\n",
		committed.Sub(start).Round(time.Millisecond), done.Sub(committed).Round(time.Millisecond), total.Round(time.Millisecond))
	fmt.Printf("throughput: %.1f MB/s of row data, %.0f rows/s (total time)\n",
		float64(data)/1e6/total.Seconds(), float64(rows)/total.Seconds())
	fmt.Printf("daemon memory: idle RSS %s; peak RSS (VmHWM) %s; RSS at the end %s\n", human(idle), human(hwm), human(rss))
	switch {
	case missing != 0 || dups != 0 || bad != 0:
		return fmt.Errorf("records wrong: %d missing, %d duplicated, %d not rows", missing, dups, bad)
	case o.expectSpill && spilled != "1":
		return fmt.Errorf("the transaction did not spill (cdcd_capture_spilled_transactions_total %s)", spilled)
	case o.maxRSS > 0 && hwm > o.maxRSS:
		return fmt.Errorf("peak RSS %s is above -max-rss %s", human(hwm), human(o.maxRSS))
	}
	return nil
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
