package state

// Status is a stream's lifecycle state (docs/lifecycle.md#states, DSQL
// StreamStatus).
type Status string

const (
	Creating Status = "CREATING"
	Active   Status = "ACTIVE"
	Impaired Status = "IMPAIRED"
	Failed   Status = "FAILED"
	Deleting Status = "DELETING"
	Deleted  Status = "DELETED"
)
