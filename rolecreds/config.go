// Package rolecreds turns the daemon's base AWS identity into credentials for
// one stream's IAM role: sts:AssumeRole with the stream's external id, a
// session name naming the stream, session tags, and a session policy that
// narrows the role to the one Kinesis stream and key it writes (docs/delivery.md).
// It also renders the role's permissions and trust policies for operators,
// maps STS failures to status-reason codes, and holds the role ARN allow-list
// that stands in for iam:PassRole.
package rolecreds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"

	"github.com/cdcd-dev/cdcd/ident"
)

// Session tag keys. They are valid STS tag keys (no "aws:" prefix, allowed
// characters only) and let the role's policies and CloudTrail tell streams
// apart when several streams share one role. No key is transitive: the
// session never assumes another role, so nothing needs to carry over.
const (
	TagStream  = "cdcd:stream"  // value: the cdcd stream ARN
	TagCluster = "cdcd:cluster" // value: the cluster identifier
)

// Bounds STS and IAM put on a role session.
const (
	MinDuration     = 15 * time.Minute
	MaxDuration     = 12 * time.Hour
	DefaultDuration = time.Hour // IAM's default MaxSessionDuration, and the cap under role chaining

	defaultExpiryWindow = 5 * time.Minute
	sessionNamePrefix   = "cdcd-"
	maxSessionName      = 64
	maxTagValue         = 256
)

// STS's constraints on a session: RoleSessionName is 2 to 64 characters of
// [\w+=,.@-], and a session tag value is at most maxTagValue characters of
// letters, digits, spaces and _.:/=+-@.
var (
	sessionNameInvalid = regexp.MustCompile(`[^\w+=,.@-]`)
	tagPattern         = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
)

// Config describes one stream's role session.
type Config struct {
	RoleARN    string
	ExternalID string
	// StreamName names the session "cdcd-<StreamName>", with characters STS
	// does not allow replaced and long names shortened (see SessionName).
	StreamName string
	StreamARN  string // session tag cdcd:stream; omitted when empty
	ClusterID  string // session tag cdcd:cluster; omitted when empty

	KinesisStreamARN string
	// Region defaults to the Kinesis stream ARN's region and must equal it.
	Region string
	// Partition defaults to the Kinesis stream ARN's partition ("aws" when
	// that is unknown); every ARN must be in it.
	Partition string
	// KeyARN is the target stream's KMS key ARN; "" when the stream is
	// unencrypted or the key is unknown, and then the kms statement names
	// Resource "*", still narrowed to this stream by its conditions.
	KeyARN string

	// Duration is the session's DurationSeconds: default 1h, 15m to 12h,
	// whole seconds. Above 1h the role's MaxSessionDuration must allow it,
	// and a base identity that is itself a role session is capped at 1h.
	Duration time.Duration
	// ExpiryWindow is how long before expiry a refresh starts: default the
	// smaller of 5m and a tenth of Duration; at most half of Duration.
	ExpiryWindow time.Duration

	// Logger receives refresh failures and recoveries; nil discards them.
	Logger *slog.Logger
}

// FieldError is a configuration error naming the Config field, the value and
// what is allowed, so that the caller can report it under its own key name.
type FieldError struct {
	Field string
	Value string
	Want  string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Want)
}

func fieldErr(field, value, want string) error {
	return &FieldError{Field: field, Value: value, Want: want}
}

// withDefaults fills the defaults documented on Config. It never fails;
// Validate reports what is still wrong.
func (c Config) withDefaults() Config {
	if c.Partition == "" || c.Region == "" {
		a, err := arn.Parse(c.KinesisStreamARN)
		if c.Partition == "" {
			c.Partition = "aws"
			if err == nil && a.Partition != "" {
				c.Partition = a.Partition
			}
		}
		if c.Region == "" && err == nil {
			c.Region = a.Region
		}
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.ExpiryWindow == 0 {
		c.ExpiryWindow = min(defaultExpiryWindow, c.Duration/10)
	}
	return c
}

// Validate reports the first invalid field after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.validateTarget(); err != nil {
		return err
	}
	return c.validateSession()
}

