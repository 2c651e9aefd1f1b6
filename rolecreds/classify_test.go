package rolecreds_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/rolecreds"
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
		code codes.Code
		ok   bool
	}{
		{"AccessDenied", assumeErr(apiErr("AccessDenied")), codes.RoleAccessDenied, true},
		{"AccessDeniedException", assumeErr(apiErr("AccessDeniedException")), codes.RoleAccessDenied, true},
		{"RegionDisabledException", assumeErr(&types.RegionDisabledException{Message: new("off")}), codes.RoleAccessDenied, true},
		{"InvalidClientTokenId", assumeErr(apiErr("InvalidClientTokenId")), codes.RoleAccessDenied, true},
		{"UnrecognizedClientException", assumeErr(apiErr("UnrecognizedClientException")), codes.RoleAccessDenied, true},
		{"SignatureDoesNotMatch", assumeErr(apiErr("SignatureDoesNotMatch")), codes.RoleAccessDenied, true},
		{"IncompleteSignature", assumeErr(apiErr("IncompleteSignature")), codes.RoleAccessDenied, true},
		{"MissingAuthenticationToken", assumeErr(apiErr("MissingAuthenticationToken")), codes.RoleAccessDenied, true},
		{"ExpiredToken", assumeErr(apiErr("ExpiredToken")), codes.RoleAccessDenied, true},
		{"ExpiredTokenException", assumeErr(&types.ExpiredTokenException{}), codes.RoleAccessDenied, true},
		{"ValidationError", assumeErr(apiErr("ValidationError")), codes.InternalError, true},
		{"MalformedPolicyDocument", assumeErr(&types.MalformedPolicyDocumentException{}), codes.InternalError, true},
		{"PackedPolicyTooLarge", assumeErr(&types.PackedPolicyTooLargeException{}), codes.InternalError, true},
		{"Throttling", assumeErr(apiErr("Throttling")), codes.InternalError, true},
		{"InternalFailure", assumeErr(apiErr("InternalFailure")), codes.InternalError, true},
		{"network", &rolecreds.AssumeRoleError{RoleARN: testRole, Err: errors.New("dial tcp: connection refused")}, codes.InternalError, true},
		{"denied via Kinesis client", viaKinesis(assumeErr(apiErr("AccessDenied"))), codes.RoleAccessDenied, true},
		{"bare STS error via Kinesis client", viaKinesis(stsOp(apiErr("AccessDenied"))), codes.RoleAccessDenied, true},
		{"joined", errors.Join(errors.New("other"), stsOp(apiErr("AccessDenied"))), codes.RoleAccessDenied, true},
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
