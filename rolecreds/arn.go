package rolecreds

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// Patterns taken from the IAM, STS, Kinesis and KMS API references. They are
// checked here, before any request, so that a typo in configuration is
// reported at stream creation naming the field rather than later as an STS
// ValidationError or, worse, a policy that silently matches nothing.
var (
	partitionPattern = regexp.MustCompile(`^aws(-[a-z]+)*$`)
	regionPattern    = regexp.MustCompile(`^[a-z]{2,}(-[a-z]+)+-[0-9]+$`)
	accountPattern   = regexp.MustCompile(`^[0-9]{12}$`)
	// roleNamePattern is IAM's RoleName: [\w+=,.@-]{1,64}.
	roleNamePattern = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	// rolePathPattern is IAM's path: "/" or "/" printable ASCII "/", ≤ 512.
	rolePathPattern    = regexp.MustCompile(`^/([\x21-\x7e]*/)?$`)
	streamNamePattern  = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)
	keyIDPattern       = regexp.MustCompile(`^(mrk-[0-9a-f]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$`)
	sessionNameInvalid = regexp.MustCompile(`[^\w+=,.@-]`)
	externalIDPattern  = regexp.MustCompile(`^[\w+=,.@:/-]+$`) // and 2 to 1224 long: RE2 caps repeats at 1000
	tagPattern         = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
)

const roleARNShapeMessage = "arn:<partition>:iam::<12 digits>:role/<path/>name"

// dnsSuffixes maps the partitions cdcd supports to the DNS suffix that forms
// the kms:ViaService value ("kinesis.<region>.<suffix>"). Other partitions
// are refused rather than guessed: a wrong ViaService value does not fail
// loudly, it denies every GenerateDataKey and impairs the stream.
var dnsSuffixes = map[string]string{
	"aws":        "amazonaws.com",
	"aws-cn":     "amazonaws.com.cn",
	"aws-us-gov": "amazonaws.com",
}

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
// the form STS accepts as RoleArn (20 to 2048 characters).
func ParseRoleARN(s string) (RoleARN, error) {
	if len(s) < 20 || len(s) > 2048 {
		return RoleARN{}, fmt.Errorf("role ARN %q: length %d, want 20 to 2048 in the form %s", s, len(s), roleARNShapeMessage)
	}
	a, err := arn.Parse(s)
	if err != nil {
		return RoleARN{}, fmt.Errorf("role ARN %q: want %s", s, roleARNShapeMessage)
	}
	bad := func(what string) (RoleARN, error) {
		return RoleARN{}, fmt.Errorf("role ARN %q: %s, want %s", s, what, roleARNShapeMessage)
	}
	switch {
	case !partitionPattern.MatchString(a.Partition):
		return bad("invalid partition " + quote(a.Partition))
	case a.Service != "iam":
		return bad("service is " + quote(a.Service) + ", not iam")
	case a.Region != "":
		return bad("IAM ARNs have no region")
	case !accountPattern.MatchString(a.AccountID):
		return bad("account " + quote(a.AccountID) + " is not 12 digits")
	case !strings.HasPrefix(a.Resource, "role/"):
		return bad("resource " + quote(a.Resource) + " is not a role")
	}
	rest := strings.TrimPrefix(a.Resource, "role")
	i := strings.LastIndexByte(rest, '/')
	path, name := rest[:i+1], rest[i+1:]
	if len(path) > 512 || !rolePathPattern.MatchString(path) {
		return bad("invalid role path " + quote(path))
	}
	if !roleNamePattern.MatchString(name) {
		return bad("role name " + quote(name) + ` must match [\w+=,.@-]{1,64}`)
	}
	return RoleARN{Partition: a.Partition, AccountID: a.AccountID, Path: path, Name: name}, nil
}

// parseStreamARN checks arn:<partition>:kinesis:<region>:<account>:stream/<name>.
func parseStreamARN(s string) (arn.ARN, error) {
	const shape = "arn:<partition>:kinesis:<region>:<12 digits>:stream/<name>"
	a, err := arn.Parse(s)
	if err != nil || a.Service != "kinesis" || !partitionPattern.MatchString(a.Partition) ||
		!regionPattern.MatchString(a.Region) || !accountPattern.MatchString(a.AccountID) ||
		!strings.HasPrefix(a.Resource, "stream/") ||
		!streamNamePattern.MatchString(strings.TrimPrefix(a.Resource, "stream/")) {
		return arn.ARN{}, errors.New("want a Kinesis stream ARN, " + shape)
	}
	return a, nil
}

// parseKeyARN checks arn:<partition>:kms:<region>:<account>:key/<key id>.
// Alias ARNs are refused: a policy Resource naming an alias does not match
// the key a request actually uses, so the statement would grant nothing.
func parseKeyARN(s string) (arn.ARN, error) {
	const shape = "arn:<partition>:kms:<region>:<12 digits>:key/<key id> (resolve aliases first, or leave empty)"
	a, err := arn.Parse(s)
	if err != nil || a.Service != "kms" || !partitionPattern.MatchString(a.Partition) ||
		!regionPattern.MatchString(a.Region) || !accountPattern.MatchString(a.AccountID) ||
		!strings.HasPrefix(a.Resource, "key/") ||
		!keyIDPattern.MatchString(strings.TrimPrefix(a.Resource, "key/")) {
		return arn.ARN{}, errors.New("want a KMS key ARN, " + shape)
	}
	return a, nil
}

// validExternalID checks STS's ExternalId constraint.
func validExternalID(s string) bool {
	return len(s) >= 2 && len(s) <= 1224 && externalIDPattern.MatchString(s)
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
