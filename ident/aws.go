package ident

import "regexp"

// Patterns from the IAM, STS, Kinesis, KMS and Secrets Manager API
// references. They are checked before any request, so that a typo in
// configuration is reported naming its field rather than later as a
// ValidationError or, worse, as a policy that silently matches nothing.
var (
	// partitionPattern: aws, aws-cn, aws-us-gov, aws-iso-b, aws-eusc, …
	partitionPattern = regexp.MustCompile(`^aws(-[a-z]+)*$`)
	// regionPattern: a prefix of two letters or more, words, a number, as in
	// us-east-1, us-gov-west-1 and eusc-de-east-1.
	regionPattern  = regexp.MustCompile(`^[a-z]{2,}(-[a-z]+)+-[0-9]+$`)
	accountPattern = regexp.MustCompile(`^[0-9]{12}$`)
	// streamNamePattern is Kinesis's StreamName.
	streamNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)
	// externalIDPattern is STS's ExternalId, which is also 2 to 1224 long:
	// RE2 caps repeats at 1000, so ValidExternalID counts apart.
	externalIDPattern = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
)

// ValidPartition reports whether s has the shape of an AWS partition, such
// as aws, aws-cn or aws-us-gov.
func ValidPartition(s string) bool { return partitionPattern.MatchString(s) }

// ValidRegion reports whether s has the shape of an AWS region, such as
// us-east-1.
func ValidRegion(s string) bool { return regionPattern.MatchString(s) }

// ValidAccount reports whether s is an AWS account id: 12 digits.
func ValidAccount(s string) bool { return accountPattern.MatchString(s) }

// ValidKinesisStreamName reports whether s is a Kinesis stream name: 1 to
// 128 characters of [a-zA-Z0-9_.-].
func ValidKinesisStreamName(s string) bool { return streamNamePattern.MatchString(s) }

// ValidExternalID reports whether s is an STS external id: 2 to 1224
// characters of [\w+=,.@:/-].
func ValidExternalID(s string) bool {
	return len(s) >= 2 && len(s) <= 1224 && externalIDPattern.MatchString(s)
}
