package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcd-dev/cdcd/capture/pgauth"
	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/state"
)

// countLogs is a slog.Handler that counts records by message.
type countLogs struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *countLogs) Enabled(context.Context, slog.Level) bool { return true }
func (h *countLogs) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == nil {
		h.n = map[string]int{}
	}
	h.n[r.Message]++
	return nil
}
func (h *countLogs) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countLogs) WithGroup(string) slog.Handler      { return h }

func (h *countLogs) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[msg]
}

func streamIn(t *testing.T, st state.Status, reasons ...codes.Code) *state.Stream {
	t.Helper()
	rec := state.File{Definition: state.Definition{ClusterID: cluster, StreamID: cluster2}, Status: st}
	for i, c := range reasons {
		r := state.Reason{Code: c, Message: "before the restart"}
		if i == 0 {
			rec.StatusReason = &r
		} else {
			rec.OtherReasons = append(rec.OtherReasons, r)
		}
	}
	s, err := state.NewStream(rec, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHoldRetriesUntilFixed: a step that cannot go on holds the run, which
// reports the fault on every attempt and retries; once the step succeeds,
// the code it reported is cleared and nothing else.
func TestHoldRetriesUntilFixed(t *testing.T) {
	tests := []struct {
		name      string
		status    state.Status
		reasons   []codes.Code // outstanding before the run
		failures  int          // attempts that fail; -1 for all
		wantErr   error
		wantCalls int
		want      state.Status
		wantCodes []codes.Code
	}{
		{"fixed after failures", state.Active, nil, 2, nil, 3, state.Active, nil},
		{"another owner's cause stays", state.Impaired, []codes.Code{codes.SourceUnavailable}, 1, nil, 2,
			state.Impaired, []codes.Code{codes.SourceUnavailable}},
		{"passing at once clears nothing", state.Impaired, []codes.Code{codes.RoleAccessDenied}, 0, nil, 1,
			state.Impaired, []codes.Code{codes.RoleAccessDenied}},
		{"denied while creating", state.Creating, nil, -1, errFailed, 1, state.Failed, []codes.Code{codes.RoleAccessDenied}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := streamIn(t, tt.status, tt.reasons...)
			r := &streamRun{st: st, log: slog.New(slog.DiscardHandler)}
			calls := 0
			err := r.hold(ctxT(t), codes.RoleAccessDenied, func() error {
				calls++
				if calls > 1 && tt.status != state.Creating {
					// The earlier failure is shown while the run waits.
					if got := st.View().Codes(); !slices.Contains(got, codes.RoleAccessDenied) {
						t.Errorf("attempt %d: stream shows %v", calls, got)
					}
				}
				if tt.failures < 0 || calls <= tt.failures {
					return fmt.Errorf("role %s is not allowed", roleA)
				}
				return nil
			})
			if !errors.Is(err, tt.wantErr) || calls != tt.wantCalls {
				t.Fatalf("hold = %v after %d calls, want %v after %d", err, calls, tt.wantErr, tt.wantCalls)
			}
			snap := st.View()
			if snap.Status != tt.want || !slices.Equal(snap.Codes(), tt.wantCodes) {
				t.Fatalf("stream %s %v, want %s %v", snap.Status, snap.Codes(), tt.want, tt.wantCodes)
			}
		})
	}
}

// heldDaemon is a Daemon with one configured stream whose role
// aws.role_arn_allow does not allow. Nothing is behind its source or its
// AWS endpoints: its runs never get past the role.
func heldDaemon(t *testing.T, logs slog.Handler) (*Daemon, state.Definition) {
	t.Helper()
	cfg, err := config.Parse("c.toml", fmt.Sprintf(`
state_dir = %q
[aws]
account = %q
role_arn_allow = [%q]
[[cluster]]
name = "db"
identifier = %q
dsn = "postgres://cdcd@127.0.0.1:1/db"
password_env = "CDCD_TEST_NO_SUCH_PASSWORD"
[[stream]]
name = "orders"
cluster = "db"
tables = ["public.orders"]
[stream.target]
kinesis_stream = "orders"
role_arn = %q
external_id = "orders-external-id"
`, t.TempDir(), account, roleOther, cluster, roleA))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(logs)
	auth, err := SourceAuth(cfg, &cfg.Clusters[0], aws.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	met, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: cfg, log: log, metrics: met,
		clusterIDs: map[string]string{"db": cluster}, clusterNames: map[string]string{cluster: "db"},
		auth: map[string]*pgauth.Provider{"db": auth}, configured: map[string]*config.Stream{},
		live: map[string]*liveStream{}}
	def, err := d.definition(&cfg.Streams[0])
	if err != nil {
		t.Fatal(err)
	}
	d.configured[def.StreamID] = &cfg.Streams[0]
	return d, def
}

// TestHeldRunKeepsRunning: a stream whose role is not allowed is IMPAIRED
// (or, while CREATING, FAILED) with ROLE_ACCESS_DENIED, and its run keeps
// retrying instead of returning, so the supervisor never reports the
// pipeline stopped.
func TestHeldRunKeepsRunning(t *testing.T) {
	tests := []struct {
		from state.Status
		want state.Status
	}{
		{state.Active, state.Impaired},
		{state.Impaired, state.Impaired},
		{state.Creating, state.Failed},
	}
	for _, tt := range tests {
		t.Run(string(tt.from), func(t *testing.T) {
			logs := &countLogs{}
			d, def := heldDaemon(t, logs)
			store, err := state.Open(t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			rec := state.File{Definition: def, Status: tt.from}
			if tt.from == state.Impaired {
				rec.StatusReason = &state.Reason{Code: codes.RoleAccessDenied, Message: "before the restart"}
			}
			if err := store.Save(rec); err != nil {
				t.Fatal(err)
			}
			sup, err := NewSupervisor(SupervisorConfig{Store: store, Logger: d.log, Clusters: []string{cluster}, Runner: d})
			if err != nil {
				t.Fatal(err)
			}
			defer sup.Close()
			s := mustStream(t, sup, def.StreamID)
			waitFor(t, "the fault", func() bool { return s.View().Status == tt.want })
			if tt.want == state.Impaired {
				// Three failed attempts: the run is still there, retrying.
				waitFor(t, "retries", func() bool { return logs.count("stream held; retrying") >= 3 })
			}
			time.Sleep(100 * time.Millisecond) // a returned run would be reported by now
			snap := s.View()
			if got := snap.Codes(); snap.Status != tt.want || !slices.Equal(got, []codes.Code{codes.RoleAccessDenied}) {
				t.Fatalf("stream %s %v, want %s [ROLE_ACCESS_DENIED]", snap.Status, got, tt.want)
			}
			if n := logs.count("stream pipeline stopped"); n != 0 {
				t.Fatalf("the pipeline stopped %d times", n)
			}
		})
	}
}
