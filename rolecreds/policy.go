package rolecreds

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"

	"github.com/cdcd-dev/cdcd/iam"
	"github.com/cdcd-dev/cdcd/ident"
)

// MaxSessionPolicy is STS's limit on the plain text of a session policy.
// STS also limits the packed (compressed) policy and tags together; that
// size is only known from the response, so PackedPolicyTooLarge is left to
// Classify.
const MaxSessionPolicy = 2048

// dnsSuffixes maps the partitions cdcd supports to the DNS suffix that forms
// the kms:ViaService value ("kinesis.<region>.<suffix>"). Other partitions
// are refused rather than guessed: a wrong ViaService value does not fail
// loudly, it denies every GenerateDataKey and impairs the stream.
var dnsSuffixes = map[string]string{
	"aws":        "amazonaws.com",
	"aws-cn":     "amazonaws.com.cn",
	"aws-us-gov": "amazonaws.com",
}

// kinesisActions are the only Kinesis actions the role needs (DSQL's
// service-role policy), sorted so the output is stable.
var kinesisActions = []string{
	"kinesis:DescribeStreamSummary",
	"kinesis:ListShards",
	"kinesis:PutRecord",
	"kinesis:PutRecords",
}

// Statements are the permissions a stream's writer needs: its role's, shared
// by the session policy and the identity policy so that the two cannot
// drift apart, or the base identity's for a stream without a role.
func Statements(cfg Config) ([]iam.Statement, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validateTarget(); err != nil {
		return nil, err
	}
	key := cfg.KeyARN
	if key == "" {
		key = "*"
	}
	return []iam.Statement{{
		Sid:      "CdcdKinesisWrite",
		Effect:   "Allow",
		Action:   kinesisActions,
		Resource: cfg.KinesisStreamARN,
	}, {
		// Kinesis calls GenerateDataKey with the caller's credentials when
		// the stream is encrypted. The conditions pin the call to Kinesis in
		// this region, on this stream's behalf, on a key in the role's own
		// account, so Resource "*" grants nothing beyond this stream.
		Sid:      "CdcdKinesisKMS",
		Effect:   "Allow",
		Action:   "kms:GenerateDataKey",
		Resource: key,
		Condition: map[string]map[string]any{"StringEquals": {
			"kms:ViaService":                        ViaKinesis(cfg.Partition, cfg.Region),
			"kms:EncryptionContext:aws:kinesis:arn": cfg.KinesisStreamARN,
			"aws:ResourceAccount":                   "${aws:PrincipalAccount}",
		}},
	}}, nil
}

// ViaKinesis is the kms:ViaService value of calls Kinesis makes to KMS on a
// caller's behalf in region; "" for a partition cdcd does not support.
func ViaKinesis(partition, region string) string {
	suffix, ok := dnsSuffixes[partition]
	if !ok {
		return ""
	}
	return "kinesis." + region + "." + suffix
}

// SessionPolicy returns the session policy sent on AssumeRole: compact JSON,
// deterministic for a Config, at most MaxSessionPolicy characters. The
// session's permissions are the intersection of this and the role's own, so
// a role broader than one stream is still narrowed to it.
func SessionPolicy(cfg Config) (string, error) {
	st, err := Statements(cfg)
	if err != nil {
		return "", err
	}
	out, err := iam.Policy{Version: iam.Version, Statement: st}.Compact()
	if err != nil {
		return "", err
	}
	if len(out) > MaxSessionPolicy {
		return "", fmt.Errorf("session policy is %d characters, STS allows %d", len(out), MaxSessionPolicy)
	}
	return out, nil
}

// PermissionsPolicy returns the same statements as SessionPolicy, as the
// role's IAM identity policy: indented, ending in a newline, ready to paste.
func PermissionsPolicy(cfg Config) (string, error) {
	st, err := Statements(cfg)
	if err != nil {
		return "", err
	}
	return iam.Policy{Version: iam.Version, Statement: st}.Indent()
}

// TrustPolicy returns the role's trust policy: the base principal may
// sts:AssumeRole only with sts:ExternalId equal to cfg.ExternalID. With
// withTags, a second statement allows sts:TagSession limited to cdcd's tag
// keys; STS requires it whenever SessionTags is not empty. The external id
// condition is not repeated there: TagSession alone grants no access.
//
// basePrincipalARN is the daemon's base identity: an IAM user or role ARN,
// an account root ARN, or an sts assumed-role ARN as GetCallerIdentity
// returns it, which BasePrincipal turns into its role's ARN.
func TrustPolicy(basePrincipalARN string, cfg Config, withTags bool) (string, error) {
	principal, err := BasePrincipal(basePrincipalARN)
	if err != nil {
		return "", err
	}
	if !ident.ValidExternalID(cfg.ExternalID) {
		return "", fieldErr("ExternalID", "<redacted>", `want 2 to 1224 characters of [\w+=,.@:/-]`)
	}
	st := []iam.Statement{{
		Sid:       "CdcdAssumeRole",
		Effect:    "Allow",
		Principal: map[string]string{"AWS": principal},
		Action:    "sts:AssumeRole",
		Condition: map[string]map[string]any{"StringEquals": {"sts:ExternalId": cfg.ExternalID}},
	}}
	if withTags {
		st = append(st, iam.Statement{
			Sid:       "CdcdTagSession",
			Effect:    "Allow",
			Principal: map[string]string{"AWS": principal},
			Action:    "sts:TagSession",
			Condition: map[string]map[string]any{"ForAllValues:StringEquals": {
				"aws:TagKeys": []string{TagStream, TagCluster},
			}},
		})
	}
	return iam.Policy{Version: iam.Version, Statement: st}.Indent()
}

// BasePrincipal returns the ARN to name as Principal for a caller ARN. IAM
// users, roles, account roots and federated users are used as they are. An
// assumed-role session ARN (arn:…:sts::<account>:assumed-role/<role>/<session>)
// becomes arn:…:iam::<account>:role/<role>: sessions come and go, the role
// stays. That ARN carries no path, so a role created under a path must be
// named by its full ARN instead.
func BasePrincipal(callerARN string) (string, error) {
	a, err := arn.Parse(callerARN)
	bad := fmt.Errorf("base principal %q: want an IAM user, role or root ARN, or an STS assumed-role ARN", callerARN)
	if err != nil || !ident.ValidPartition(a.Partition) || a.Region != "" || !ident.ValidAccount(a.AccountID) {
		return "", bad
	}
	switch {
	case a.Service == "iam" && (a.Resource == "root" || strings.HasPrefix(a.Resource, "user/") || strings.HasPrefix(a.Resource, "role/")):
		return callerARN, nil
	case a.Service == "sts" && strings.HasPrefix(a.Resource, "federated-user/"):
		return callerARN, nil
	case a.Service == "sts" && strings.HasPrefix(a.Resource, "assumed-role/"):
		parts := strings.Split(a.Resource, "/")
		if len(parts) != 3 {
			return "", bad
		}
		role, err := ident.ParseRoleARN("arn:" + a.Partition + ":iam::" + a.AccountID + ":role/" + parts[1])
		if err != nil {
			return "", bad
		}
		return role.String(), nil
	}
	return "", bad
}
