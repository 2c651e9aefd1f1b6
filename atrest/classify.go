package atrest

import (
	"context"
	"errors"

	"github.com/aws/smithy-go"
)

// Class is what a key operation's error means for the stream.
type Class int

const (
	// ClassNone: no error.
	ClassNone Class = iota
	// ClassCanceled: the caller gave up; says nothing about the key.
	ClassCanceled
	// ClassTransient: throttling, KMS-side trouble or the network. Retried;
	// a fault only when it persists.
	ClassTransient
	// ClassInaccessible: the cluster key cannot be used until an operator
	// acts (disabled, pending deletion, gone, denied). A fault at once.
	ClassInaccessible
	// ClassForeign: a wrapped key that this key and encryption context did
	// not make, or a damaged one. A problem of the file that held it.
	ClassForeign
)

func (c Class) String() string {
	switch c {
	case ClassNone:
		return "ok"
	case ClassCanceled:
		return "canceled"
	case ClassTransient:
		return "transient"
	case ClassInaccessible:
		return "inaccessible"
	case ClassForeign:
		return "foreign"
	}
	return "unknown"
}

// kmsErrorClass maps KMS error codes (smithy.APIError.ErrorCode) to
// classes. Codes not listed are transient: an error cdcd does not know is
// retried, and still impairs the stream when it keeps happening.
//
// It is a read-only lookup table, not mutable global state.
var kmsErrorClass = map[string]Class{
	// The key's state.
	"DisabledException":        ClassInaccessible,
	"KMSInvalidStateException": ClassInaccessible, // pending deletion or import, or unavailable
	"NotFoundException":        ClassInaccessible,
	// Permissions and identity. AccessDeniedException is not a modelled
	// KMS type but is what KMS (and local-kms for Decrypt on a disabled
	// key) returns for a key policy or IAM denial.
	"AccessDeniedException":       ClassInaccessible,
	"UnrecognizedClientException": ClassInaccessible,
	"InvalidSignatureException":   ClassInaccessible,
	"IncompleteSignature":         ClassInaccessible,
	"MissingAuthenticationToken":  ClassInaccessible,
	"InvalidGrantTokenException":  ClassInaccessible,
	// A configured key that is the wrong kind of key.
	"InvalidArnException":           ClassInaccessible,
	"InvalidKeyUsageException":      ClassInaccessible,
	"UnsupportedOperationException": ClassInaccessible,
	"ValidationException":           ClassInaccessible,
	// Custom key stores whose backing is misconfigured or gone; these
	// need an operator, unlike a momentarily unavailable key.
	"CustomKeyStoreInvalidStateException":                     ClassInaccessible,
	"CustomKeyStoreNotFoundException":                         ClassInaccessible,
	"CloudHsmClusterInvalidConfigurationException":            ClassInaccessible,
	"CloudHsmClusterNotActiveException":                       ClassInaccessible,
	"CloudHsmClusterNotFoundException":                        ClassInaccessible,
	"XksKeyInvalidConfigurationException":                     ClassInaccessible,
	"XksKeyNotFoundException":                                 ClassInaccessible,
	"XksProxyIncorrectAuthenticationCredentialException":      ClassInaccessible,
	"XksProxyInvalidConfigurationException":                   ClassInaccessible,
	"XksProxyInvalidResponseException":                        ClassInaccessible,
	"XksProxyUriUnreachableException":                         ClassInaccessible,
	"XksProxyVpcEndpointServiceInvalidConfigurationException": ClassInaccessible,
	"XksProxyVpcEndpointServiceNotFoundException":             ClassInaccessible,
	// Retryable by the KMS documentation. KeyUnavailableException is the
	// key store being momentarily unreachable; treating it as a fault at
	// once would send a CREATING stream to FAILED, which is terminal, for
	// a blip. When it lasts, the Checker faults anyway.
	"ThrottlingException":        ClassTransient,
	"KMSInternalException":       ClassTransient,
	"DependencyTimeoutException": ClassTransient,
	"KeyUnavailableException":    ClassTransient,
	"LimitExceededException":     ClassTransient,
	"ExpiredTokenException":      ClassTransient, // credentials refresh
	"RequestTimeout":             ClassTransient,
	"RequestTimeoutException":    ClassTransient,
	// Decrypt of a blob that is not this key's or context's.
	"InvalidCiphertextException": ClassForeign,
	"IncorrectKeyException":      ClassForeign,
}

// Classify says what err from a key operation means. Errors that are not
// KMS errors (the network, a deadline) are transient.
func Classify(err error) Class {
	if err == nil {
		return ClassNone
	}
	if errors.Is(err, ErrCorrupt) {
		return ClassForeign
	}
	if errors.Is(err, context.Canceled) {
		return ClassCanceled
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if c, ok := kmsErrorClass[ae.ErrorCode()]; ok {
			return c
		}
	}
	return ClassTransient
}
