package state

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cdcd-dev/cdcd/codes"
)

// reject marks an event the lifecycle refuses in a status.
const reject Status = "reject"

// wantNext is the lifecycle written out cell by cell, independently of the
// transitions map, so that a change to either shows up here.
var wantNext = map[Status]map[Event]Status{
	Creating: {
		EventCreated: Active, EventFault: Creating, EventDenied: Failed, EventFatalFault: Failed,
		EventRecovered: Creating, EventCleared: Creating, EventLagExceeded: reject, EventDelete: Deleting, EventDeleted: reject,
	},
	Active: {
		EventCreated: reject, EventFault: Impaired, EventDenied: Impaired, EventFatalFault: Failed,
		EventRecovered: Active, EventCleared: reject, EventLagExceeded: reject, EventDelete: Deleting, EventDeleted: reject,
	},
	Impaired: {
		EventCreated: reject, EventFault: Impaired, EventDenied: Impaired, EventFatalFault: Failed,
		EventRecovered: Active, EventCleared: Impaired, EventLagExceeded: Failed, EventDelete: Deleting, EventDeleted: reject,
	},
	Failed: {
		EventCreated: reject, EventFault: reject, EventDenied: reject, EventFatalFault: reject,
		EventRecovered: reject, EventCleared: reject, EventLagExceeded: reject, EventDelete: Deleting, EventDeleted: reject,
	},
	Deleting: {
		EventCreated: reject, EventFault: reject, EventDenied: reject, EventFatalFault: reject,
		EventRecovered: reject, EventCleared: reject, EventLagExceeded: reject, EventDelete: Deleting, EventDeleted: Deleted,
	},
	Deleted: {
		EventCreated: reject, EventFault: reject, EventDenied: reject, EventFatalFault: reject,
		EventRecovered: reject, EventCleared: reject, EventLagExceeded: reject, EventDelete: reject, EventDeleted: reject,
	},
}

func TestNextEveryStatusEveryEvent(t *testing.T) {
	if got := len(Statuses()) * len(Events()); got != 54 {
		t.Fatalf("%d cells, want 6 statuses x 9 events", got)
	}
	for _, from := range Statuses() {
		for _, ev := range Events() {
			want, ok := wantNext[from][ev]
			if !ok {
				t.Fatalf("test table lacks %s/%s", from, ev)
			}
			t.Run(fmt.Sprintf("%s/%s", from, ev), func(t *testing.T) {
				got, err := Next(from, ev)
				if want == reject {
					var te *TransitionError
					if !errors.Is(err, ErrInvalidTransition) || !errors.As(err, &te) {
						t.Fatalf("Next = %s, %v; want a *TransitionError", got, err)
					}
					if te.From != from || te.Event != ev || got != from {
						t.Fatalf("rejection = %s, %+v", got, te)
					}
					return
				}
				if err != nil || got != want {
					t.Fatalf("Next = %s, %v; want %s", got, err, want)
				}
			})
		}
	}
}

func TestFailedIsTerminalButDeletable(t *testing.T) {
	for _, ev := range Events() {
		to, err := Next(Failed, ev)
		if ev == EventDelete {
			if err != nil || to != Deleting {
				t.Errorf("FAILED + Delete = %s, %v", to, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("FAILED + %s = %s, want rejection", ev, to)
		}
	}
}

func TestFaultEvent(t *testing.T) {
	tests := []struct {
		code codes.Code
		want Event
	}{
		{codes.KinesisThroughputExceeded, EventFault},
		{codes.KinesisStreamNotFound, EventFatalFault},
		{codes.RoleAccessDenied, EventDenied},
		{codes.KinesisAccessDenied, EventDenied},
		{codes.KinesisKMSAccessDenied, EventDenied},
		{codes.KinesisOversizeRecord, EventFault},
		{codes.ClusterCMKInaccessible, EventDenied},
		{codes.InternalError, EventFault},
		{codes.SourceUnavailable, EventFault},
		{codes.SourceSlotLost, EventFatalFault},
	}
	for _, tt := range tests {
		t.Run(string(tt.code), func(t *testing.T) {
			if got := FaultEvent(tt.code); got != tt.want {
				t.Errorf("FaultEvent(%s) = %s, want %s", tt.code, got, tt.want)
			}
		})
	}
}

func TestStatusHelpers(t *testing.T) {
	for _, s := range Statuses() {
		if !s.Valid() {
			t.Errorf("%s not Valid", s)
		}
		if want := s == Impaired || s == Failed; s.HasReason() != want {
			t.Errorf("%s.HasReason() = %v", s, !want)
		}
	}
	if Status("PAUSED").Valid() {
		t.Error("PAUSED is Valid")
	}
}
