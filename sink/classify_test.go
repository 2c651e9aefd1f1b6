package sink

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/cdcd-dev/cdcd/codes"
)

// opErr wraps err the way the SDK returns it from a Kinesis call.
func opErr(err error) error {
	return fmt.Errorf("put records: %w", &smithy.OperationError{ServiceID: "Kinesis", OperationName: "PutRecords", Err: err})
}

func apiErr(code, msg string) error { return &smithy.GenericAPIError{Code: code, Message: msg} }

// classifyCases has one case per code the sink can produce, plus the
// variants that reach each code (typed error, proxy code, per-record code).
// TestReport replays the same cases through a running sink.
var classifyCases = []struct {
	name string
	err  error // whole-call error, or nil when perRecord is set
	// perRecord is a per-entry ErrorCode returned in a successful call.
	perRecord string
	want      codes.Code
}{
	{name: "throughput/typed", err: &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}, want: codes.KinesisThroughputExceeded},
	{name: "throughput/limit exceeded", err: &types.LimitExceededException{Message: aws.String("limit")}, want: codes.KinesisThroughputExceeded},
	{name: "throughput/kms throttling", err: &types.KMSThrottlingException{Message: aws.String("kms")}, want: codes.KinesisThroughputExceeded},
	{name: "throughput/proxy code", err: apiErr("ProvisionedThroughputExceededException", "x"), want: codes.KinesisThroughputExceeded},
	{name: "throughput/per record", perRecord: "ProvisionedThroughputExceededException", want: codes.KinesisThroughputExceeded},
	{name: "throughput/per record kms", perRecord: "KMSThrottlingException", want: codes.KinesisThroughputExceeded},
	{name: "access denied/typed", err: &types.AccessDeniedException{Message: aws.String("no")}, want: codes.KinesisAccessDenied},
	{name: "access denied/proxy code", err: apiErr("com.amazonaws.kinesis#AccessDeniedException", "no"), want: codes.KinesisAccessDenied},
	{name: "kms/access denied", err: &types.KMSAccessDeniedException{Message: aws.String("no")}, want: codes.KinesisKMSAccessDenied},
	{name: "kms/disabled", err: &types.KMSDisabledException{Message: aws.String("off")}, want: codes.KinesisKMSAccessDenied},
	{name: "kms/invalid state", err: &types.KMSInvalidStateException{Message: aws.String("pending deletion")}, want: codes.KinesisKMSAccessDenied},
	{name: "kms/not found", err: &types.KMSNotFoundException{Message: aws.String("gone")}, want: codes.KinesisKMSAccessDenied},
	{name: "kms/opt in required", err: &types.KMSOptInRequired{Message: aws.String("opt in")}, want: codes.KinesisKMSAccessDenied},
	{name: "kms/proxy code", err: apiErr("KMSDisabledException", "off"), want: codes.KinesisKMSAccessDenied},
	{name: "kms/per record", perRecord: "KMSAccessDeniedException", want: codes.KinesisKMSAccessDenied},
	{name: "stream not found/typed", err: &types.ResourceNotFoundException{Message: aws.String("Stream test not found")}, want: codes.KinesisStreamNotFound},
	{name: "stream not found/proxy code", err: apiErr("ResourceNotFoundException:http://internal.amazon.com/", ""), want: codes.KinesisStreamNotFound},
	{name: "oversize/invalid argument", err: &types.InvalidArgumentException{Message: aws.String("Record size exceeds the maximum")}, want: codes.KinesisOversizeRecord},
	{name: "oversize/validation", err: apiErr("ValidationException", "Value at 'records.1.member.data' failed to satisfy constraint: Member must have length less than or equal to 1048576"), want: codes.KinesisOversizeRecord},
	{name: "oversize/http 413", err: &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 413}}, Err: errScripted}}, want: codes.KinesisOversizeRecord},
	{name: "oversize/local refusal", err: &OversizeError{Size: 2 << 20, Limit: 1 << 20}, want: codes.KinesisOversizeRecord},
	{name: "role/sts access denied", err: fmt.Errorf("get identity: %w", fmt.Errorf("failed to refresh cached credentials, %w", &smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRole", Err: apiErr("AccessDenied", "not authorized")})), want: codes.RoleAccessDenied},
	{name: "internal/invalid argument", err: &types.InvalidArgumentException{Message: aws.String("bad hash key")}, want: codes.InternalError},
	{name: "internal/internal failure", err: &types.InternalFailureException{Message: aws.String("oops")}, want: codes.InternalError},
	{name: "internal/per record", perRecord: "InternalFailure", want: codes.InternalError},
	{name: "internal/unknown code", err: apiErr("SomethingNew", ""), want: codes.InternalError},
	{name: "internal/timeout", err: context.DeadlineExceeded, want: codes.InternalError},
	{name: "internal/plain error", err: errScripted, want: codes.InternalError},
}

func TestClassify(t *testing.T) {
	for _, tc := range classifyCases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err
			if tc.perRecord != "" {
				err = &RecordError{Code: tc.perRecord, Message: "scripted", Failed: 1}
			} else {
				err = opErr(err)
			}
			if got := Classify(err); got != tc.want {
				t.Errorf("Classify(%v) = %q, want %q", err, got, tc.want)
			}
		})
	}
	if got := Classify(nil); got != "" {
		t.Errorf("Classify(nil) = %q, want empty", got)
	}
}

func TestCodeLabel(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{opErr(&types.ProvisionedThroughputExceededException{}), "ProvisionedThroughputExceededException"},
		{&RecordError{Code: "InternalFailure"}, "InternalFailure"},
		{apiErr("x-injected-label", ""), "Other"},
		{&OversizeError{}, "RecordTooLarge"},
		{opErr(context.DeadlineExceeded), "Timeout"},
		{errScripted, "Other"},
	} {
		if got := codeLabel(tc.err); got != tc.want {
			t.Errorf("codeLabel(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