// validateTarget checks what the policies need: partition, region, the
// Kinesis stream ARN and the key ARN. Callers have applied withDefaults.
func (c Config) validateTarget() error {
	if _, ok := dnsSuffixes[c.Partition]; !ok {
		return fieldErr("Partition", c.Partition, "want aws, aws-cn or aws-us-gov")
	}
	s, err := ident.ParseKinesisStreamARN(c.KinesisStreamARN)
	if err != nil {
		return fieldErr("KinesisStreamARN", c.KinesisStreamARN, err.Error())
	}
	if !ident.ValidRegion(c.Region) {
		return fieldErr("Region", c.Region, "want a region such as us-east-1")
	}
	if s.Partition != c.Partition || s.Region != c.Region {
		return fieldErr("KinesisStreamARN", c.KinesisStreamARN,
			fmt.Sprintf("want partition %s and region %s", c.Partition, c.Region))
	}
	if c.KeyARN == "" {
		return nil
	}
	k, err := ident.ParseKeyARN(c.KeyARN)
	if err != nil {
		return fieldErr("KeyARN", c.KeyARN, err.Error()+", or leave it empty")
	}
	if k.Partition != c.Partition || k.Region != c.Region {
		// Kinesis server-side encryption only uses keys in the stream's region.
		return fieldErr("KeyARN", c.KeyARN,
			fmt.Sprintf("want partition %s and region %s, as the stream", c.Partition, c.Region))
	}
	return nil
}

// validateSession checks what AssumeRole needs. Callers have applied
// withDefaults.
func (c Config) validateSession() error {
	role, err := ident.ParseRoleARN(c.RoleARN)
	if err != nil {
		return fieldErr("RoleARN", c.RoleARN, strings.TrimPrefix(err.Error(), fmt.Sprintf("role ARN %q: ", c.RoleARN)))
	}
	if role.Partition != c.Partition {
		return fieldErr("RoleARN", c.RoleARN, "want partition "+c.Partition+", as the Kinesis stream")
	}
	if c.KeyARN != "" {
		// The kms statement requires aws:ResourceAccount = the role's account
		// (DSQL's policy); a key elsewhere could never be used.
		if k, err := ident.ParseKeyARN(c.KeyARN); err == nil && k.AccountID != role.AccountID {
			return fieldErr("KeyARN", c.KeyARN, "want a key in the role's account "+role.AccountID)
		}
	}
	// The external id is the confused-deputy guard of docs/delivery.md: required.
	if !ident.ValidExternalID(c.ExternalID) {
		return fieldErr("ExternalID", "<redacted>", `want 2 to 1224 characters of [\w+=,.@:/-]`)
	}
	if c.StreamName == "" {
		return fieldErr("StreamName", c.StreamName, "want the stream's name")
	}
	for _, t := range []struct{ field, value string }{{"StreamARN", c.StreamARN}, {"ClusterID", c.ClusterID}} {
		if len(t.value) > maxTagValue || !tagPattern.MatchString(t.value) {
			return fieldErr(t.field, t.value, `want at most 256 characters of letters, digits, spaces and _.:/=+-@ (an STS session tag value)`)
		}
	}
	if c.Duration < MinDuration || c.Duration > MaxDuration || c.Duration%time.Second != 0 {
		return fieldErr("Duration", c.Duration.String(), "want whole seconds from 15m to 12h")
	}
	if c.ExpiryWindow <= 0 || c.ExpiryWindow > c.Duration/2 {
		return fieldErr("ExpiryWindow", c.ExpiryWindow.String(), "want more than 0 and at most half of Duration "+c.Duration.String())
	}
	return nil
}

// SessionName returns the RoleSessionName for a stream: "cdcd-<stream>" with
// every character outside STS's [\w+=,.@-] replaced by "-". A name longer
// than 64 characters keeps its first 55 and ends in 8 hex digits of a hash of
// the whole, so long names that share a prefix stay distinct in CloudTrail.
func SessionName(streamName string) string {
	name := sessionNameInvalid.ReplaceAllString(sessionNamePrefix+streamName, "-")
	if len(name) <= maxSessionName {
		return name
	}
	sum := sha256.Sum256([]byte(streamName))
	return name[:maxSessionName-9] + "-" + hex.EncodeToString(sum[:4])
}

// SessionTags returns the tags sent on AssumeRole, in a fixed order: cdcd:stream
// when StreamARN is set, then cdcd:cluster when ClusterID is set. Tags need
// sts:TagSession in the trust policy (TrustPolicy withTags); none means no tags.
func SessionTags(cfg Config) []types.Tag {
	var tags []types.Tag
	if cfg.StreamARN != "" {
		tags = append(tags, types.Tag{Key: aws.String(TagStream), Value: aws.String(cfg.StreamARN)})
	}
	if cfg.ClusterID != "" {
		tags = append(tags, types.Tag{Key: aws.String(TagCluster), Value: aws.String(cfg.ClusterID)})
	}
	return tags
}
