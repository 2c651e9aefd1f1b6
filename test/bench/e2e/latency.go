package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/cdcd-dev/cdcd/test/kinesisfake"
)

// latencyResult is one offered load of the latency phase.
type latencyResult struct {
	Offered   int64   `json:"offered_per_second"`
	Committed float64 `json:"committed_per_second"` // what pgbench achieved
	LagMs     float64 `json:"pgbench_schedule_lag_ms"`
	Samples   int     `json:"samples"`
	P50Ms     float64 `json:"p50_ms"`
	P95Ms     float64 `json:"p95_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	// CPUPerChangeUs is cdcd's CPU time over the load, per change: single-row
	// transactions cost more than the drains' 100-row ones.
	CPUPerChangeUs float64 `json:"cdcd_cpu_us_per_change"`
}

// latency runs one cdcd on a table that pgbench fills at each offered load
// in turn, with single-row transactions committed synchronously: a
// walsender sends only flushed WAL, and with synchronous_commit off the
// WAL writer's delay (200 ms) would dominate every figure.
func (b *bench) latency(ctx context.Context, rep *report) error {
	lat := &latencies{}
	spec := streamSpec{name: "latency", tables: []string{"lat"}}
	spec.fake = kinesisfake.Start(kinesisfake.Options{Stream: spec.name, Shards: b.o.shards, OnRaw: lat.onRaw})
	defer spec.fake.Close()
	defer b.dropAll(context.WithoutCancel(ctx), []string{spec.slot()}, spec.tables)
	width := b.o.shape.RowBytes - 8
	script := filepath.Join(b.work, "latency.sql")
	err := os.WriteFile(script, fmt.Appendf(nil, "INSERT INTO lat (payload) VALUES (%s);\n", payload("random() * 1e9", width)), 0o644)
	if err != nil {
		return err
	}
	if _, err := b.db.Exec(ctx, "CREATE TABLE lat (id bigserial PRIMARY KEY, payload text); ALTER TABLE lat REPLICA IDENTITY FULL"); err != nil {
		return err
	}
	d, err := b.startCdcd(spec, "latency")
	if err != nil {
		return err
	}
	defer d.stop()
	if err := b.waitStreaming(ctx, d, spec.slot()); err != nil {
		return err
	}
	for _, r := range b.o.rates {
		res, err := b.latencyAt(ctx, spec.fake, lat, r, script, d)
		if err != nil {
			return fmt.Errorf("%s/s: %w", count(r), err)
		}
		rep.Latency = append(rep.Latency, res)
	}
	return d.stop()
}

// latencyAt offers rate transactions a second for -latency-duration and
// takes the percentiles of the records committed after the warm-up.
func (b *bench) latencyAt(ctx context.Context, fake *kinesisfake.Server, lat *latencies, rate int64, script string, d *daemon) (latencyResult, error) {
	res := latencyResult{Offered: rate}
	secs := int64(math.Ceil(b.o.latDur.Seconds()))
	before := fake.Records()
	cpu0, err := readUsage(d.pid())
	if err != nil {
		return res, err
	}
	from := time.Now().Add(b.o.warmup)
	fmt.Fprintf(os.Stderr, "e2e: offering %d changes/s for %ds\n", rate, secs)
	pb, err := b.pgbench(ctx, script, rate, secs)
	if err != nil {
		return res, err
	}
	to := time.Now()
	res.Committed, res.LagMs = pb.tps, pb.lagMs
	if err := waitRecords(ctx, fake, before+pb.processed, time.Minute, d); err != nil {
		return res, err
	}
	cpu1, err := readUsage(d.pid())
	if err != nil {
		return res, err
	}
	res.CPUPerChangeUs = (cpu1.cpu - cpu0.cpu).Seconds() / float64(max(pb.processed, 1)) * 1e6
	samples, bad := lat.window(from.UnixNano(), to.UnixNano())
	if bad > 0 {
		return res, fmt.Errorf("%d records without a source.ts_ns", bad)
	}
	s := summarize(samples)
	ms := func(x time.Duration) float64 { return float64(x) / 1e6 }
	res.Samples, res.P50Ms, res.P95Ms, res.P99Ms, res.MaxMs = s.N, ms(s.P50), ms(s.P95), ms(s.P99), ms(s.Max)
	return res, nil
}

// pgbenchRun is what pgbench reported.
type pgbenchRun struct {
	processed int64
	tps       float64 // committed a second, once connected
	lagMs     float64
}

func (b *bench) pgbench(ctx context.Context, script string, rate, secs int64) (pgbenchRun, error) {
	u, err := url.Parse(b.dsn)
	if err != nil {
		return pgbenchRun{}, err
	}
	host := u.Hostname()
	if b.o.pgSocket != "" {
		host = b.o.pgSocket
	}
	cmd := exec.CommandContext(ctx, filepath.Join(b.o.pgBin, "pgbench"), "--no-vacuum", "-f", script,
		"-R", strconv.FormatInt(rate, 10), "-T", strconv.FormatInt(secs, 10),
		"-c", strconv.Itoa(b.o.clients), "-j", strconv.Itoa(min(b.o.clients, 2)))
	cmd.Env = append(os.Environ(), "PGHOST="+host, "PGPORT="+u.Port(), "PGUSER="+u.User.Username(),
		"PGPASSWORD="+b.password, "PGDATABASE="+b.dbName, "PGOPTIONS=-c synchronous_commit=on")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return pgbenchRun{}, fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	return parsePgbench(string(out))
}

var (
	pgbenchProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	pgbenchLag       = regexp.MustCompile(`(?m)^rate limit schedule lag: avg ([\d.]+)`)
	pgbenchFailed    = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
	pgbenchTPS       = regexp.MustCompile(`(?m)^tps = ([\d.]+) \(without initial connection time\)`)
)

// parsePgbench reads the transactions pgbench committed, their rate once
// its clients had connected (-T counts the connecting too) and its average
// lag behind the schedule of -R from its report.
func parsePgbench(out string) (pgbenchRun, error) {
	m := pgbenchProcessed.FindStringSubmatch(out)
	if m == nil {
		return pgbenchRun{}, fmt.Errorf("pgbench reported no processed transactions:\n%s", out)
	}
	if f := pgbenchFailed.FindStringSubmatch(out); f != nil && f[1] != "0" {
		return pgbenchRun{}, fmt.Errorf("pgbench: %s transactions failed:\n%s", f[1], out)
	}
	var r pgbenchRun
	r.processed, _ = strconv.ParseInt(m[1], 10, 64)
	if m := pgbenchTPS.FindStringSubmatch(out); m != nil {
		r.tps, _ = strconv.ParseFloat(m[1], 64)
	}
	if l := pgbenchLag.FindStringSubmatch(out); l != nil {
		r.lagMs, _ = strconv.ParseFloat(l[1], 64)
	}
	return r, nil
}

// latencies collects, for every record the fake accepts, its receipt time
// less its source.ts_ns (the commit time), keyed by that commit time.
type latencies struct {
	mu      sync.Mutex
	buf     []byte
	samples []latencySample
	bad     int
}

type latencySample struct {
	source int64
	lat    time.Duration
}

// onRaw is the fake's OnRaw hook.
func (l *latencies) onRaw(at time.Time, b64 []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = l.buf[:0]
	var err error
	if l.buf, err = base64.StdEncoding.AppendDecode(l.buf, b64); err != nil {
		l.bad++
		return
	}
	ts, ok := sourceTsNs(l.buf)
	if !ok {
		l.bad++
		return
	}
	l.samples = append(l.samples, latencySample{ts, time.Duration(at.UnixNano() - ts)})
}

// window takes the latencies of the records committed in [from, to] (Unix
// nanoseconds) and reports how many records were unreadable.
func (l *latencies) window(from, to int64) ([]time.Duration, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Duration
	for _, s := range l.samples {
		if s.source >= from && s.source <= to {
			out = append(out, s.lat)
		}
	}
	return out, l.bad
}

var (
	sourceObject = []byte(`"source":{`)
	tsNsField    = []byte(`"ts_ns":`)
)

// sourceTsNs finds source.ts_ns in a record (docs/records.md#envelope).
// The source object follows the row images, and a row value that spells
// `"source":{` is a JSON string with its quotes escaped, so the last
// occurrence is the object.
func sourceTsNs(record []byte) (int64, bool) {
	i := bytes.LastIndex(record, sourceObject)
	if i < 0 {
		return 0, false
	}
	rest := record[i:]
	j := bytes.Index(rest, tsNsField)
	if j < 0 {
		return 0, false
	}
	rest = rest[j+len(tsNsField):]
	end := bytes.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end <= 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return n, err == nil
}
