// Package api is cdcd's control plane: the Aurora DSQL stream operations
// (CreateStream, GetStream, ListStreams, DeleteStream) in DSQL's REST JSON
// protocol, so that the AWS SDK's dsql client works unchanged against cdcd,
// plus /metrics, /healthz and /readyz. The server translates HTTP to calls on
// a Controller, which the daemon implements; pipeline.Supervisor is the reference
// Controller.
//
// Where DSQL's documentation is silent the choices are cdcd's:
//   - a client token reused with a different request is ConflictException;
//   - a role ARN outside the configured allow-list is AccessDeniedException,
//     as a failed iam:PassRole would be in AWS;
//   - DeleteStream's client token is accepted and not recorded, because
//     deleting a DELETING stream already answers the same;
//   - a deleted stream reads as ResourceNotFoundException as soon as it is
//     DELETED, which is what the SDK's StreamNotExists waiter waits for;
//   - GetStream adds "source", "target" and statusReason.message, members
//     the SDK ignores.
package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cdcd-dev/cdcd/ident"
	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/state"
)

// Controller is what the server needs from the daemon. Errors are mapped to
// AWS error types: *ValidationError → ValidationException (400),
// *AccessDeniedError → AccessDeniedException (403), ErrNotFound (or
// state.ErrNotFound) → ResourceNotFoundException (404), *ConflictError →
// ConflictException (409), *QuotaError → ServiceQuotaExceededException
// (402); anything else is an InternalServerException (500) whose detail is
// logged, not returned.
type Controller interface {
	// CreateStream checks what the server cannot (the cluster exists, the
	// role is allowed, the client token) and creates the stream in
	// CREATING, or returns the stream an earlier request with the same
	// client token created.
	CreateStream(ctx context.Context, req CreateRequest) (StreamView, error)
	GetStream(ctx context.Context, clusterID, streamID string) (StreamView, error)
	// ListStreams returns every stream of the cluster; the server sorts
	// and pages.
	ListStreams(ctx context.Context, clusterID string) ([]StreamView, error)
	// DeleteStream starts deletion and returns the stream as DELETING;
	// deleting a DELETING stream returns it unchanged.
	DeleteStream(ctx context.Context, clusterID, streamID, clientToken string) (StreamView, error)
	// Streams returns every stream of every cluster, for /readyz.
	Streams(ctx context.Context) ([]StreamView, error)
}

// CreateRequest is a decoded CreateStream request.
type CreateRequest struct {
	ClusterID   string
	ClientToken string
	Format      string
	Ordering    string
	Tags        map[string]string
	Target      state.Target
}

// StreamView is a stream as the control plane shows it: the persisted and
// live state, plus what cdcd adds to DSQL's GetStream.
type StreamView struct {
	state.View
	// Source is the replication slot's health; nil when unknown.
	Source *SourceInfo
	// TargetInfo is the Kinesis stream's encryption; nil when unknown.
	TargetInfo *TargetInfo
}

// SourceInfo is what an operator of a replication slot needs to see.
type SourceInfo struct {
	Slot         string
	Publication  string
	ConfirmedLSN uint64
	// RetainedWALBytes is how much WAL the slot holds back on the server.
	RetainedWALBytes int64
	// WALStatus is pg_replication_slots.wal_status (reserved, extended,
	// unreserved, lost).
	WALStatus string
	// LagBytes is the WAL the server had written past the stream's
	// position at the last health check; nil before a check found the
	// slot.
	LagBytes *int64
	// Snapshot is the initial snapshot's progress; nil when none ran in
	// this process.
	Snapshot *SnapshotInfo
}

// SnapshotInfo is the initial snapshot's progress.
type SnapshotInfo struct {
	Done bool
	// Table is the table being read; empty once done.
	Table      string
	TablesDone int
	Tables     int
	// Rows were read and handed to the sink so far, of an estimated
	// EstimatedRows (pg_class.reltuples; 0 when never analyzed).
	Rows          int64
	EstimatedRows int64
}

// TargetInfo is the target stream's server-side encryption.
type TargetInfo struct {
	EncryptionType string // NONE or KMS, as Kinesis reports it
	KeyID          string
}

// ErrNotFound is matched by errors for an unknown cluster or stream.
var ErrNotFound = errors.New("resource not found")

