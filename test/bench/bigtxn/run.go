package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/test/kinesisfake"
)

// bench is one run: the steps share what they set up, and undo runs the
// clean-ups in reverse order.
type bench struct {
	o           options
	work        string
	db          *pgx.Conn
	name, table string
	rows        int64
	rc          *rowCheck
	fk          *kinesisfake.Server
	listen      string
	logf        *os.File
	pid         int
	exited      chan error
	undo        []func()
}

// result is what a run measured.
type result struct {
	start, committed, done time.Time
	walBytes               int64
	idle, rss, hwm         int64
	spilled                string
}

func run(ctx context.Context, o options) error {
	b := &bench{o: o}
	defer func() {
		for i := len(b.undo) - 1; i >= 0; i-- {
			b.undo[i]()
		}
	}()
	for _, step := range []func(context.Context) error{b.prepareWork, b.prepareSource, b.startDaemon} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	res, err := b.measure(ctx)
	if err != nil {
		return err
	}
	return b.report(res)
}

// prepareWork creates the work directory and builds cdcd unless -cdcd names
// a binary.
func (b *bench) prepareWork(ctx context.Context) error {
	work, err := os.MkdirTemp("", "cdcd-bigtxn-")
	if err != nil {
		return err
	}
	b.work = work
	if b.o.keep {
		fmt.Println("work directory:", work)
	} else {
		b.undo = append(b.undo, func() { os.RemoveAll(work) })
	}
	if b.o.bin != "" {
		return nil
	}
	b.o.bin = filepath.Join(work, "cdcd")
	build := exec.CommandContext(ctx, "go", "build", "-o", b.o.bin, "github.com/cdcd-dev/cdcd/cmd/cdcd")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build cdcd (run inside the repository or pass -cdcd): %w", err)
	}
	return nil
}

// prepareSource creates the table, and the fake Kinesis endpoint that checks
// every row arrives once.
func (b *bench) prepareSource(ctx context.Context) error {
	db, err := pgx.Connect(ctx, b.o.dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	b.db = db
	b.undo = append(b.undo, func() { db.Close(context.WithoutCancel(ctx)) })
	b.name = fmt.Sprintf("bigtxn_%d", os.Getpid())
	b.table = "public." + b.name
	b.undo = append(b.undo, func() {
		c := context.WithoutCancel(ctx)
		_, _ = db.Exec(c, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, "cdcd_"+b.name)
		_, _ = db.Exec(c, "DROP PUBLICATION IF EXISTS cdcd_"+b.name)
		_, _ = db.Exec(c, "DROP TABLE IF EXISTS "+b.table)
	})
	if _, err := db.Exec(ctx, "CREATE TABLE "+b.table+" (id bigint PRIMARY KEY, payload text)"); err != nil {
		return err
	}
	// Row data: 8 bytes of id and the payload, which is what the WAL
	// carries of each row, give or take headers.
	b.rows = max(b.o.size/(8+b.o.row), 1)
	b.rc = newRowCheck(b.rows)
	b.fk = kinesisfake.Start(kinesisfake.Options{Stream: b.name, Shards: 4, OnEntry: func(e kinesisfake.Entry) { b.rc.check(e.Data) }})
	b.undo = append(b.undo, b.fk.Close)
	return nil
}

// config writes the daemon's configuration; the password goes to the
// environment, never to the file.
func (b *bench) config() (path, password string, err error) {
	u, err := url.Parse(b.o.dsn)
	if err != nil {
		return "", "", err
	}
	password, _ = u.User.Password()
	u.User = url.User(u.User.Username())
	if b.listen, err = freeAddr(); err != nil {
		return "", "", err
	}
	path = filepath.Join(b.work, "cdcd.toml")
	text := fmt.Sprintf(`state_dir = %q
listen = %q
[log]
level = "info"
[aws]
region = "us-east-1"
# The stand-ins' account; without it cdcd would ask STS.
account = "000000000000"
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
`, filepath.Join(b.work, "state"), b.listen, b.fk.URL(), u.String(), b.name, b.table, b.name, b.o.queue, b.o.budget)
	return path, password, os.WriteFile(path, []byte(text), 0o600)
}

// startDaemon runs cdcd and waits until it streams from its slot.
func (b *bench) startDaemon(ctx context.Context) error {
	config, password, err := b.config()
	if err != nil {
		return err
	}
	if b.logf, err = os.Create(filepath.Join(b.work, "cdcd.log")); err != nil {
		return err
	}
	b.undo = append(b.undo, func() { b.logf.Close() })
	cmd := exec.Command(b.o.bin, "run", "--config", config)
	cmd.Stdout, cmd.Stderr = b.logf, b.logf
	cmd.Env = append(os.Environ(), "CDCD_BENCH_PG_PASSWORD="+password, "AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench",
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true")
	if err := cmd.Start(); err != nil {
		return err
	}
	b.pid, b.exited = cmd.Process.Pid, make(chan error, 1)
	go func() { b.exited <- cmd.Wait() }()
	b.undo = append(b.undo, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-b.exited
		}
	})
	err = waitFor(ctx, b.exited, 60*time.Second, "the daemon to stream from its slot", func() bool {
		var active bool
		err := b.db.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, "cdcd_"+b.name).Scan(&active)
		return err == nil && active
	})
	if err != nil {
		return fmt.Errorf("%w (log: %s)", err, b.logf.Name())
	}
	return nil
}

