package rolecreds_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/cdcd-dev/cdcd/rolecreds"
	"github.com/cdcd-dev/cdcd/state"
)

func stsOp(err error) error {
	return &smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRole", Err: err}
}

func assumeErr(err error) error {
	return &rolecreds.AssumeRoleError{RoleARN: testRole, Err: stsOp(err)}
}

// viaKinesis wraps err the way a Kinesis client reports a failure of its
// credentials provider.
func viaKinesis(err error) error {
	return &smithy.OperationError{ServiceID: "Kinesis", OperationName: "PutRecords",
		Err: fmt.Errorf("failed to sign request: failed to retrieve credentials: %w", err)}
}

func apiErr(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: code + " message"}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code state.Code
		ok   bool
	}{
		{"AccessDenied", assumeErr(apiErr("AccessDenied")), state.RoleAccessDenied, true},
		{"AccessDeniedException", assumeErr(apiErr("AccessDeniedException")), state.RoleAccessDenied, true},
		{"RegionDisabledException", assumeErr(&types.RegionDisabledException{Message: new("off")}), state.RoleAccessDenied, true},
		{"InvalidClientTokenId", assumeErr(apiErr("InvalidClientTokenId")), state.RoleAccessDenied, true},
		{"UnrecognizedClientException", assumeErr(apiErr("UnrecognizedClientException")), state.RoleAccessDenied, true},
		{"SignatureDoesNotMatch", assumeErr(apiErr("SignatureDoesNotMatch")), state.RoleAccessDenied, true},
		{"IncompleteSignature", assumeErr(apiErr("IncompleteSignature")), state.RoleAccessDenied, true},
		{"MissingAuthenticationToken", assumeErr(apiErr("MissingAuthenticationToken")), state.RoleAccessDenied, true},
		{"ExpiredToken", assumeErr(apiErr("ExpiredToken")), state.RoleAccessDenied, true},
		{"ExpiredTokenException", assumeErr(&types.ExpiredTokenException{}), state.RoleAccessDenied, true},
		{"ValidationError", assumeErr(apiErr("ValidationError")), state.InternalError, true},
		{"MalformedPolicyDocument", assumeErr(&types.MalformedPolicyDocumentException{}), state.InternalError, true},
		{"PackedPolicyTooLarge", assumeErr(&types.PackedPolicyTooLargeException{}), state.InternalError, true},
		{"Throttling", assumeErr(apiErr("Throttling")), state.InternalError, true},
		{"InternalFailure", assumeErr(apiErr("InternalFailure")), state.InternalError, true},
		{"network", &rolecreds.AssumeRoleError{RoleARN: testRole, Err: errors.New("dial tcp: connection refused")}, state.InternalError, true},
		{"denied via Kinesis client", viaKinesis(assumeErr(apiErr("AccessDenied"))), state.RoleAccessDenied, true},
		{"bare STS error via Kinesis client", viaKinesis(stsOp(apiErr("AccessDenied"))), state.RoleAccessDenied, true},
		{"joined", errors.Join(errors.New("other"), stsOp(apiErr("AccessDenied"))), state.RoleAccessDenied, true},
		{"Kinesis AccessDeniedException", &smithy.OperationError{ServiceID: "Kinesis", OperationName: "PutRecords", Err: apiErr("AccessDeniedException")}, "", false},
		{"other STS operation", &smithy.OperationError{ServiceID: "STS", OperationName: "GetCallerIdentity", Err: apiErr("AccessDenied")}, "", false},
		{"plain error", errors.New("boom"), "", false},
		{"closed", rolecreds.ErrClosed, "", false},
		{"nil", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, ok := rolecreds.Classify(tt.err)
			if code != tt.code || ok != tt.ok {
				t.Errorf("Classify(%v) = %q, %v; want %q, %v", tt.err, code, ok, tt.code, tt.ok)
			}
		})
	}
}
