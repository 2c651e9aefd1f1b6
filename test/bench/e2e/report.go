package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// report is everything a run measured; it is the JSON written under -out.
type report struct {
	Started   time.Time       `json:"started"`
	Finished  time.Time       `json:"finished"`
	Machine   machine         `json:"machine"`
	LoadAfter string          `json:"load_after"`
	Binary    string          `json:"cdcd_binary"`
	Shards    int             `json:"shards"`
	Encode    []encodeResult  `json:"encode,omitempty"`
	Drains    []drainResult   `json:"drains,omitempty"`
	Latency   []latencyResult `json:"latency,omitempty"`
	BigTxns   []bigTxnResult  `json:"bigtxn,omitempty"`
	Targets   []target        `json:"targets"`
}

// publish writes the report as JSON into dir and prints it as text with
// the JSON's path.
func publish(rep *report, dir string, w io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "e2e-"+rep.Started.Format("20060102T150405Z")+".json")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\nresults: %s\n", rep.text(), path)
	return err
}

// text is the report as tables.
func (r *report) text() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "cdcd end-to-end benchmark, %s, commit %s\n", r.Started.Format("2006-01-02 15:04 MST"), m.Commit)
	fmt.Fprintf(&b, "machine: %d cores, %s; PostgreSQL %s (fsync %s, synchronous_commit %s); %s; load %s before, %s after\n",
		m.Cores, m.CPU, m.PostgreSQL, m.Settings["fsync"], m.Settings["synchronous_commit"], m.Go, m.LoadBefore, r.LoadAfter)
	if len(r.Encode) > 0 {
		b.WriteString("\nencoding (go test -bench " + encodeBench + " ./record), per 10-column row\n")
		rows := [][]string{{"case", "ns", "allocs"}}
		for _, e := range r.Encode {
			rows = append(rows, []string{e.Case, fmt.Sprintf("%.0f", e.NsPerRecord), fmt.Sprintf("%.2f", e.AllocsPerRecord)})
		}
		b.WriteString(renderTable(rows))
	}
	if len(r.Drains) > 0 {
		b.WriteString(r.drainText())
	}
	if len(r.Latency) > 0 {
		b.WriteString("\ncommit→acknowledgement latency (pgbench single-row transactions, synchronous_commit on; receipt − source.ts_ns)\n")
		rows := [][]string{{"offered/s", "committed/s", "pgbench lag", "records", "p50", "p95", "p99", "max", "cdcd CPU per change"}}
		for _, l := range r.Latency {
			rows = append(rows, []string{count(l.Offered), rate(l.Committed), ms(l.LagMs), fmt.Sprint(l.Samples),
				ms(l.P50Ms), ms(l.P95Ms), ms(l.P99Ms), ms(l.MaxMs), fmt.Sprintf("%.1f µs", l.CPUPerChangeUs)})
		}
		b.WriteString(renderTable(rows))
		for _, l := range r.Latency {
			if l.Committed < 0.95*float64(l.Offered) {
				fmt.Fprintf(&b, "note: %s/s offered, %s/s committed: the machine could not keep up the load, so its latency is not the load's\n", count(l.Offered), rate(l.Committed))
			}
		}
	}
	if len(r.BigTxns) > 0 {
		b.WriteString(r.bigTxnText())
	}
	b.WriteString("\ntargets (BENCHMARKS.md)\n")
	rows := [][]string{{"target", "want", "got", ""}}
	for _, t := range r.Targets {
		rows = append(rows, []string{t.Name, t.Want, t.Got, t.Status})
	}
	b.WriteString(renderTable(rows))
	b.WriteString("\nhistory row for BENCHMARKS.md:\n" + historyRow(r) + "\n")
	return b.String()
}

func (r *report) drainText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\ndrain of a backlog (%d-shard stream; %s); times from process start, MB/s of WAL\n", r.Shards, r.Drains[0].Workload.describe())
	rows := [][]string{{"changes", "WAL", "pg_recvlogical", "changes/s", "MB/s", "cdcd", "changes/s", "MB/s", "ratio", "cdcd CPU", "per change", "peak RSS", "1st record"}}
	for _, d := range r.Drains {
		walMB := float64(d.WALBytes) / 1e6
		rows = append(rows, []string{count(d.Workload.Changes), human(d.WALBytes),
			secs(d.RecvLogical.Seconds), rate(d.recvRate()), fmt.Sprintf("%.1f", walMB/d.RecvLogical.Seconds),
			secs(d.Cdcd.Seconds), rate(d.cdcdRate()), fmt.Sprintf("%.1f", walMB/d.Cdcd.Seconds),
			fmt.Sprintf("%.2f×", d.Ratio), secs(d.Cdcd.CPUSeconds), fmt.Sprintf("%.2f µs", d.CPUPerChangeUs),
			human(d.Cdcd.PeakRSS), secs(d.Cdcd.FirstSeconds)})
	}
	b.WriteString(renderTable(rows))
	for _, d := range r.Drains {
		b.WriteString(duplicatesNote(count(d.Workload.Changes), d.Cdcd.Duplicates))
	}
	return b.String()
}

// duplicatesNote says that a drain's records include resent ones, which
// delivery at least once allows but a clean run does not show.
func duplicatesNote(what string, n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("note: %s: %d duplicate records (PutRecords calls failed on the way back and were sent again; see cdcd's log with -keep)\n", what, n)
}

func (r *report) bigTxnText() string {
	t := r.BigTxns[0]
	settings := "cdcd's default memory_budget and queue_bytes"
	if t.Budget > 0 || t.Queue > 0 {
		settings = fmt.Sprintf("memory_budget %s, queue_bytes %s (0: default)", human(t.Budget), human(t.Queue))
	}
	if t.Updated > 0 {
		settings += fmt.Sprintf("; then updating %.0f%% of its rows", 100*float64(t.Updated)/float64(t.Rows))
	}
	head := fmt.Sprintf("\none large transaction of each size (%d-byte payloads; %s; pg_recvlogical with proto_version 2 and streaming)\n", t.RowPayload, settings)
	rows := [][]string{{"data", "rows", "WAL", "insert", "pg_recvlogical", "rows/s", "cdcd", "rows/s", "ratio", "cdcd CPU", "peak RSS", "spilled"}}
	var notes strings.Builder
	for _, t := range r.BigTxns {
		rows = append(rows, []string{human(t.DataBytes), fmt.Sprint(t.Rows), human(t.WALBytes), secs(t.InsertSecs), secs(t.RecvLogical.Seconds), rate(t.recvRate()),
			secs(t.Cdcd.Seconds), rate(t.cdcdRate()), fmt.Sprintf("%.2f×", t.Ratio), secs(t.Cdcd.CPUSeconds), human(t.Cdcd.PeakRSS), fmt.Sprint(t.Cdcd.Spilled)})
		notes.WriteString(duplicatesNote("large transaction of "+human(t.DataBytes), t.Cdcd.Duplicates))
	}
	return head + renderTable(rows) + notes.String()
}

func secs(s float64) string { return fmt.Sprintf("%.2fs", s) }
func ms(v float64) string   { return fmt.Sprintf("%.1f ms", v) }

// renderTable aligns rows (the first is the header) in columns two spaces
// apart, the first left-aligned and the rest right-aligned.
func renderTable(rows [][]string) string {
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		var line strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			switch {
			case i == 0:
				line.WriteString(cell + pad)
			default:
				line.WriteString("  " + pad + cell)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	return b.String()
}
