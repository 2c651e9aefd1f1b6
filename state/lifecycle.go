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
	// EventFault: a delivery or source failure with a non-fatal code.
	EventFault
	// EventFatalFault: a failure whose code is Fatal (the target stream or
	// the slot is gone), so retrying cannot help.
	EventFatalFault
	// EventRecovered: a delivery succeeded.
	EventRecovered
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
	return []Event{EventCreated, EventFault, EventFatalFault, EventRecovered,
		EventLagExceeded, EventDelete, EventDeleted}
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
	case EventFatalFault:
		return "FatalFault"
	case EventRecovered:
		return "Recovered"
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
// by Code.Fatal keeps the whole lifecycle in one table keyed by event alone.
func FaultEvent(c codes.Code) Event {
	if c.Fatal() {
		return EventFatalFault
	}
	return EventFault
}

// transitions is the whole lifecycle. A missing entry is a rejected event. An
// entry that maps a status to itself is accepted without a status change
// (a repeated fault while IMPAIRED, a success while ACTIVE, a repeated
// delete) so that pipelines can report every outcome without first reading
// the status, which would race with the control plane anyway.
//
// It is a read-only lookup table, not mutable global state.
var transitions = map[Status]map[Event]Status{
	Creating: {
		EventCreated: Active,
		// docs/lifecycle.md#codes: key or permission loss before creation finishes sends
		// the stream straight to FAILED with the code; there is nothing
		// delivered yet to retry.
		EventFault:      Failed,
		EventFatalFault: Failed,
		EventDelete:     Deleting,
	},
	Active: {
		EventFault:      Impaired,
		EventFatalFault: Failed,
		EventRecovered:  Active,
		EventDelete:     Deleting,
	},
	Impaired: {
		EventFault:       Impaired,
		EventFatalFault:  Failed,
		EventRecovered:   Active,
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
