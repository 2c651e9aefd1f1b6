package state

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/codes"
)

// runbookSections is where each code's statusReason points, written out so
// that docs/links_test.go checks every section exists in docs/runbook.md.
var runbookSections = map[codes.Code]string{
	codes.KinesisThroughputExceeded: "docs/runbook.md#kinesis_throughput_exceeded",
	codes.KinesisStreamNotFound:     "docs/runbook.md#kinesis_stream_not_found",
	codes.RoleAccessDenied:          "docs/runbook.md#role_access_denied",
	codes.KinesisAccessDenied:       "docs/runbook.md#kinesis_access_denied",
	codes.KinesisKMSAccessDenied:    "docs/runbook.md#kinesis_kms_access_denied",
	codes.KinesisOversizeRecord:     "docs/runbook.md#kinesis_oversize_record",
	codes.ClusterCMKInaccessible:    "docs/runbook.md#cluster_cmk_inaccessible",
	codes.InternalError:             "docs/runbook.md#internal_error",
	codes.SourceUnavailable:         "docs/runbook.md#source_unavailable",
	codes.SourceSlotLost:            "docs/runbook.md#source_slot_lost",
	codes.SourcePrerequisiteUnmet:   "docs/runbook.md#source_prerequisite_unmet",
	codes.SourceTableChanged:        "docs/runbook.md#source_table_changed",
	codes.SpillFull:                 "docs/runbook.md#spill_full",
}

// TestReasonLinksRunbook: the statusReason of every code ends with its
// runbook section, once, however often the fault repeats, whatever its
// message becomes, and when it already named the section.
func TestReasonLinksRunbook(t *testing.T) {
	if len(runbookSections) != len(codes.All()) {
		t.Fatalf("%d sections for %d codes: list each code's section here", len(runbookSections), len(codes.All()))
	}
	for _, code := range codes.All() {
		t.Run(string(code), func(t *testing.T) {
			pointer := " (see " + runbookSections[code] + ")"
			h := newHarness(t, Active, time.Hour)
			for i, msg := range []string{"first", "first", "changed", "wrapped: changed" + pointer} {
				if h.s.View().Status == Failed {
					// A fatal code failed it, and a FAILED stream takes no
					// more faults: the next message goes to a new one.
					h = newHarness(t, Active, time.Hour)
				}
				_ = h.s.Fault(code, errors.New(msg))
				got := h.s.View().StatusReason
				want := strings.TrimSuffix(msg, pointer) + pointer
				if got == nil || got.Message != want {
					t.Fatalf("fault %d (%q): reason %+v, want message %q", i, msg, got, want)
				}
			}
		})
	}
}

// TestReasonLinkSurvivesLag: a stream failed by lag keeps the pointer at
// the end of its message, once.
func TestReasonLinkSurvivesLag(t *testing.T) {
	h := newHarness(t, Active, time.Minute)
	_ = h.s.Fault(codes.KinesisThroughputExceeded, errors.New("slow down"))
	_ = h.s.Lag(2 * time.Minute)
	got := h.s.View()
	link := runbookSections[codes.KinesisThroughputExceeded]
	if got.Status != Failed || !strings.HasSuffix(got.StatusReason.Message, "slow down (see "+link+")") ||
		strings.Count(got.StatusReason.Message, link) != 1 {
		t.Fatalf("%s %+v", got.Status, got.StatusReason)
	}
}

// TestReasonWithoutErrorLinksRunbook: a fault without an error is named by
// its code, and an unknown code, which has no section, gets no pointer.
func TestReasonWithoutErrorLinksRunbook(t *testing.T) {
	h := newHarness(t, Active, time.Hour)
	_ = h.s.Fault(codes.SourceUnavailable, nil)
	if got, want := h.s.View().StatusReason.Message, fmt.Sprintf("SOURCE_UNAVAILABLE (see %s)", runbookSections[codes.SourceUnavailable]); got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if got := withRunbook("SOMETHING_NEW", "news"); got != "news" {
		t.Errorf("unknown code: message %q, want it unchanged", got)
	}
}
