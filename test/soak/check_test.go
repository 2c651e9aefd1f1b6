package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// checkTimeout bounds reading Kinesis back and comparing with the source.
const checkTimeout = 5 * time.Minute

// check reads every Kinesis record back, compares the rebuilt tables with
// the source, stops the daemon, checks its logs and the faults' codes, and
// writes the summary.
func (s *soak) check() {
	t := s.t
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	rd := s.readBack(ctx)
	began := time.Now()
	cmp, err := s.compareAll(ctx, rd)
	if err != nil {
		t.Fatal(err)
	}
	s.log.event("compared", "%d source rows with Kinesis in %s", cmp.rows, time.Since(began).Round(time.Millisecond))
	final := map[string]string{}
	for _, st := range s.streams {
		status, code := s.obs.last(st.name)
		final[st.name] = strings.TrimSpace(status + " " + code)
		s.log.event("final status", "stream %s: %s", st.name, final[st.name])
	}
	s.daemon.stop()
	dir := s.outputDir()
	logs := s.daemon.logs(dir)
	s.checkCodes()
	sum := s.summarize(rd, cmp, logs)
	sum.FinalStatus = final
	s.report(rd, cmp, sum)
	s.writeSummary(dir, sum)
}

// readBack reads every Kinesis stream from the start, all at once, and
// then runs each through the reader.
func (s *soak) readBack(ctx context.Context) *reader {
	kin := testenv.KinesisClient(s.t, s.env, "")
	shards := make([][][][]byte, len(s.streams))
	errs := make([]error, len(s.streams))
	began := time.Now()
	var wg sync.WaitGroup
	for i, st := range s.streams {
		wg.Go(func() { shards[i], errs[i] = testenv.ReadStream(ctx, kin, st.kinesis) })
	}
	wg.Wait()
	read := time.Since(began)
	rd := newReader(s.clusterID)
	for i, st := range s.streams {
		if errs[i] != nil {
			s.t.Fatalf("read Kinesis stream %s: %v", st.kinesis, errs[i])
		}
		rd.readStream(st.name, shards[i], st.ordering == "ROW")
	}
	s.log.event("read back", "%d records in %s, checked in %s", rd.records, read.Round(time.Millisecond),
		(time.Since(began) - read).Round(time.Millisecond))
	return rd
}

// report fails the run for each broken invariant.
func (s *soak) report(rd *reader, cmp *comparison, sum *summary) {
	t := s.t
	if cmp.lost > 0 {
		t.Errorf("lost %d of %d source rows (missing, extra or different in Kinesis):\n%s", cmp.lost, cmp.rows, strings.Join(cmp.samples, "\n"))
	}
	if len(rd.problems) > 0 {
		t.Errorf("%v problems in the records:\n%s", rd.problemCount, strings.Join(rd.problems, "\n"))
	}
	if len(sum.Illegal) > 0 {
		t.Errorf("%d status changes docs/lifecycle.md#transitions does not allow:\n%s", len(sum.Illegal), strings.Join(sum.Illegal, "\n"))
	}
	if len(sum.Crashes) > 0 {
		t.Errorf("the daemons' output shows %s", strings.Join(sum.Crashes, ", "))
	}
	t.Log(sum.line())
}

// summary is the run's outcome, also written as JSON under .cache/soak.
type summary struct {
	Seed          int64               `json:"seed"`
	Duration      string              `json:"duration"`
	Wall          string              `json:"wall"`
	Date          string              `json:"date"`
	Changes       int                 `json:"changes"`
	Transactions  int64               `json:"transactions"`
	Records       int                 `json:"records"`
	Kills         int                 `json:"kills"`
	PGRestarts    int                 `json:"pg_restarts"`
	Faults        map[string]int      `json:"faults"`
	Lost          int                 `json:"lost"`
	Duplicates    int                 `json:"duplicates"`
	MaxLagSeconds float64             `json:"max_lag_seconds"`
	PeakRSSKiB    int64               `json:"peak_rss_kib"`
	Transitions   map[string]int      `json:"transitions"`
	Illegal       []string            `json:"illegal_transitions,omitempty"`
	Crashes       []string            `json:"crashes,omitempty"`
	Episodes      []episodeReport     `json:"episodes"`
	NotInjectable string              `json:"not_injectable,omitempty"`
	CodesByKind   map[string][]string `json:"codes_by_kind"`
	// FinalStatus is each stream's status once caught up (waitHealthy
	// requires ACTIVE).
	FinalStatus map[string]string `json:"final_status"`
}

type episodeReport struct {
	Kind    string                    `json:"kind"`
	Variant string                    `json:"variant"`
	At      string                    `json:"at"`
	Lasted  string                    `json:"lasted"`
	Expect  string                    `json:"expect,omitempty"`
	Exempt  string                    `json:"exempt,omitempty"`
	Seen    map[string]map[string]int `json:"seen,omitempty"`
	Calls   map[string]int            `json:"calls,omitempty"`
}