// measure inserts the transaction and waits for every record.
func (b *bench) measure(ctx context.Context) (result, error) {
	var res result
	res.idle, _ = memStatus(b.pid)
	if b.o.timeline > 0 {
		stop := make(chan struct{})
		b.undo = append(b.undo, func() { close(stop) })
		go timeline(b.pid, b.o.timeline, stop)
	}
	walStart, err := b.walPosition(ctx)
	if err != nil {
		return res, err
	}
	fmt.Printf("inserting %d rows of %d payload bytes (%s of row data) in one transaction; memory_budget %s, queue_bytes %s\n",
		b.rows, b.o.row, human(b.rows*(8+b.o.row)), human(b.o.budget), human(b.o.queue))
	res.start = time.Now()
	// md5 text is 32 characters; a prefix of repeats gives incompressible-ish
	// payloads of the asked length.
	reps := b.o.row/32 + 1
	if _, err := b.db.Exec(ctx, fmt.Sprintf(`INSERT INTO %s SELECT g, left(repeat(md5(g::text), %d), %d) FROM generate_series(1, %d) g`,
		b.table, reps, b.o.row, b.rows)); err != nil {
		return res, err
	}
	res.committed = time.Now()
	walEnd, err := b.walPosition(ctx)
	if err != nil {
		return res, err
	}
	res.walBytes = walEnd - walStart
	fmt.Printf("committed after %s (%s of WAL); waiting for the records\n", res.committed.Sub(res.start).Round(time.Millisecond), human(res.walBytes))
	if err := waitFor(ctx, b.exited, b.o.timeout, "every record", func() bool { return b.fk.Records() >= b.rows }); err != nil {
		return res, fmt.Errorf("%w: %d of %d records (log: %s)", err, b.fk.Records(), b.rows, b.logf.Name())
	}
	res.done = b.fk.Last()
	res.rss, res.hwm = memStatus(b.pid)
	res.spilled = scrape(b.listen, "cdcd_capture_spilled_transactions_total")
	return res, nil
}

func (b *bench) walPosition(ctx context.Context) (int64, error) {
	var lsn int64
	err := b.db.QueryRow(ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint").Scan(&lsn)
	return lsn, err
}

// report prints the figures and fails the run on a wrong record, a
// transaction that should have spilled and did not, or a peak over -max-rss.
func (b *bench) report(res result) error {
	missing, dups, bad := b.rc.missing()
	total := res.done.Sub(res.start)
	data := b.rows * (8 + b.o.row)
	fmt.Printf("rows %d, records %d (%s of record data) in %d PutRecords calls; missing %d, duplicates %d, foreign %d\n",
		b.rows, b.fk.Records(), human(b.fk.Bytes()), b.fk.Calls(), missing, dups, bad)
	fmt.Printf("spilled transactions (cdcd_capture_spilled_transactions_total): %s\n", res.spilled)
	fmt.Printf("time: insert+commit %s, drain after commit %s, total %s\n",
		res.committed.Sub(res.start).Round(time.Millisecond), res.done.Sub(res.committed).Round(time.Millisecond), total.Round(time.Millisecond))
	fmt.Printf("throughput: %.1f MB/s of row data, %.0f rows/s (total time)\n",
		float64(data)/1e6/total.Seconds(), float64(b.rows)/total.Seconds())
	fmt.Printf("daemon memory: idle RSS %s; peak RSS (VmHWM) %s; RSS at the end %s\n", human(res.idle), human(res.hwm), human(res.rss))
	switch {
	case missing != 0 || dups != 0 || bad != 0:
		return fmt.Errorf("records wrong: %d missing, %d duplicated, %d not rows", missing, dups, bad)
	case b.o.expectSpill && res.spilled != "1":
		return fmt.Errorf("the transaction did not spill (cdcd_capture_spilled_transactions_total %s)", res.spilled)
	case b.o.maxRSS > 0 && res.hwm > b.o.maxRSS:
		return fmt.Errorf("peak RSS %s is above -max-rss %s", human(res.hwm), human(b.o.maxRSS))
	}
	return nil
}
