package pipeline

import (
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/capture"
	"github.com/cdcd-dev/cdcd/state/api"
)

// TestDescribeHealth: lag in bytes is the server's WAL position past the
// stream's, absent until a check found the slot and never negative; the
// snapshot's progress shows while it runs and once done.
func TestDescribeHealth(t *testing.T) {
	cases := []struct {
		name       string
		checkpoint uint64
		h          capture.SlotHealth
		lag        int64 // -1: absent
		snapshot   *api.SnapshotInfo
	}{
		{"no check yet", 100, capture.SlotHealth{}, -1, nil},
		{"slot missing", 100, capture.SlotHealth{CheckedAt: time.Unix(1705318200, 0)}, -1, nil},
		{"behind the server", 0x16_0000_1000, capture.SlotHealth{Exists: true, CurrentWALLSN: 0x16_0000_3000, ConfirmedFlushLSN: 0x16_0000_0800}, 0x2000, nil},
		{"before the first checkpoint the slot's position counts", 0, capture.SlotHealth{Exists: true, CurrentWALLSN: 5000, ConfirmedFlushLSN: 4000}, 1000, nil},
		{"checkpoint newer than the reading", 9000, capture.SlotHealth{Exists: true, CurrentWALLSN: 5000, ConfirmedFlushLSN: 4000}, 0, nil},
		{"snapshot running", 0, capture.SlotHealth{Snapshot: capture.SnapshotProgress{Running: true, Table: "public.a", TablesDone: 1, Tables: 2, Rows: 7, EstimatedRows: 9}},
			-1, &api.SnapshotInfo{Table: "public.a", TablesDone: 1, Tables: 2, Rows: 7, EstimatedRows: 9}},
		{"snapshot done", 0, capture.SlotHealth{Snapshot: capture.SnapshotProgress{Done: true, TablesDone: 2, Tables: 2, Rows: 8, EstimatedRows: 8}},
			-1, &api.SnapshotInfo{Done: true, TablesDone: 2, Tables: 2, Rows: 8, EstimatedRows: 8}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := &api.SourceInfo{ConfirmedLSN: tc.checkpoint}
			describeHealth(src, tc.h)
			switch {
			case tc.lag < 0 && src.LagBytes != nil:
				t.Errorf("lag bytes %d, want absent", *src.LagBytes)
			case tc.lag >= 0 && (src.LagBytes == nil || *src.LagBytes != tc.lag):
				t.Errorf("lag bytes %v, want %d", src.LagBytes, tc.lag)
			}
			if (src.Snapshot == nil) != (tc.snapshot == nil) || src.Snapshot != nil && *src.Snapshot != *tc.snapshot {
				t.Errorf("snapshot %+v, want %+v", src.Snapshot, tc.snapshot)
			}
		})
	}
}