func (s *soak) summarize(rd *reader, cmp *comparison, logs []string) *summary {
	kills, restarts, faults := s.faultCounts()
	table, err := transitionTable(filepath.Join(repoRoot(), "docs", "lifecycle.md"))
	if err != nil {
		s.t.Fatal(err)
	}
	trans, illegal := transitions(logs, table)
	s.daemon.mu.Lock()
	peak := s.daemon.peakKiB
	s.daemon.mu.Unlock()
	sum := &summary{
		Seed: s.opt.seed, Duration: s.opt.duration.String(), Wall: time.Since(s.began).Round(time.Second).String(),
		Date: time.Now().UTC().Format(time.DateOnly), Changes: rd.distinct(), Transactions: s.work.commits.Load(),
		Records: rd.records, Kills: kills, PGRestarts: restarts, Faults: faults, Lost: cmp.lost,
		Duplicates: rd.duplicates, MaxLagSeconds: s.obs.lag(), PeakRSSKiB: peak,
		Transitions: trans, Illegal: illegal, Crashes: crashes(logs), CodesByKind: map[string][]string{},
	}
	if s.spill == nil {
		sum.NotInjectable = "spill_full: no user and mount namespace for a size-limited tmpfs here"
	}
	for _, ep := range s.plan {
		if ep.began.IsZero() {
			continue
		}
		sum.Episodes = append(sum.Episodes, episodeReport{Kind: string(ep.kind), Variant: ep.variant,
			At: s.since(ep.began).Round(100 * time.Millisecond).String(), Lasted: ep.ended.Sub(ep.began).Round(100 * time.Millisecond).String(),
			Expect: ep.expect, Exempt: ep.exempt, Seen: ep.seen, Calls: ep.calls})
		for _, codes := range ep.seen {
			for code := range codes {
				if !slices.Contains(sum.CodesByKind[string(ep.kind)], code) {
					sum.CodesByKind[string(ep.kind)] = append(sum.CodesByKind[string(ep.kind)], code)
				}
			}
		}
	}
	return sum
}

// line is the one-line summary.
func (sum *summary) line() string {
	var faults []string
	for _, k := range slices.Sorted(maps.Keys(sum.Faults)) {
		faults = append(faults, fmt.Sprintf("%s: %d", k, sum.Faults[k]))
	}
	if sum.NotInjectable != "" {
		faults = append(faults, "spill_full: not injectable")
	}
	return fmt.Sprintf("soak: seed %d, duration %s, changes %d, kills %d, pg restarts %d, faults {%s}, lost %d, duplicates %d, max lag %.1fs, peak RSS %d MiB",
		sum.Seed, sum.Duration, sum.Changes, sum.Kills, sum.PGRestarts, strings.Join(faults, ", "), sum.Lost,
		sum.Duplicates, sum.MaxLagSeconds, sum.PeakRSSKiB>>10)
}

// crashes names what in the daemons' output means a bug: a data race the
// race detector saw, a panic, a fatal runtime error.
func crashes(logs []string) []string {
	var out []string
	for i, l := range logs {
		for _, sign := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
			if strings.Contains(l, sign) {
				out = append(out, fmt.Sprintf("%q in daemon %d's output", sign, i+1))
			}
		}
	}
	return out
}

// outputDir is .cache/soak/<date>-seed<seed>/ in the repository, for the
// daemons' logs; "" if it cannot be made.
func (s *soak) outputDir() string {
	dir := filepath.Join(repoRoot(), ".cache", "soak", fmt.Sprintf("%s-seed%d", s.began.Format("20060102-150405"), s.opt.seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Logf("soak: no output directory: %v", err)
		return ""
	}
	if err := os.WriteFile(filepath.Join(dir, "events.log"), []byte(strings.Join(s.log.all(), "\n")+"\n"), 0o644); err != nil {
		s.t.Logf("soak: %v", err)
	}
	return dir
}

// writeSummary writes the summary as JSON beside the logs and as
// .cache/soak/last.json.
func (s *soak) writeSummary(dir string, sum *summary) {
	if dir == "" {
		return
	}
	b, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		s.t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "summary.json"), filepath.Join(filepath.Dir(dir), "last.json")} {
		if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
			s.t.Errorf("write the summary: %v", err)
		}
	}
	s.t.Logf("soak: summary in %s, daemon logs beside it", filepath.Join(dir, "summary.json"))
}

// compareAll compares every source table with the rebuilt one.
func (s *soak) compareAll(ctx context.Context, rd *reader) (*comparison, error) {
	c := &comparison{}
	s.work.mu.Lock()
	addedAt := s.work.addedAt
	s.work.mu.Unlock()
	err := s.withConn(ctx, func(conn *pgx.Conn) error {
		if err := checkReplicaIdentity(ctx, conn); err != nil {
			s.t.Error(err)
		}
		for _, t := range tables() {
			if addedAt.IsZero() && t.name == "accounts" {
				t.cols = t.cols[:len(t.cols)-1] // ADD COLUMN never ran
			}
			src, err := sourceRows(ctx, conn, t)
			if err != nil {
				return fmt.Errorf("read %s: %w", t.name, err)
			}
			c.compareTable(t, src, rd.live(t.name), addedAt)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("compare with the source: %w", err)
	}
	return c, nil
}

// checkReplicaIdentity checks that cdcd set REPLICA IDENTITY FULL on every
// table (each has a TOASTable column, set_replica_identity_full = true):
// what puts the unchanged TOASTed values of docs.body in the WAL.
func checkReplicaIdentity(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, `SELECT relname FROM pg_class
		WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relreplident <> 'f'`)
	if err != nil {
		return err
	}
	notFull, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if len(notFull) > 0 {
		return fmt.Errorf("tables without REPLICA IDENTITY FULL, which set_replica_identity_full should have set: %v", notFull)
	}
	return nil
}
