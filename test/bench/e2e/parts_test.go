package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // 1..100 ms, shuffled by reversal
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := summarize(d)
	if s.N != 100 || s.P50 != 50*time.Millisecond || s.P95 != 95*time.Millisecond || s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond {
		t.Errorf("1..100 ms: %+v", s)
	}
	for _, tc := range []struct {
		n, p int
		want time.Duration // of the values 1..n
	}{
		{1, 50, 1}, {1, 99, 1}, {2, 50, 1}, {2, 51, 2}, {20, 95, 19}, {21, 95, 20}, {1000, 99, 990}, {1001, 99, 991},
	} {
		var v []time.Duration
		for i := 1; i <= tc.n; i++ {
			v = append(v, time.Duration(i))
		}
		if got := percentile(v, tc.p); got != tc.want {
			t.Errorf("p%d of 1..%d = %d, want %d", tc.p, tc.n, got, tc.want)
		}
	}
	if s := summarize(nil); s != (latencyStats{}) {
		t.Errorf("no samples: %+v", s)
	}
}

func TestProcParsing(t *testing.T) {
	// A command name with spaces and parentheses, as a process may call
	// itself; utime 1234 and stime 66 ticks.
	stat := "4242 (cdcd (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 1234 66 0 0 20 0 9 0 100 123456 789 18446744073709551615"
	cpu, err := parseStatCPU(stat)
	if err != nil || cpu != 13*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 13s", cpu, err)
	}
	if _, err := parseStatCPU("4242 (cdcd) S 1 2"); err == nil {
		t.Error("a short stat line parsed")
	}
	status := "Name:\tcdcd\nVmPeak:\t  900000 kB\nVmHWM:\t  164000 kB\nVmRSS:\t  100000 kB\nThreads:\t9\n"
	if rss, hwm := parseStatusMem(status); rss != 100000<<10 || hwm != 164000<<10 {
		t.Errorf("parseStatusMem = %d, %d", rss, hwm)
	}
	u, err := readUsage(os.Getpid())
	if err != nil || u.hwm < u.rss || u.rss <= 0 {
		t.Errorf("readUsage(self) = %+v, %v", u, err)
	}
}