// NotFoundError names the missing resource for ResourceNotFoundException.
type NotFoundError struct {
	Type string // "cluster" or "stream"
	ID   string
}

func (e *NotFoundError) Error() string        { return fmt.Sprintf("%s %s not found", e.Type, e.ID) }
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// FieldError is one invalid request field.
type FieldError struct {
	Name    string
	Message string
}

// ValidationError is a request the server or the controller refuses as
// malformed. Reason is a DSQL ValidationExceptionReason; empty means
// "fieldValidationFailed".
type ValidationError struct {
	Reason string
	Fields []FieldError
	// Message overrides the message built from Fields.
	Message string
}

func (e *ValidationError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Name + ": " + f.Message
	}
	return strings.Join(parts, "; ")
}

// ConflictError is a request that contradicts the resource's state, e.g. a
// client token reused with different parameters, or deleting a stream that a
// configuration file manages.
type ConflictError struct {
	ResourceType string
	ResourceID   string
	Message      string
}

func (e *ConflictError) Error() string { return e.Message }

// AccessDeniedError refuses a role ARN that the configuration does not
// allow: cdcd's stand-in for iam:PassRole, whose failure AWS reports as
// AccessDeniedException.
type AccessDeniedError struct{ Message string }

func (e *AccessDeniedError) Error() string { return e.Message }

// QuotaError is a configured limit reached, e.g. streams per cluster.
type QuotaError struct {
	ResourceType string
	ResourceID   string
	QuotaCode    string
	Message      string
}

func (e *QuotaError) Error() string { return e.Message }

// Request limits, from DSQL's API model where it has one.
const (
	maxClientToken = 128
	maxTags        = 50
	maxTagKey      = 128
	maxTagValue    = 256
)

// Validate checks the request's shape; the Controller checks the rest.
func (r CreateRequest) Validate() error { return r.validate(true) }

// ValidateConfigured checks a stream from a configuration file, which may
// omit the role and write with cdcd's base identity.
func (r CreateRequest) ValidateConfigured() error { return r.validate(false) }

// validate checks the request; a stream from a configuration file may omit
// the role and write with cdcd's base identity, which the API never allows.
func (r CreateRequest) validate(roleRequired bool) error {
	var fs []FieldError
	add := func(name, format string, args ...any) {
		fs = append(fs, FieldError{Name: name, Message: fmt.Sprintf(format, args...)})
	}
	if !ident.ValidID(r.ClusterID) {
		add("clusterIdentifier", "%q is not %d characters of [a-z0-9]", r.ClusterID, ident.IDLen)
	}
	if n := len(r.ClientToken); n > maxClientToken || strings.IndexFunc(r.ClientToken, func(c rune) bool { return c < '!' || c > '~' }) >= 0 {
		add("clientToken", "want 1 to %d printable ASCII characters", maxClientToken)
	}
	if r.Format != "JSON" {
		add("format", "%q is not supported; want JSON", r.Format)
	}
	switch record.Ordering(r.Ordering) {
	case record.Unordered, record.Row:
	default:
		add("ordering", "%q: want %s or %s", r.Ordering, record.Unordered, record.Row)
	}
	if _, err := ident.ParseKinesisStreamARN(r.Target.StreamARN); err != nil {
		add("targetDefinition.kinesis.streamArn", "%q is not a Kinesis data stream ARN", r.Target.StreamARN)
	}
	if roleRequired || r.Target.RoleARN != "" {
		if _, err := ident.ParseRoleARN(r.Target.RoleARN); err != nil {
			add("targetDefinition.kinesis.roleArn", "%q is not an IAM role ARN", r.Target.RoleARN)
		}
	}
	if len(r.Tags) > maxTags {
		add("tags", "%d tags; at most %d", len(r.Tags), maxTags)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Tags)) {
		v := r.Tags[k]
		switch {
		case len(k) == 0 || len(k) > maxTagKey:
			add("tags", "key %q: want 1 to %d characters", k, maxTagKey)
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			add("tags", "key %q: the aws: prefix is reserved", k)
		case len(v) > maxTagValue:
			add("tags", "value of %q: at most %d characters", k, maxTagValue)
		}
	}
	if len(fs) > 0 {
		return &ValidationError{Fields: fs}
	}
	return nil
}
