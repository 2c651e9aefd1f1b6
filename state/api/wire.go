package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/ident"
	"github.com/cdcd-dev/cdcd/state"
)

// This file is the wire format, taken from the AWS SDK for Go v2
// service/dsql v1.14.2 serializers and deserializers: camelCase members,
// timestamps as epoch seconds in a JSON number, the targetDefinition union
// as {"kinesis":{...}}, errors named by the X-Amzn-Errortype header with the
// members in the body.

// epochSeconds is a timestamp as the SDK reads it: a JSON number of seconds,
// with the milliseconds that smithy's ParseEpochSeconds keeps.
type epochSeconds time.Time

func (t epochSeconds) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return fmt.Appendf(nil, "%d.%03d", ms/1000, ms%1000), nil
}

type kinesisTarget struct {
	StreamARN string `json:"streamArn"`
	RoleARN   string `json:"roleArn"`
}

// targetDefinition is a union: exactly one member may be set, or the SDK
// decodes an UnknownUnionMember. cdcd's extra target details therefore live
// in a separate top-level "target" member.
type targetDefinition struct {
	Kinesis *kinesisTarget `json:"kinesis"`
}

type createStreamBody struct {
	ClientToken      *string           `json:"clientToken"`
	Format           string            `json:"format"`
	Ordering         string            `json:"ordering"`
	Tags             map[string]string `json:"tags"`
	TargetDefinition *targetDefinition `json:"targetDefinition"`
}

// streamSummary is CreateStream's and DeleteStream's output and a
// ListStreams entry (DSQL StreamSummary); creation adds format and ordering.
type streamSummary struct {
	Arn               string       `json:"arn"`
	ClusterIdentifier string       `json:"clusterIdentifier"`
	StreamIdentifier  string       `json:"streamIdentifier"`
	CreationTime      epochSeconds `json:"creationTime"`
	Status            state.Status `json:"status"`
	Format            string       `json:"format,omitempty"`
	Ordering          string       `json:"ordering,omitempty"`
}

type statusReason struct {
	Error     codes.Code   `json:"error"`
	UpdatedAt epochSeconds `json:"updatedAt"`
	// Message is cdcd's; the SDK ignores members it does not know.
	Message string `json:"message,omitempty"`
}

type sourceJSON struct {
	Slot             string  `json:"slot,omitempty"`
	Publication      string  `json:"publication,omitempty"`
	ConfirmedLSN     string  `json:"confirmedLsn"`
	RetainedWALBytes int64   `json:"retainedWalBytes"`
	WALStatus        string  `json:"walStatus,omitempty"`
	LagSeconds       float64 `json:"lagSeconds"`
	// LagBytes is absent, not 0, while unknown.
	LagBytes *int64        `json:"lagBytes,omitempty"`
	Snapshot *snapshotJSON `json:"snapshot,omitempty"`
}

type snapshotJSON struct {
	Done          bool   `json:"done"`
	Table         string `json:"table,omitempty"`
	TablesDone    int    `json:"tablesDone"`
	Tables        int    `json:"tables"`
	Rows          int64  `json:"rows"`
	EstimatedRows int64  `json:"estimatedRows"`
}

type targetJSON struct {
	EncryptionType string `json:"encryptionType,omitempty"`
	KeyID          string `json:"keyId,omitempty"`
}

type getStreamOutput struct {
	streamSummary
	StatusReason     *statusReason     `json:"statusReason,omitempty"`
	Tags             map[string]string `json:"tags"`
	TargetDefinition targetDefinition  `json:"targetDefinition"`
	Source           *sourceJSON       `json:"source,omitempty"`
	Target           *targetJSON       `json:"target,omitempty"`
}

type listStreamsOutput struct {
	Streams   []streamSummary `json:"streams"`
	NextToken *string         `json:"nextToken,omitempty"`
}

func summary(v StreamView, withFormat bool) streamSummary {
	d := v.Definition
	s := streamSummary{
		Arn: d.ARN, ClusterIdentifier: d.ClusterID, StreamIdentifier: d.StreamID,
		CreationTime: epochSeconds(d.CreationTime), Status: v.Status,
	}
	if withFormat {
		s.Format, s.Ordering = d.Format, d.Ordering
	}
	return s
}

