package ident

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

var (
	// roleNamePattern is IAM's RoleName.
	roleNamePattern = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	// rolePathPattern is IAM's Path: "/", or printable ASCII between two
	// "/"; at most 512 characters, counted apart.
	rolePathPattern = regexp.MustCompile(`^/([\x21-\x7e]+/)?$`)
	// keyIDPattern is a KMS key id: a UUID, or mrk- and 32 hex digits for a
	// multi-Region key.
	keyIDPattern = regexp.MustCompile(`^(mrk-[0-9a-f]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$`)
	// secretNamePattern is what Secrets Manager allows in a secret name,
	// which its ARN carries with a "-" and six random characters. It keeps
	// out "*" and "?", which would make a policy Resource match other
	// secrets.
	secretNamePattern = regexp.MustCompile(`^[\w/+=.@-]+$`)
)

const roleARNShape = "arn:<partition>:iam::<12 digits>:role/<path/>name"

// RoleARN is a parsed IAM role ARN.
type RoleARN struct {
	Partition string
	AccountID string
	Path      string // "/" when the role has no path
	Name      string
}

// String returns the ARN in its canonical form.
func (r RoleARN) String() string {
	return "arn:" + r.Partition + ":iam::" + r.AccountID + ":role" + r.Path + r.Name
}

// ParseRoleARN parses arn:<partition>:iam::<12 digits>:role/<path/>name,
// the form STS accepts as RoleArn (20 to 2048 characters). The error names
// the value, because callers pass it on as it is.
func ParseRoleARN(s string) (RoleARN, error) {
	if len(s) < 20 || len(s) > 2048 {
		return RoleARN{}, fmt.Errorf("role ARN %q: length %d, want 20 to 2048 in the form %s", s, len(s), roleARNShape)
	}
	a, err := arn.Parse(s)
	if err != nil {
		return RoleARN{}, fmt.Errorf("role ARN %q: want %s", s, roleARNShape)
	}
	bad := func(what string) (RoleARN, error) {
		return RoleARN{}, fmt.Errorf("role ARN %q: %s, want %s", s, what, roleARNShape)
	}
	switch {
	case !ValidPartition(a.Partition):
		return bad(fmt.Sprintf("invalid partition %q", a.Partition))
	case a.Service != "iam":
		return bad(fmt.Sprintf("service is %q, not iam", a.Service))
	case a.Region != "":
		return bad("IAM ARNs have no region")
	case !ValidAccount(a.AccountID):
		return bad(fmt.Sprintf("account %q is not 12 digits", a.AccountID))
	case !strings.HasPrefix(a.Resource, "role/"):
		return bad(fmt.Sprintf("resource %q is not a role", a.Resource))
	}
	rest := strings.TrimPrefix(a.Resource, "role")
	i := strings.LastIndexByte(rest, '/')
	path, name := rest[:i+1], rest[i+1:]
	if len(path) > 512 || !rolePathPattern.MatchString(path) {
		return bad(fmt.Sprintf("invalid role path %q", path))
	}
	if !roleNamePattern.MatchString(name) {
		return bad(fmt.Sprintf(`role name %q must match [\w+=,.@-]{1,64}`, name))
	}
	return RoleARN{Partition: a.Partition, AccountID: a.AccountID, Path: path, Name: name}, nil
}

// KinesisStreamARN is a parsed Kinesis data stream ARN.
type KinesisStreamARN struct {
	Partition string
	Region    string
	AccountID string
	Name      string
}

// String returns the ARN.
func (k KinesisStreamARN) String() string {
	return "arn:" + k.Partition + ":kinesis:" + k.Region + ":" + k.AccountID + ":stream/" + k.Name
}

// ParseKinesisStreamARN parses
// arn:<partition>:kinesis:<region>:<12 digits>:stream/<name>. The error
// says what is wanted; the caller names the field and the value.
func ParseKinesisStreamARN(s string) (KinesisStreamARN, error) {
	p, r, acct, name, ok := parseRegional(s, "kinesis", "stream/", ValidKinesisStreamName)
	if !ok {
		return KinesisStreamARN{}, errors.New("want a Kinesis stream ARN, arn:<partition>:kinesis:<region>:<12 digits>:stream/<name>")
	}
	return KinesisStreamARN{Partition: p, Region: r, AccountID: acct, Name: name}, nil
}

// KeyARN is a parsed KMS key ARN.
type KeyARN struct {
	Partition string
	Region    string
	AccountID string
	KeyID     string
}

// ParseKeyARN parses arn:<partition>:kms:<region>:<12 digits>:key/<key id>.
// Alias ARNs are refused: a policy Resource naming an alias does not match
// the key a request actually uses, so the statement would grant nothing.
// The error says what is wanted; the caller names the field and the value.
func ParseKeyARN(s string) (KeyARN, error) {
	p, r, acct, id, ok := parseRegional(s, "kms", "key/", keyIDPattern.MatchString)
	if !ok {
		return KeyARN{}, errors.New("want a KMS key ARN, arn:<partition>:kms:<region>:<12 digits>:key/<key id> (resolve aliases first)")
	}
	return KeyARN{Partition: p, Region: r, AccountID: acct, KeyID: id}, nil
}

// SecretARN is a parsed Secrets Manager secret ARN.
type SecretARN struct {
	Partition string
	Region    string
	AccountID string
	// Name is the secret's name and, in a complete ARN, the "-" and six
	// random characters Secrets Manager appends.
	Name string
}

// ParseSecretARN parses
// arn:<partition>:secretsmanager:<region>:<12 digits>:secret:<name>. The
// error says what is wanted; the caller names the field and the value.
func ParseSecretARN(s string) (SecretARN, error) {
	p, r, acct, name, ok := parseRegional(s, "secretsmanager", "secret:", secretNamePattern.MatchString)
	if !ok {
		return SecretARN{}, errors.New("want a Secrets Manager secret ARN, arn:<partition>:secretsmanager:<region>:<12 digits>:secret:<name>")
	}
	return SecretARN{Partition: p, Region: r, AccountID: acct, Name: name}, nil
}

// parseRegional checks the ARN of a regional resource of service whose
// resource is prefix followed by an id that valid accepts, and returns its
// parts.
func parseRegional(s, service, prefix string, valid func(string) bool) (partition, region, account, id string, ok bool) {
	a, err := arn.Parse(s)
	if err != nil || a.Service != service || !ValidPartition(a.Partition) ||
		!ValidRegion(a.Region) || !ValidAccount(a.AccountID) {
		return "", "", "", "", false
	}
	id, found := strings.CutPrefix(a.Resource, prefix)
	if !found || !valid(id) {
		return "", "", "", "", false
	}
	return a.Partition, a.Region, a.AccountID, id, true
}
