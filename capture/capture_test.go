package capture

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/record"
)

func TestIsSourceUnavailable(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"connect error", &pgconn.ConnectError{}, true},
		{"connection failure 08006", &pgconn.PgError{Code: "08006"}, true},
		{"password rejected 28P01", &pgconn.PgError{Code: "28P01"}, true},
		{"administrator shutdown 57P01", &pgconn.PgError{Code: "57P01"}, true},
		{"starting up 57P03", &pgconn.PgError{Code: "57P03"}, true},
		{"slot in use 55006", &pgconn.PgError{Code: "55006"}, false},
		{"undefined object 42704", &pgconn.PgError{Code: "42704"}, false},
		{"connection lost", fmt.Errorf("%w: eof", errConnLost), true},
		{"handler error", errors.New("encode failed"), false},
		{"slot lost", ErrSlotLost, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := isSourceUnavailable(fmt.Errorf("wrapped: %w", tc.err)); got != tc.want {
				t.Fatalf("isSourceUnavailable = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	ok := Config{DSN: "postgres://x", Slot: "cdcd_slot_1", Publication: "p", Spill: discardRuns{}}
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"valid", func(*Config) {}, ""},
		{"no dsn", func(c *Config) { c.DSN = "" }, "required"},
		{"no publication", func(c *Config) { c.Publication = "" }, "required"},
		{"upper-case slot", func(c *Config) { c.Slot = "Slot" }, "[a-z0-9_]"},
		{"slot with a quote", func(c *Config) { c.Slot = "a'b" }, "[a-z0-9_]"},
		{"slot too long", func(c *Config) { c.Slot = strings.Repeat("s", 64) }, "1 to 63"},
		{"memory budget without a spill store", func(c *Config) { c.Spill = nil }, "spill store"},
		{"no budget, no spill store", func(c *Config) { c.Spill, c.MemoryBudget = nil, -1 }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			src, err := New(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want == "":
				if src.cfg.StatusInterval <= 0 || src.cfg.HealthInterval <= 0 || src.cfg.SnapshotBatchRows <= 0 || src.met == nil {
					t.Fatalf("defaults not filled: %+v", src.cfg)
				}
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// discardRuns is a spill store for tests that never spill.
type discardRuns struct{}

func (discardRuns) Create() (record.RunWriter, error) {
	return nil, errors.New("discardRuns: no spilling here")
}

// plainHandler is a Handler without the snapshot methods.
type plainHandler struct{}

func (plainHandler) Handle(context.Context, *record.Txn) error { return nil }
func (plainHandler) Delivered() uint64                         { return 0 }
func (plainHandler) Persist(context.Context, uint64) error     { return nil }
func (plainHandler) Persisted() uint64                         { return 0 }

func TestRunNeedsSnapshotHandler(t *testing.T) {
	src, err := New(Config{DSN: "postgres://x", Slot: "s", Publication: "p", Snapshot: true, MemoryBudget: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Run(context.Background(), plainHandler{}); err == nil || !strings.Contains(err.Error(), "SnapshotHandler") {
		t.Fatalf("Run with a plain handler on a snapshot stream: %v", err)
	}
}
