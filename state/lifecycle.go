// Package state owns a stream's lifecycle (docs/lifecycle.md#codes): the transition table,
// the concurrency-safe Stream that a pipeline reports into, and the durable
// per-stream file that carries the definition, the status and the
// checkpoint across restarts.
package state

import (
	"errors"
	"fmt"

	"github.com/cdcd-dev/cdcd/codes"
)

// Event is something that happened to a stream. Events, not statuses, are
// what pipelines and the control plane report; the table below decides what
// each one does in each status.
type Event int

const (
	// EventCreated: the slot, publication and target checks are done.
	EventCreated Event = iota + 1
	// EventFault: a failure whose code a retry can clear (throttling, an
	// unreachable source, an internal error, an oversize record).
	EventFault
	// EventDenied: a permission or key the stream needs is refused
	// (codes.Code.Denial).
	EventDenied
	// EventFatalFault: a failure whose code is Fatal (the target stream or
	// the slot is gone), so retrying cannot help.
	EventFatalFault
	// EventRecovered: an owner reported success and no cause is left
	// outstanding.
	EventRecovered
	// EventCleared: an owner reported success and cleared its causes while
	// another owner's are still outstanding.
	EventCleared
	// EventLagExceeded: the oldest undelivered change is older than the
	// failure threshold.
	EventLagExceeded
	// EventDelete: an operator asked for deletion.
	EventDelete
	// EventDeleted: teardown finished.
	EventDeleted
)

// Events lists every event, in declaration order, for exhaustive tests and
// documentation.
func Events() []Event {
	return []Event{EventCreated, EventFault, EventDenied, EventFatalFault, EventRecovered,
		EventCleared, EventLagExceeded, EventDelete, EventDeleted}
}

// Statuses lists every status in lifecycle order.
func Statuses() []Status {
	return []Status{Creating, Active, Impaired, Failed, Deleting, Deleted}
}

func (e Event) String() string {
	switch e {
	case EventCreated:
		return "Created"
	case EventFault:
		return "Fault"
	case EventDenied:
		return "Denied"
	case EventFatalFault:
		return "FatalFault"
	case EventRecovered:
		return "Recovered"
	case EventCleared:
		return "Cleared"
	case EventLagExceeded:
		return "LagExceeded"
	case EventDelete:
		return "Delete"
	case EventDeleted:
		return "Deleted"
	}
	return fmt.Sprintf("Event(%d)", int(e))
}

// FaultEvent is the event a failure with code c raises. Splitting the fault
// by Code.Fatal and Code.Denial keeps the whole lifecycle in one table
// keyed by event alone.
func FaultEvent(c codes.Code) Event {
	switch {
	case c.Fatal():
		return EventFatalFault
	case c.Denial():
		return EventDenied
	}
	return EventFault
}

// transitions is the whole lifecycle. A missing entry is a rejected event. An
// entry that maps a status to itself is accepted without a status change
// (a repeated fault while IMPAIRED, a success while ACTIVE or CREATING, a
// repeated delete) so that pipelines can report every outcome without first
// reading the status, which would race with the control plane anyway.
// Cleared is missing from ACTIVE, which holds no causes. CREATING holds
// the causes that keep it from becoming ACTIVE, without changing status
// (a cdcd extension, docs/lifecycle.md#status-reason).
//
// It is a read-only lookup table, not mutable global state.
var transitions = map[Status]map[Event]Status{
	Creating: {
		EventCreated: Active,
		// A fault a retry can clear leaves the stream CREATING while the
		// pipeline retries; nothing is delivered yet that it could impair.
		EventFault: Creating,
		// docs/lifecycle.md#codes: key or permission loss before creation
		// finishes sends the stream straight to FAILED with the code.
		EventDenied:     Failed,
		EventFatalFault: Failed,
		EventRecovered:  Creating,
		EventCleared:    Creating,
		EventDelete:     Deleting,
	},
	Active: {
		EventFault:      Impaired,
		EventDenied:     Impaired,
		EventFatalFault: Failed,
		EventRecovered:  Active,
		EventDelete:     Deleting,
	},
	Impaired: {
		EventFault:       Impaired,
		EventDenied:      Impaired,
		EventFatalFault:  Failed,
		EventRecovered:   Active,
		EventCleared:     Impaired,
		EventLagExceeded: Failed,
		EventDelete:      Deleting,
	},
	// FAILED is terminal: the stream must be deleted and created again.
	Failed: {
		EventDelete: Deleting,
	},
	Deleting: {
		EventDelete:  Deleting,
		EventDeleted: Deleted,
	},
	Deleted: {},
}

// ErrInvalidTransition is matched (errors.Is) by every *TransitionError.
var ErrInvalidTransition = errors.New("invalid transition")

// TransitionError reports an event that the lifecycle rejects in a status.
type TransitionError struct {
	From  Status
	Event Event
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("stream is %s: %s not allowed", e.From, e.Event)
}

// Is makes errors.Is(err, ErrInvalidTransition) hold.
func (e *TransitionError) Is(target error) bool { return target == ErrInvalidTransition }

// Next is the status after ev in status from, or a *TransitionError.
func Next(from Status, ev Event) (Status, error) {
	to, ok := transitions[from][ev]
	if !ok {
		return from, &TransitionError{From: from, Event: ev}
	}
	return to, nil
}

// Valid reports whether s is one of the six lifecycle statuses.
func (s Status) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// HasReason reports whether a stream in status s carries a statusReason
// (docs/lifecycle.md#codes: only IMPAIRED and FAILED do).
func (s Status) HasReason() bool { return s == Impaired || s == Failed }

// HoldsReason reports whether a stream in status s may carry a
// statusReason: IMPAIRED and FAILED always do, and CREATING does while a
// cause holds it there (cdcd's extension, docs/lifecycle.md#status-reason).
func (s Status) HoldsReason() bool { return s == Creating || s.HasReason() }
