// Package codes holds the status-reason codes of a stream (DSQL's codes and
// cdcd's SOURCE_ ones, docs/lifecycle.md#codes). It is a leaf: the
// components that detect a condition (sink, rolecreds, atrest, capture)
// name it here without importing the lifecycle machinery in state.
package codes

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
)

// Fatal reports whether the code fails a stream at once rather than
// impairing it.
func (c Code) Fatal() bool {
	return c == KinesisStreamNotFound || c == SourceSlotLost
}