func getOutput(v StreamView) getStreamOutput {
	d := v.Definition
	out := getStreamOutput{
		streamSummary: summary(v, true),
		Tags:          d.Tags,
		TargetDefinition: targetDefinition{Kinesis: &kinesisTarget{
			StreamARN: d.Target.StreamARN, RoleARN: d.Target.RoleARN,
		}},
		Source: &sourceJSON{ConfirmedLSN: state.FormatLSN(v.Checkpoint.LSN), LagSeconds: v.Lag.Seconds()},
	}
	if out.Tags == nil {
		out.Tags = map[string]string{}
	}
	if r := v.StatusReason; r != nil {
		out.StatusReason = &statusReason{Error: r.Code, UpdatedAt: epochSeconds(r.UpdatedAt), Message: r.Message}
	}
	if s := v.Source; s != nil {
		out.Source.Slot, out.Source.Publication = s.Slot, s.Publication
		out.Source.RetainedWALBytes, out.Source.WALStatus = s.RetainedWALBytes, s.WALStatus
		out.Source.LagBytes = s.LagBytes
		if p := s.Snapshot; p != nil {
			out.Source.Snapshot = &snapshotJSON{Done: p.Done, Table: p.Table, TablesDone: p.TablesDone, Tables: p.Tables,
				Rows: p.Rows, EstimatedRows: p.EstimatedRows}
		}
		if s.ConfirmedLSN != 0 {
			out.Source.ConfirmedLSN = state.FormatLSN(s.ConfirmedLSN)
		}
	}
	if t := v.TargetInfo; t != nil {
		out.Target = &targetJSON{EncryptionType: t.EncryptionType, KeyID: t.KeyID}
	}
	return out
}

// pageToken is where a ListStreams page ended, bound to its cluster. It is
// a position, not an index, so streams created or deleted between pages
// neither repeat nor hide the ones that stay.
type pageToken struct {
	Cluster   string `json:"c"`
	CreatedNs int64  `json:"t"`
	Stream    string `json:"s"`
}

func (p pageToken) encode() string {
	b, _ := json.Marshal(p) // plain struct: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodePageToken(s, cluster string) (pageToken, error) {
	var p pageToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &p)
	}
	if err != nil || p.Cluster != cluster || !ident.ValidID(p.Stream) {
		return p, &ValidationError{Fields: []FieldError{{Name: "nextToken", Message: "not a token from ListStreams on this cluster"}}}
	}
	return p, nil
}

func (p pageToken) before(d state.Definition) bool {
	return state.Less(state.Definition{CreationTime: time.Unix(0, p.CreatedNs), StreamID: p.Stream}, d)
}

// awsError is an error as the SDK decodes it: Type goes in the
// X-Amzn-Errortype header and selects the typed error; Body holds its
// members.
type awsError struct {
	Status     int
	Type       string
	Body       map[string]any
	RetryAfter int
}

// toAWS maps a Controller or server error to its AWS error. internal
// reports whether the cause must be logged because the client only sees a
// generic message.
func toAWS(err error) (e awsError, internal bool) {
	var (
		ve *ValidationError
		ce *ConflictError
		ad *AccessDeniedError
		qe *QuotaError
		nf *NotFoundError
	)
	switch {
	case errors.As(err, &ve):
		reason := ve.Reason
		if reason == "" {
			reason = "fieldValidationFailed"
		}
		fields := make([]map[string]string, len(ve.Fields))
		for i, f := range ve.Fields {
			fields[i] = map[string]string{"name": f.Name, "message": f.Message}
		}
		return awsError{Status: http.StatusBadRequest, Type: "ValidationException",
			Body: map[string]any{"message": ve.Error(), "reason": reason, "fieldList": fields}}, false
	case errors.As(err, &nf):
		return awsError{Status: http.StatusNotFound, Type: "ResourceNotFoundException",
			Body: map[string]any{"message": nf.Error(), "resourceId": nf.ID, "resourceType": nf.Type}}, false
	case errors.Is(err, ErrNotFound), errors.Is(err, state.ErrNotFound):
		return awsError{Status: http.StatusNotFound, Type: "ResourceNotFoundException",
			Body: map[string]any{"message": err.Error()}}, false
	case errors.As(err, &ce):
		return awsError{Status: http.StatusConflict, Type: "ConflictException",
			Body: map[string]any{"message": ce.Message, "resourceId": ce.ResourceID, "resourceType": ce.ResourceType}}, false
	case errors.As(err, &ad):
		return awsError{Status: http.StatusForbidden, Type: "AccessDeniedException",
			Body: map[string]any{"message": ad.Message}}, false
	case errors.As(err, &qe):
		return awsError{Status: http.StatusPaymentRequired, Type: "ServiceQuotaExceededException",
			Body: map[string]any{"message": qe.Message, "resourceId": qe.ResourceID, "resourceType": qe.ResourceType,
				"serviceCode": "cdcd", "quotaCode": qe.QuotaCode}}, false
	case errors.Is(err, context.DeadlineExceeded):
		// The daemon was too slow (a disk, a lock): retryable, and the
		// SDK retries throttling by default.
		return awsError{Status: http.StatusTooManyRequests, Type: "ThrottlingException", RetryAfter: 1,
			Body: map[string]any{"message": "request timed out inside cdcd; retry", "serviceCode": "cdcd"}}, true
	}
	return awsError{Status: http.StatusInternalServerError, Type: "InternalServerException",
		Body: map[string]any{"message": "internal error; the cdcd log has the detail"}}, true
}

func writeAWSError(w http.ResponseWriter, e awsError) {
	w.Header().Set("X-Amzn-Errortype", e.Type)
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status, e.Body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error (an unmarshalable type) gets here.
		http.Error(w, `{"message":"encode response"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
