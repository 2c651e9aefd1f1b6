// Package codes holds the status-reason codes of a stream (DSQL's codes and
// cdcd's SOURCE_ ones, docs/lifecycle.md#codes), the component that owns
// each, and how severe each is. It is a leaf: the components that detect a
// condition (sink, rolecreds, atrest, capture) name it here without
// importing the lifecycle machinery in state.
package codes

import "strings"

// Code is a status-reason code. The DSQL codes come first; the SOURCE_ codes
// are cdcd's own for a source that DSQL never loses.
type Code string

const (
	KinesisThroughputExceeded Code = "KINESIS_THROUGHPUT_EXCEEDED"
	KinesisStreamNotFound     Code = "KINESIS_STREAM_NOT_FOUND"
	RoleAccessDenied          Code = "ROLE_ACCESS_DENIED"
	KinesisAccessDenied       Code = "KINESIS_ACCESS_DENIED"
	KinesisKMSAccessDenied    Code = "KINESIS_KMS_ACCESS_DENIED"
	KinesisOversizeRecord     Code = "KINESIS_OVERSIZE_RECORD"
	ClusterCMKInaccessible    Code = "CLUSTER_CMK_INACCESSIBLE"
	InternalError             Code = "INTERNAL_ERROR"
	SourceUnavailable         Code = "SOURCE_UNAVAILABLE"
	SourceSlotLost            Code = "SOURCE_SLOT_LOST"
	SourceTableChanged        Code = "SOURCE_TABLE_CHANGED"
	SpillFull                 Code = "SPILL_FULL"
	// SourcePrerequisiteUnmet: the source lacks something the stream
	// needs that only an operator can provide (a setting, a grant, a
	// table's replica identity); cdcd retries until it is there.
	SourcePrerequisiteUnmet Code = "SOURCE_PREREQUISITE_UNMET"
)

// Fatal reports whether the code fails a stream at once rather than
// impairing it.
func (c Code) Fatal() bool {
	return c == KinesisStreamNotFound || c == SourceSlotLost
}

// Denial reports whether the code says that a permission or a key the
// stream needs is refused. Nothing has been delivered while a stream is
// being created, so such a refusal then fails it (docs/lifecycle.md#codes);
// a code that a retry can clear by itself (throttling, an unreachable
// source, an internal error) never does.
func (c Code) Denial() bool {
	switch c {
	case RoleAccessDenied, KinesisAccessDenied, KinesisKMSAccessDenied, ClusterCMKInaccessible:
		return true
	}
	return false
}

// Owner is the component that reports a code and, once it has evidence
// that the condition is gone, clears it: only the owner can tell.
type Owner string

const (
	// OwnerSink delivers to Kinesis: the KINESIS_ codes.
	OwnerSink Owner = "sink"
	// OwnerRole provides the stream role's credentials: ROLE_ACCESS_DENIED.
	OwnerRole Owner = "role"
	// OwnerClusterKey checks the cluster key: CLUSTER_CMK_INACCESSIBLE.
	OwnerClusterKey Owner = "cluster-key"
	// OwnerCapture reads the source: the SOURCE_ codes.
	OwnerCapture Owner = "capture"
	// OwnerSpill stores transactions past the memory budget: SPILL_FULL.
	OwnerSpill Owner = "spill"
	// OwnerPipeline runs the stream: INTERNAL_ERROR and any code not
	// listed here.
	OwnerPipeline Owner = "pipeline"
)

// Owners lists every owner.
func Owners() []Owner {
	return []Owner{OwnerSink, OwnerRole, OwnerClusterKey, OwnerCapture, OwnerSpill, OwnerPipeline}
}

// Owner is the component that owns c.
func (c Code) Owner() Owner {
	switch c {
	case KinesisThroughputExceeded, KinesisStreamNotFound, KinesisAccessDenied, KinesisKMSAccessDenied, KinesisOversizeRecord:
		return OwnerSink
	case RoleAccessDenied:
		return OwnerRole
	case ClusterCMKInaccessible:
		return OwnerClusterKey
	case SourceUnavailable, SourceSlotLost, SourcePrerequisiteUnmet, SourceTableChanged:
		return OwnerCapture
	case SpillFull:
		return OwnerSpill
	}
	return OwnerPipeline
}

// Severity orders codes for the statusReason of a stream with several
// causes outstanding: the most severe is shown. Higher is more severe; every
// code has its own rank, so the shown reason never depends on the order in
// which causes arrived.
//
// The order puts first what the operator must act on first:
//   - fatal codes: the stream is over;
//   - the cluster key, then the role, Kinesis access and the target's key:
//     denials never clear by themselves, and each blocks what follows it
//     (nothing is delivered while the cluster key is unusable; without the
//     role no Kinesis call is made; without stream access the target key is
//     never used);
//   - a source prerequisite that is not met, which, like a denial, only
//     an operator can fix, and which stops capture;
//   - an oversize record, which stalls delivery until the stream's record
//     limit is raised;
//   - a table of the stream that was dropped, renamed or lost its primary
//     key: only a change of the stream's configuration settles it;
//   - a full spill directory, which stalls capture until it has room;
//   - an unavailable source: nothing new is captured, though it often
//     comes back by itself;
//   - throttling: delivery goes on, only slower;
//   - INTERNAL_ERROR last: it says the least, and a specific code beside it
//     is the better explanation.
func (c Code) Severity() int {
	switch c {
	case KinesisStreamNotFound:
		return 13
	case SourceSlotLost:
		return 12
	case ClusterCMKInaccessible:
		return 11
	case RoleAccessDenied:
		return 10
	case KinesisAccessDenied:
		return 9
	case KinesisKMSAccessDenied:
		return 8
	case SourcePrerequisiteUnmet:
		return 7
	case KinesisOversizeRecord:
		return 6
	case SourceTableChanged:
		return 5
	case SpillFull:
		return 4
	case SourceUnavailable:
		return 3
	case KinesisThroughputExceeded:
		return 2
	case InternalError:
		return 1
	}
	return 0 // a code this cdcd does not know ranks lowest
}

// All lists every code, most severe first.
func All() []Code {
	return []Code{KinesisStreamNotFound, SourceSlotLost, ClusterCMKInaccessible, RoleAccessDenied,
		KinesisAccessDenied, KinesisKMSAccessDenied, SourcePrerequisiteUnmet, KinesisOversizeRecord, SourceTableChanged, SpillFull, SourceUnavailable,
		KinesisThroughputExceeded, InternalError}
}

// Runbook is the section of docs/runbook.md that says what to check and do
// about c, named after the code; empty for a code this cdcd does not know,
// which has no section.
func (c Code) Runbook() string {
	if c.Severity() == 0 {
		return ""
	}
	return "docs/runbook.md#" + strings.ToLower(string(c))
}
