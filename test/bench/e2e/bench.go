package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// bench is one run: the phases share its database, work directory and
// cdcd binary, and undo runs the clean-ups in reverse order.
type bench struct {
	o        options
	work     string
	db       *pgx.Conn
	dbName   string
	dsn      string // of the run's database, without the password
	password string
	undo     []func()
}

// run sets up, runs the chosen phases in order and reports.
func run(ctx context.Context, o options) (*report, error) {
	b := &bench{o: o}
	defer func() {
		for i := len(b.undo) - 1; i >= 0; i-- {
			b.undo[i]()
		}
	}()
	rep := &report{Started: time.Now().UTC(), Shards: o.shards}
	if err := b.prepare(ctx, rep); err != nil {
		return nil, err
	}
	phases := []struct {
		name string
		run  func(context.Context, *report) error
	}{{"encode", b.encode}, {"drain", b.drains}, {"latency", b.latency}, {"bigtxn", b.bigTxns}}
	for _, p := range phases {
		if !o.phases[p.name] {
			continue
		}
		fmt.Fprintf(os.Stderr, "e2e: %s (at %s)\n", p.name, time.Since(rep.Started).Round(100*time.Millisecond))
		if err := p.run(ctx, rep); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	rep.Finished = time.Now().UTC()
	rep.LoadAfter = loadAverage()
	rep.Targets = evaluate(rep)
	return rep, nil
}

// prepare makes the work directory, builds cdcd unless -cdcd names one,
// creates the run's database and notes the machine.
func (b *bench) prepare(ctx context.Context, rep *report) error {
	work, err := os.MkdirTemp("", "cdcd-e2e-")
	if err != nil {
		return err
	}
	b.work = work
	if b.o.keep {
		fmt.Fprintln(os.Stderr, "e2e: work directory", work)
	} else {
		b.undo = append(b.undo, func() { os.RemoveAll(work) })
	}
	if b.o.profile != "" {
		if err := os.MkdirAll(b.o.profile, 0o755); err != nil {
			return err
		}
	}
	if b.o.bin == "" {
		b.o.bin = filepath.Join(work, "cdcd")
		build := exec.CommandContext(ctx, "go", "build", "-o", b.o.bin, "github.com/cdcd-dev/cdcd/cmd/cdcd")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build cdcd (run inside the repository or pass -cdcd): %w", err)
		}
	}
	if err := b.createDatabase(ctx); err != nil {
		return err
	}
	rep.Machine, err = describeMachine(ctx, b.db)
	rep.Binary = b.o.bin
	return err
}

// createDatabase gives the run a database of its own, dropped with its
// slots at the end, so that nothing it leaves retains WAL.
func (b *bench) createDatabase(ctx context.Context) error {
	admin, err := pgx.Connect(ctx, b.o.dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	b.dbName = fmt.Sprintf("cdcd_bench_%d", os.Getpid())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+b.dbName); err != nil {
		return err
	}
	b.undo = append(b.undo, func() { b.dropDatabase(context.WithoutCancel(ctx)) })
	u, err := url.Parse(b.o.dsn)
	if err != nil {
		return err
	}
	u.Path = "/" + b.dbName
	b.db, err = pgx.Connect(ctx, u.String())
	if err != nil {
		return err
	}
	b.undo = append(b.undo, func() { b.db.Close(context.WithoutCancel(ctx)) })
	b.password, _ = u.User.Password()
	u.User = url.User(u.User.Username())
	b.dsn = u.String()
	return nil
}