func TestRenderTable(t *testing.T) {
	got := renderTable([][]string{{"case", "ratio", ""}, {"drain 1M", "1.05×", "met"}, {"x", "0.8×", "missed"}})
	want := "case      ratio\n" +
		"drain 1M  1.05×     met\n" +
		"x          0.8×  missed\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestParsers(t *testing.T) {
	bench := `goos: linux
BenchmarkEncode10Columns/text/ROW/row-2         	  500000	      2345 ns/op	       512.0 bytes/record	     640 B/op	       4 allocs/op
BenchmarkEncode10Columns/text/ROW/txn100-2      	    5000	    250000 ns/op	      2100 ns/record	         3.010 allocs/record	   64000 B/op	     301 allocs/op
PASS`
	res, err := parseBench(bench)
	if err != nil || fmt.Sprint(res) != "[{text/ROW/row 2345 4} {text/ROW/txn100 2100 3.01}]" {
		t.Errorf("parseBench = %v, %v", res, err)
	}
	if _, err := parseBench("PASS"); err == nil {
		t.Error("parseBench without results succeeded")
	}

	pgb := "transaction type: lat.sql\nnumber of transactions actually processed: 99987\nnumber of failed transactions: 0 (0.000%)\n" +
		"latency average = 0.512 ms\nrate limit schedule lag: avg 0.123 (max 12.345) ms\ntps = 4999.1 (without initial connection time)\n"
	if r, err := parsePgbench(pgb); err != nil || r.processed != 99987 || r.tps != 4999.1 || r.lagMs != 0.123 {
		t.Errorf("parsePgbench = %+v, %v", r, err)
	}
	if _, err := parsePgbench(strings.Replace(pgb, "failed transactions: 0", "failed transactions: 3", 1)); err == nil {
		t.Error("failed transactions went unnoticed")
	}

	rec := `{"type":"full","op":"c","before":null,"after":{"id":1,"payload":"\"source\":{\"ts_ns\":7"},` +
		`"source":{"version":"1.0","ts_ms":1705318200123,"ts_ns":1705318200123456000,"txId":"x"},"ts_ms":1,"ts_ns":1705318200250811402}`
	if ts, ok := sourceTsNs([]byte(rec)); !ok || ts != 1705318200123456000 {
		t.Errorf("sourceTsNs = %d, %v", ts, ok)
	}
	if _, ok := sourceTsNs([]byte(`{"ts_ns":1}`)); ok {
		t.Error("sourceTsNs found a source in a record without one")
	}

	counts, err := parseCounts("100k,1M,2500,1.5k")
	if err != nil || fmt.Sprint(counts) != "[100000 1000000 2500 1500]" {
		t.Errorf("parseCounts = %v, %v", counts, err)
	}
	for _, bad := range []string{"", "0", "x", "1G", "-5k"} {
		if _, err := parseCounts(bad); err == nil {
			t.Errorf("parseCounts(%q) succeeded", bad)
		}
	}
	for n, want := range map[int64]string{100_000: "100k", 1_000_000: "1M", 2500: "2500", 15_000: "15k"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestWorkloadPlan: the transactions add up to the changes asked for, in
// the mix asked for, and the seed covers exactly the rows that are updated
// and deleted, each once.
func TestWorkloadPlan(t *testing.T) {
	w := workload{Changes: 1050, TxnRows: 100, RowBytes: 100, Tables: 3, Updates: 0.3, Deletes: 0.1}
	plans := w.plan()
	if len(plans) != 11 || plans[10].Ins+plans[10].Upd+plans[10].Del != 50 {
		t.Fatalf("%d transactions, the last %+v; want 11, the last of 50", len(plans), plans[len(plans)-1])
	}
	var ins, upd, del int
	for i, p := range plans {
		if p.Table != i%3 {
			t.Errorf("transaction %d on table %d", i, p.Table)
		}
		ins, upd, del = ins+p.Ins, upd+p.Upd, del+p.Del
	}
	if ins != 630 || upd != 315 || del != 105 {
		t.Errorf("inserts/updates/deletes = %d/%d/%d, want 630/315/105", ins, upd, del)
	}
	u, d, cur := seeds(plans, 3)
	var sql strings.Builder
	for _, p := range plans {
		sql.WriteString(txnSQL(fmt.Sprintf("t%d", p.Table), p, &cur[p.Table], 92))
	}
	for tbl := range 3 {
		if cur[tbl].nextUpd != u[tbl]+1 || cur[tbl].nextDel != u[tbl]+d[tbl]+1 {
			t.Errorf("table %d: cursor %+v after the plan; seeded %d updates, %d deletes", tbl, cur[tbl], u[tbl], d[tbl])
		}
	}
	if n := strings.Count(sql.String(), "BEGIN;"); n != 11 || strings.Count(sql.String(), "COMMIT;") != 11 {
		t.Errorf("%d BEGINs in the SQL", n)
	}
	if !strings.Contains(sql.String(), "DELETE FROM t0 WHERE id BETWEEN 121 AND 130;") {
		t.Errorf("table 0's first delete is not right after its 120 updated rows:\n%.400s", sql.String())
	}
	for _, bad := range []workload{{TxnRows: 0, RowBytes: 100, Tables: 1}, {TxnRows: 1, RowBytes: 8, Tables: 1}, {TxnRows: 1, RowBytes: 100, Tables: 1, Updates: 0.7, Deletes: 0.4}} {
		if bad.check() == nil {
			t.Errorf("%+v passed check", bad)
		}
	}
}

// TestTargets: a target is met, missed, or not run when the run did not
// measure it, and the history row carries the figures.
func TestTargets(t *testing.T) {
	r := &report{
		Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Machine: machine{Commit: "abc1234", LoadBefore: "1.00 0.50 0.25"},
		Drains: []drainResult{
			{Workload: workload{Changes: 100_000}, Ratio: 0.85, CPUPerChangeUs: 9},
			{Workload: workload{Changes: 1_000_000}, Ratio: 1.05, CPUPerChangeUs: 3.5},
		},
		Latency: []latencyResult{{Offered: 10_000, Committed: 9990, P50Ms: 16, P99Ms: 54}, {Offered: 15_000, Committed: 14990, P50Ms: 50, P99Ms: 99.9}},
		BigTxns: []bigTxnResult{{DataBytes: 512e6, Ratio: 0.61, Cdcd: cdcdRun{PeakRSS: 300e6}}, {DataBytes: 2e9, Ratio: 0.64, Cdcd: cdcdRun{PeakRSS: 200e6}}},
	}
	got := map[string]string{}
	for _, tg := range evaluate(r) {
		got[tg.Name] = tg.Got + " " + tg.Status
	}
	for name, want := range map[string]string{
		"drain 100k: cdcd ÷ pg_recvlogical":                    "0.85× missed",
		"drain 1M: cdcd ÷ pg_recvlogical":                      "1.05× met",
		"cdcd CPU per change (largest drain)":                  "3.50 µs met",
		"large txn: cdcd ÷ pg_recvlogical rows/s (worst size)": "0.61× met",
		"large txn: cdcd peak RSS (largest)":                   "300 MB missed",
		"p99 commit→ack at 10k/s":                              "54.0 ms missed",
		"p99 commit→ack at 15k/s":                              "99.9 ms met",
		"encoding a 10-column row (worst case)":                "— not run",
		"allocations per 10-column row (worst case)":           "— not run",
	} {
		if got[name] != want {
			t.Errorf("%s: %q, want %q", name, got[name], want)
		}
	}
	// A load pgbench could not keep up misses, whatever its latency.
	r.Latency[1].Committed = 9000
	if tg := evaluate(r)[6]; tg.Got != "99.9 ms (at 9.0k/s committed)" || tg.Status != "missed" {
		t.Errorf("a load not kept up: %+v", tg)
	}
	row := historyRow(r)
	want := "| 2026-01-02 | abc1234 | 0.85× | 1.05× | 3.50 µs | 512.0 MB: 0.61×, 300.0 MB; 2.00 GB: 0.64×, 200.0 MB | 10k: 16/54, 15k: 50/100 | —, — allocs | load 1.00 0.50 0.25 |"
	if row != want {
		t.Errorf("history row\n%s\nwant\n%s", row, want)
	}
}
