package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/cdcd-dev/cdcd/codes"
)

// awsCodes is the one table from AWS error codes to status-reason codes
// (docs/lifecycle.md#codes). It is keyed by the code string so that the typed kinesis
// errors, a proxy's untyped smithy.APIError and the per-record ErrorCode of
// a PutRecordsResultEntry all classify the same way. InvalidArgumentException
// and ValidationException are not here: they mean an oversize record only
// when their message says so (see classifyCode).
var awsCodes = map[string]codes.Code{
	"ProvisionedThroughputExceededException": codes.KinesisThroughputExceeded,
	"LimitExceededException":                 codes.KinesisThroughputExceeded,
	"KMSThrottlingException":                 codes.KinesisThroughputExceeded,
	"ThrottlingException":                    codes.KinesisThroughputExceeded,
	"AccessDeniedException":                  codes.KinesisAccessDenied,
	"KMSAccessDeniedException":               codes.KinesisKMSAccessDenied,
	"KMSDisabledException":                   codes.KinesisKMSAccessDenied,
	"KMSInvalidStateException":               codes.KinesisKMSAccessDenied,
	"KMSNotFoundException":                   codes.KinesisKMSAccessDenied,
	"KMSOptInRequired":                       codes.KinesisKMSAccessDenied,
	"ResourceNotFoundException":              codes.KinesisStreamNotFound,
	"InternalFailure":                        codes.InternalError,
	"InternalFailureException":               codes.InternalError,
}

// typed lists the modelled kinesis errors matched with errors.As before the
// code table is consulted. The two agree (a typed error's ErrorCode is its
// name); the list documents which SDK types the sink expects, and keeps
// working if a type ever overrides its code.
var typed = []struct {
	is   func(error) bool
	code codes.Code
}{
	{as[*types.ProvisionedThroughputExceededException], codes.KinesisThroughputExceeded},
	{as[*types.LimitExceededException], codes.KinesisThroughputExceeded},
	{as[*types.KMSThrottlingException], codes.KinesisThroughputExceeded},
	{as[*types.AccessDeniedException], codes.KinesisAccessDenied},
	{as[*types.KMSAccessDeniedException], codes.KinesisKMSAccessDenied},
	{as[*types.KMSDisabledException], codes.KinesisKMSAccessDenied},
	{as[*types.KMSInvalidStateException], codes.KinesisKMSAccessDenied},
	{as[*types.KMSNotFoundException], codes.KinesisKMSAccessDenied},
	{as[*types.KMSOptInRequired], codes.KinesisKMSAccessDenied},
	{as[*types.ResourceNotFoundException], codes.KinesisStreamNotFound},
}

func as[T error](err error) bool {
	var t T
	return errors.As(err, &t)
}

// Classify maps an error from PutRecords (whole call or per record), from
// the sink's own size check, or from DescribeStreamSummary to a
// status-reason code. Anything it does not recognise is INTERNAL_ERROR.
func Classify(err error) codes.Code {
	if err == nil {
		return ""
	}
	var over *OversizeError
	if errors.As(err, &over) {
		return codes.KinesisOversizeRecord
	}
	// Credentials come from sts:AssumeRole inside the Kinesis call; an
	// AccessDenied from STS is the role's fault, not the stream's.
	if op := innerOperation(err, "STS"); op != nil {
		var api smithy.APIError
		if errors.As(op, &api) && strings.HasPrefix(normalize(api.ErrorCode()), "AccessDenied") {
			return codes.RoleAccessDenied
		}
		return codes.InternalError
	}
	for _, t := range typed {
		if t.is(err) {
			return t.code
		}
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return classifyCode(api.ErrorCode(), api.ErrorMessage())
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() == 413 {
		return codes.KinesisOversizeRecord
	}
	return codes.InternalError
}

// classifyCode classifies one AWS error code with its message; it serves
// whole-call errors and per-record ErrorCode values alike.
func classifyCode(code, msg string) codes.Code {
	code = normalize(code)
	if c, ok := awsCodes[code]; ok {
		return c
	}
	if (code == "InvalidArgumentException" || code == "ValidationException") && mentionsSize(msg) {
		return codes.KinesisOversizeRecord
	}
	return codes.InternalError
}

// mentionsSize recognises Kinesis's ways of saying a record is too big:
// "...size..." from InvalidArgumentException, and the validation message
// "Member must have length less than or equal to 1048576" on Data.
func mentionsSize(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "size") || strings.Contains(m, "too large") ||
		strings.Contains(m, "length less than or equal")
}

// normalize strips what proxies and older protocols wrap around a code:
// "com.amazonaws.kinesis#Code" and "Code:http://internal.amazon.com/...".
func normalize(code string) string {
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	if i := strings.IndexByte(code, ':'); i >= 0 {
		code = code[:i]
	}
	return code
}

// innerOperation finds a smithy.OperationError of the given service nested
// anywhere in err's chain (credential providers call STS inside the Kinesis
// operation, so the outer operation error is always Kinesis's).
func innerOperation(err error, service string) *smithy.OperationError {
	for err != nil {
		if op, ok := err.(*smithy.OperationError); ok && op.Service() == service {
			return op
		}
		err = errors.Unwrap(err)
	}
	return nil
}

// transient reports whether a code may clear by itself: throttling and
// internal failures are retried for Config.ImpairAfter before they are
// reported; every other code is reported at its first occurrence.
func transient(c codes.Code) bool {
	return c == codes.KinesisThroughputExceeded || c == codes.InternalError
}

// severity orders codes when one attempt fails in several ways; the most
// actionable is reported.
func severity(c codes.Code) int {
	switch c {
	case "":
		return 0
	case codes.InternalError:
		return 1
	case codes.KinesisThroughputExceeded:
		return 2
	default:
		return 3
	}
}

// OversizeError is the sink's refusal to send a record larger than the
// stream's maximum record size; Classify maps it to KINESIS_OVERSIZE_RECORD.
// The record stays queued (and holds Delivered) until the process restarts
// with a larger limit: a change is never dropped.
type OversizeError struct {
	Size, Limit int
}

func (e *OversizeError) Error() string {
	return fmt.Sprintf("record of %d bytes (data and partition key) exceeds the stream's limit of %d", e.Size, e.Limit)
}

// RecordError reports entries that a successful PutRecords call did not
// accept. It implements smithy.APIError so Classify treats a per-record
// ErrorCode exactly as the same code on a whole call.
type RecordError struct {
	Code    string // the ErrorCode of the first failed entry with the most severe code
	Message string
	Failed  int // entries that failed in this attempt
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("put records: %d records failed: %s: %s", e.Failed, e.Code, e.Message)
}
func (e *RecordError) ErrorCode() string             { return e.Code }
func (e *RecordError) ErrorMessage() string          { return e.Message }
func (e *RecordError) ErrorFault() smithy.ErrorFault { return smithy.FaultUnknown }

// codeLabel is the metrics label for an error: a known AWS code, or one of a
// few fixed words, so a misbehaving proxy cannot blow up label cardinality.
func codeLabel(err error) string {
	var over *OversizeError
	var api smithy.APIError
	switch {
	case errors.As(err, &over):
		return "RecordTooLarge"
	case errors.As(err, &api):
		return knownCode(api.ErrorCode())
	case errors.Is(err, context.DeadlineExceeded):
		return "Timeout"
	default:
		return "Other"
	}
}

func knownCode(code string) string {
	code = normalize(code)
	if _, ok := awsCodes[code]; ok || code == "InvalidArgumentException" || code == "ValidationException" {
		return code
	}
	return "Other"
}