func (b *bench) dropDatabase(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, b.o.dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: clean-up:", err)
		return
	}
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`, b.dbName)
	if err == nil {
		_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+b.dbName+" WITH (FORCE)")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: clean-up: drop database %s: %v\n", b.dbName, err)
	}
}

// walInsert is the current WAL insert position: with synchronous_commit
// off, commits return before their WAL is flushed, so this is "the end".
func (b *bench) walInsert(ctx context.Context) (int64, error) {
	var lsn int64
	err := b.db.QueryRow(ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint").Scan(&lsn)
	return lsn, err
}

// waitFlushed waits until the WAL up to lsn is flushed: a walsender sends
// only flushed WAL, and both readers of a drain must find all of it there.
func (b *bench) waitFlushed(ctx context.Context, lsn int64) error {
	return poll(ctx, 30*time.Second, 10*time.Millisecond, "the WAL to be flushed", nil, func() (bool, error) {
		var flushed int64
		err := b.db.QueryRow(ctx, "SELECT (pg_current_wal_flush_lsn() - '0/0')::bigint").Scan(&flushed)
		return flushed >= lsn, err
	})
}

// createSlots makes pgoutput slots; a slot is only consistent once the
// transactions running at its creation have ended, which here is at once.
func (b *bench) createSlots(ctx context.Context, names ...string) error {
	for _, n := range names {
		if _, err := b.db.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", n); err != nil {
			return fmt.Errorf("create slot %s: %w", n, err)
		}
	}
	return nil
}

// dropAll removes slots and tables a phase made, and checkpoints so that
// their WAL can go.
func (b *bench) dropAll(ctx context.Context, slots, tables []string) error {
	var errs []error
	for _, s := range slots {
		_, err := b.db.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, s)
		errs = append(errs, err)
	}
	if len(tables) > 0 {
		_, err := b.db.Exec(ctx, "DROP TABLE IF EXISTS "+strings.Join(tables, ", "))
		errs = append(errs, err)
	}
	_, err := b.db.Exec(ctx, "CHECKPOINT")
	return errors.Join(append(errs, err)...)
}

// backlog is WAL written while no reader ran.
type backlog struct {
	walBytes, end int64   // its size and the position after it
	seconds       float64 // how long writing it took
}

// writeBacklog publishes s's tables (already created), makes s's slot and
// a pg_recvlogical slot, runs write and waits until its WAL is flushed.
func (b *bench) writeBacklog(ctx context.Context, s streamSpec, recvSlot string, write func() error) (backlog, error) {
	var bl backlog
	if err := b.createPublication(ctx, s.publication(), s.tables); err != nil {
		return bl, err
	}
	if err := b.createSlots(ctx, s.slot(), recvSlot); err != nil {
		return bl, err
	}
	start, err := b.walInsert(ctx)
	if err != nil {
		return bl, err
	}
	t0 := time.Now()
	if err := write(); err != nil {
		return bl, err
	}
	bl.seconds = time.Since(t0).Seconds()
	if bl.end, err = b.walInsert(ctx); err != nil {
		return bl, err
	}
	bl.walBytes = bl.end - start
	fmt.Fprintf(os.Stderr, "e2e: %s of WAL in %.1fs; draining\n", human(bl.walBytes), bl.seconds)
	return bl, b.waitFlushed(ctx, bl.end)
}

// createPublication publishes tables under name before any slot reads
// them: pgoutput looks publications up as of the WAL it decodes. It is
// what cdcd makes of a publication it owns, so cdcd finds nothing to
// change at its start.
func (b *bench) createPublication(ctx context.Context, name string, tables []string) error {
	_, err := b.db.Exec(ctx, "CREATE PUBLICATION "+name+" FOR TABLE "+strings.Join(tables, ", ")+" WITH (publish_via_partition_root = true)")
	return err
}

// poll calls cond every interval until it holds, it fails, exited is
// closed, limit passes or ctx ends.
func poll(ctx context.Context, limit, interval time.Duration, what string, exited <-chan struct{}, cond func() (bool, error)) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, err := cond()
		if ok || err != nil {
			return err
		}
		select {
		case <-exited:
			return fmt.Errorf("cdcd exited while waiting for %s", what)
		case <-deadline.C:
			return fmt.Errorf("timed out after %s waiting for %s", limit, what)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}
