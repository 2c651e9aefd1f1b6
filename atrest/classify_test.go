package atrest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, ClassNone},
		{"canceled", fmt.Errorf("op: %w", context.Canceled), ClassCanceled},
		{"deadline", context.DeadlineExceeded, ClassTransient},
		{"network", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, ClassTransient},
		{"corrupt file", fmt.Errorf("x: %w", ErrCorrupt), ClassForeign},
		{"unknown code", apiError("SomethingNewException"), ClassTransient},
		{"modelled type", &kmstypes.DisabledException{}, ClassInaccessible},
		{"after SDK retries", &retry.MaxAttemptsError{Attempt: 3, Err: apiError("ThrottlingException")}, ClassTransient},
	}
	for code, want := range kmsErrorClass {
		tests = append(tests, struct {
			name string
			err  error
			want Class
		}{code, fmt.Errorf("operation error KMS: %w", apiError(code)), want})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestClassifyTable pins the verdicts the brief and docs/lifecycle.md#codes name, so that an
// edit of the table cannot quietly move them.
func TestClassifyTable(t *testing.T) {
	want := map[string]Class{
		"DisabledException":          ClassInaccessible,
		"KMSInvalidStateException":   ClassInaccessible,
		"NotFoundException":          ClassInaccessible,
		"AccessDeniedException":      ClassInaccessible,
		"InvalidKeyUsageException":   ClassInaccessible,
		"ThrottlingException":        ClassTransient,
		"KMSInternalException":       ClassTransient,
		"DependencyTimeoutException": ClassTransient,
		"KeyUnavailableException":    ClassTransient,
		"InvalidCiphertextException": ClassForeign,
		"IncorrectKeyException":      ClassForeign,
	}
	for code, c := range want {
		if got := Classify(apiError(code)); got != c {
			t.Errorf("%s: %v, want %v", code, got, c)
		}
	}
}
