package rolecreds

import (
	"errors"

	"github.com/aws/smithy-go"
	"github.com/cdcd-dev/cdcd/codes"
)

// Classify maps a failure to assume the stream's role to a status-reason
// code. ok is false when err did not come from assuming a role (it is not
// an *AssumeRoleError and holds no STS AssumeRole operation error), so that
// the caller can go on to classify it as a Kinesis error: a PutRecords whose
// credentials could not be retrieved carries the STS error inside the
// Kinesis operation error.
//
// STS answers AccessDenied alike for a role that does not exist, a trust
// policy that does not name the base principal, a wrong or missing external
// id and a missing sts:TagSession grant, and does not say which; all of them,
// and STS refusing the base identity's own credentials, are
// ROLE_ACCESS_DENIED: the operator must fix the role or the identity. Any
// other failure (validation, throttling, STS unavailable, network) is
// INTERNAL_ERROR.
func Classify(err error) (codes.Code, bool) {
	cause, ok := assumeRoleCause(err)
	if !ok {
		return "", false
	}
	var api smithy.APIError
	if !errors.As(cause, &api) {
		return codes.InternalError, true
	}
	switch api.ErrorCode() {
	case "AccessDenied", "AccessDeniedException":
		return codes.RoleAccessDenied, true
	case "RegionDisabledException":
		// STS is not activated for the account in this region: the role
		// cannot be assumed here until the operator activates it.
		return codes.RoleAccessDenied, true
	case "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
		"IncompleteSignature", "MissingAuthenticationToken", "ExpiredToken", "ExpiredTokenException":
		// The base identity's credentials were refused.
		return codes.RoleAccessDenied, true
	default:
		return codes.InternalError, true
	}
}

// assumeRoleCause finds the part of err's chain that describes a failed
// AssumeRole. errors.As cannot be used for the STS operation error: it stops
// at the first *smithy.OperationError, which is the Kinesis one when the
// failure surfaced through a Kinesis call.
func assumeRoleCause(err error) (error, bool) {
	var are *AssumeRoleError
	if errors.As(err, &are) {
		return are.Err, true
	}
	var found error
	walk(err, func(e error) bool {
		if op, ok := e.(*smithy.OperationError); ok && op.ServiceID == "STS" && op.OperationName == "AssumeRole" {
			found = op
			return true
		}
		return false
	})
	return found, found != nil
}

// walk visits err's chain depth first, through both Unwrap forms, until
// visit returns true.
func walk(err error, visit func(error) bool) bool {
	if err == nil {
		return false
	}
	if visit(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return walk(u.Unwrap(), visit)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if walk(e, visit) {
				return true
			}
		}
	}
	return false
}
