package capture

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/record"
)

// TestClassify: one case per kind of failure, with its code, whether it
// is reported at once (for a session that was not established, and one
// that was), and whether capture reports it at all.
func TestClassify(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		code       codes.Code
		atOnce     bool // before the session was established
		atOnceLive bool // after
		reportable bool
	}{
		{"unmet prerequisite", unmet("wal_level", "", "wal_level is replica"), codes.SourcePrerequisiteUnmet, true, true, true},
		{"privilege refused 42501", &pgconn.PgError{Code: "42501", Message: "must be superuser or replication role to start walsender"}, codes.SourcePrerequisiteUnmet, true, true, true},
		{"connect error", refusedConnect(t), codes.SourceUnavailable, true, false, true},
		{"password rejected 28P01", &pgconn.PgError{Code: "28P01"}, codes.SourceUnavailable, true, false, true},
		{"terminated 57P01", &pgconn.PgError{Code: "57P01"}, codes.SourceUnavailable, true, false, true},
		{"connection lost", fmt.Errorf("%w: eof", errConnLost), codes.SourceUnavailable, true, false, true},
		{"slot in use 55006", &pgconn.PgError{Code: "55006", Message: `replication slot "s" is active for PID 42`}, codes.SourceUnavailable, false, false, true},
		{"type not in pg_type", errors.New("look up type public.mood: type 16388 is not in pg_type"), codes.SourceUnavailable, false, false, true},
		{"slot lost", ErrSlotLost, codes.SourceSlotLost, false, false, false},
		{"slot advanced", unmet("slot", "s", "%w: advanced", ErrSlotLost), codes.SourceSlotLost, false, false, false},
		{"handler error", handlerError{errors.New("encode failed")}, codes.SourceUnavailable, false, false, false},
		{"shutting down", fmt.Errorf("%w: CopyDone", errSourceShutdown), codes.SourceUnavailable, false, false, false},
		{"cancelled", context.Canceled, codes.SourceUnavailable, false, false, false},
		{"table changed at start", reportedError{unmet("table", "public.t", "dropped")}, codes.SourcePrerequisiteUnmet, true, true, false},
		{"table changed while streaming", &TableChangedError{}, codes.SourceUnavailable, false, false, false},
		{"spill full", fmt.Errorf("spill: %w", record.ErrSpillFull), codes.SourceUnavailable, false, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := fmt.Errorf("wrapped: %w", tc.err)
			if got := Classify(err); got != tc.code {
				t.Errorf("Classify = %s, want %s", got, tc.code)
			}
			if got := atOnce(err, false); got != tc.atOnce {
				t.Errorf("atOnce(not established) = %v, want %v", got, tc.atOnce)
			}
			if got := atOnce(err, true); got != tc.atOnceLive {
				t.Errorf("atOnce(established) = %v, want %v", got, tc.atOnceLive)
			}
			if got := reportable(err); got != tc.reportable {
				t.Errorf("reportable = %v, want %v", got, tc.reportable)
			}
		})
	}
}

// TestDescribe: the words of a status reason name the cause and the fix.
func TestDescribe(t *testing.T) {
	cases := []struct {
		err  error
		want []string
	}{
		{unmet("replica_identity", "public.t", "run ALTER TABLE t REPLICA IDENTITY FULL"),
			[]string{"source prerequisite replica_identity of public.t not met", "ALTER TABLE t REPLICA IDENTITY FULL"}},
		{&pgconn.PgError{Code: "55006", Message: `replication slot "s" is active for PID 42`},
			[]string{`replication slot "s" is active for PID 42`, "pg_stat_replication", "pg_terminate_backend"}},
		{&pgconn.PgError{Code: "42501", Message: "must be superuser or replication role to start walsender"},
			[]string{"lacks REPLICATION", "WITH REPLICATION"}},
	}
	for _, tc := range cases {
		got := Describe(fmt.Errorf("wrapped: %w", tc.err)).Error()
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("Describe(%v) = %q, want it to contain %q", tc.err, got, w)
			}
		}
	}
}

// TestTroubleReports walks the reports through a refused session, a
// recovery, sessions that keep failing once established, and the session
// that works again.
func TestTroubleReports(t *testing.T) {
	var got []codes.Code
	s, err := New(Config{DSN: "postgres://x", Slot: "s", Publication: "p", MemoryBudget: -1, ImpairAfter: time.Minute,
		Report: func(c codes.Code, _ error) { got = append(got, c) }})
	if err != nil {
		t.Fatal(err)
	}
	expect := func(step string, want ...codes.Code) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s: reports %q, want %q", step, got, want)
		}
		got = nil
	}
	refused := refusedConnect(t)
	inUse := &pgconn.PgError{Code: "55006"}

	s.established()
	expect("the first session clears what a previous run left", "")
	s.failed(refused, false)
	expect("a session refused", codes.SourceUnavailable)
	s.established()
	expect("established again", "")
	s.failed(&pgconn.PgError{Code: "57P01"}, true)
	s.stillFailing(&pgconn.PgError{Code: "57P01"}, time.Second)
	s.established()
	expect("a walsender terminated and replaced")

	s.trouble.since = time.Now().Add(-time.Minute)
	s.failed(refused, false)
	s.stillFailing(refused, time.Second)
	expect("refused for ImpairAfter: reported once, at once", codes.SourceUnavailable)
	s.established()
	expect("established again, after a long outage", "")

	s.works()
	for range 3 {
		s.failed(inUse, false)
		s.stillFailing(inUse, time.Second)
	}
	expect("failing for less than ImpairAfter")
	s.trouble.since = time.Now().Add(-time.Minute)
	s.failed(inUse, false)
	s.stillFailing(inUse, time.Second)
	expect("failing for ImpairAfter", codes.SourceUnavailable)
	s.established()
	expect("established, but not yet working")
	s.works()
	expect("a session that works", "")
	s.works()
	expect("working on")
}

// refusedConnect is what connecting to a port nothing listens on returns.
func refusedConnect(t *testing.T) error {
	t.Helper()
	_, err := pgconn.Connect(context.Background(), "postgres://u@127.0.0.1:1/db?connect_timeout=5")
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("connect to port 1: %v, want a *pgconn.ConnectError", err)
	}
	return err
}
