package ident

import (
	"fmt"
	"strings"
	"testing"
)

// parseCase is one input to a Parse function and the result it must give;
// the zero value means an error.
type parseCase[T comparable] struct {
	in   string
	want T
}

// checkParse runs parse on every case; an error must contain wantErr, so
// that it says what is wanted. A result that is a fmt.Stringer must print as
// its input, so that String is the inverse of parse.
func checkParse[T comparable](t *testing.T, parse func(string) (T, error), wantErr string, cases []parseCase[T]) {
	t.Helper()
	var zero T
	for _, tt := range cases {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parse(tt.in)
			if tt.want == zero {
				if err == nil || !strings.Contains(err.Error(), wantErr) {
					t.Errorf("parsed %+v, %v; want an error saying %q", got, err, wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
			if s, ok := any(got).(fmt.Stringer); ok && s.String() != tt.in {
				t.Errorf("String() = %q, want %q", s.String(), tt.in)
			}
		})
	}
}

func TestParseRoleARN(t *testing.T) {
	checkParse(t, ParseRoleARN, roleARNShape, []parseCase[RoleARN]{
		{"arn:aws:iam::123456789012:role/writer", RoleARN{Partition: "aws", AccountID: "123456789012", Path: "/", Name: "writer"}},
		{"arn:aws:iam::123456789012:role/cdcd/team/writer", RoleARN{Partition: "aws", AccountID: "123456789012", Path: "/cdcd/team/", Name: "writer"}},
		{"arn:aws:iam::123456789012:role/a*b:c/writer", RoleARN{Partition: "aws", AccountID: "123456789012", Path: "/a*b:c/", Name: "writer"}},
		{"arn:aws-us-gov:iam::123456789012:role/a+b=c,d.e@f-g_h", RoleARN{Partition: "aws-us-gov", AccountID: "123456789012", Path: "/", Name: "a+b=c,d.e@f-g_h"}},
		{"arn:aws:iam::123456789012:role/" + strings.Repeat("n", 64), RoleARN{Partition: "aws", AccountID: "123456789012", Path: "/", Name: strings.Repeat("n", 64)}},
		{"arn:aws:iam::123456789012:role/" + strings.Repeat("p", 510) + "/r", RoleARN{Partition: "aws", AccountID: "123456789012", Path: "/" + strings.Repeat("p", 510) + "/", Name: "r"}},
		{"arn:aws:iam::123456789012:role/" + strings.Repeat("p", 511) + "/r", RoleARN{}},
		{"arn:aws:iam::123456789012:role/" + strings.Repeat("n", 65), RoleARN{}},
		{"arn:aws:iam::123456789012:role/", RoleARN{}},
		{"arn:aws:iam::123456789012:role/path/", RoleARN{}},
		{"arn:aws:iam::123456789012:role//writer", RoleARN{}}, // IAM's Path is "/" or /…/ with something between
		{"arn:aws:iam::123456789012:user/writer", RoleARN{}},
		{"arn:aws:iam::123:user/x-long-enough", RoleARN{}},
		{"arn:aws:iam:us-east-1:123456789012:role/writer", RoleARN{}},
		{"arn:aws:sts::123456789012:role/writer", RoleARN{}},
		{"arn:aws:iam::12345678901:role/writer", RoleARN{}},
		{"arn:aws:iam::123456789012:role/wr iter", RoleARN{}},
		{"arn:aws:iam::123456789012:role/a b/writer", RoleARN{}},
		{"arn:AWS:iam::123456789012:role/writer", RoleARN{}},
		{"arn:awsx:iam::123456789012:role/writer", RoleARN{}},
		{"arn:aws:iam::123456789012:role/ü", RoleARN{}},
		{"writer", RoleARN{}},
		{"orders-writer-with-a-longer-name", RoleARN{}},
		{"", RoleARN{}},
	})
}

func TestParseKinesisStreamARN(t *testing.T) {
	checkParse(t, ParseKinesisStreamARN, "want a Kinesis stream ARN", []parseCase[KinesisStreamARN]{
		{"arn:aws:kinesis:us-east-1:123456789012:stream/orders", KinesisStreamARN{"aws", "us-east-1", "123456789012", "orders"}},
		{"arn:aws-cn:kinesis:cn-north-1:123456789012:stream/orders", KinesisStreamARN{"aws-cn", "cn-north-1", "123456789012", "orders"}},
		{"arn:aws-us-gov:kinesis:us-gov-west-1:123456789012:stream/" + strings.Repeat("s", 128), KinesisStreamARN{"aws-us-gov", "us-gov-west-1", "123456789012", strings.Repeat("s", 128)}},
		{"arn:aws:kinesis:eu-west-1:444455556666:stream/Orders_v2.cdc-1", KinesisStreamARN{"aws", "eu-west-1", "444455556666", "Orders_v2.cdc-1"}},
		{"arn:aws:kinesis:us-east-1:123456789012:stream/" + strings.Repeat("s", 129), KinesisStreamARN{}},
		{"", KinesisStreamARN{}},
		{"orders", KinesisStreamARN{}},
		{"arn:aws:sqs:us-east-1:123456789012:orders", KinesisStreamARN{}},
		{"arn:aws:kinesis:us-east-1:123456789012:stream/a b", KinesisStreamARN{}},
		{"arn:aws:kinesis:us-east-1:123456789012:stream/", KinesisStreamARN{}},
		{"arn:aws:kinesis:us-east-1:123456789012:stream/a/b", KinesisStreamARN{}},
		{"arn:aws:kinesis:us-east-1:1234:stream/orders", KinesisStreamARN{}},
		{"arn:aws:kinesis:useast1:123456789012:stream/orders", KinesisStreamARN{}},
		{"arn:aws:kinesis::123456789012:stream/orders", KinesisStreamARN{}},
		{"arn:awsx:kinesis:us-east-1:123456789012:stream/orders", KinesisStreamARN{}},
		{"arn:aws:kinesis:us-east-1:123456789012:orders", KinesisStreamARN{}},
		{"arn:aws:kinesis:us-east-1:123456789012:stream/orders/consumer/c:1", KinesisStreamARN{}},
	})
}

func TestParseKeyARN(t *testing.T) {
	const uuid = "1234abcd-12ab-34cd-56ef-1234567890ab"
	const mrk = "mrk-0123456789abcdef0123456789abcdef"
	checkParse(t, ParseKeyARN, "resolve aliases first", []parseCase[KeyARN]{
		{"arn:aws:kms:us-east-1:123456789012:key/" + uuid, KeyARN{"aws", "us-east-1", "123456789012", uuid}},
		{"arn:aws:kms:us-east-1:123456789012:key/1234ABCD-12AB-34CD-56EF-1234567890AB", KeyARN{"aws", "us-east-1", "123456789012", "1234ABCD-12AB-34CD-56EF-1234567890AB"}},
		{"arn:aws-cn:kms:cn-north-1:123456789012:key/" + mrk, KeyARN{"aws-cn", "cn-north-1", "123456789012", mrk}},
		{"arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/" + mrk, KeyARN{"aws-us-gov", "us-gov-west-1", "123456789012", mrk}},
		{"", KeyARN{}},
		{uuid, KeyARN{}},
		{"arn:aws:kms:us-east-1:123456789012:alias/aws/kinesis", KeyARN{}},
		{"arn:aws:kms:us-east-1:123456789012:alias/db", KeyARN{}},
		{"arn:aws:kms:us-east-1:123456789012:key/x", KeyARN{}}, // accepted by the former [a-zA-Z0-9-]+ patterns
		{"arn:aws:kms:us-east-1:123456789012:key/mrk-0123456789ABCDEF0123456789ABCDEF", KeyARN{}},
		{"arn:aws:kms:us-east-1:123456789012:key/" + uuid + "0", KeyARN{}},
		{"arn:aws:kms:us-east-1:123456789012:key/*", KeyARN{}},
		{"arn:aws:kms:us-east-1:1234:key/" + uuid, KeyARN{}},
		{"arn:aws:kms:local:123456789012:key/" + uuid, KeyARN{}},
		{"arn:awsx:kms:us-east-1:123456789012:key/" + uuid, KeyARN{}},
		{"arn:aws:kinesis:us-east-1:123456789012:key/" + uuid, KeyARN{}},
	})
}

func TestParseSecretARN(t *testing.T) {
	checkParse(t, ParseSecretARN, "want a Secrets Manager secret ARN", []parseCase[SecretARN]{
		{"arn:aws:secretsmanager:eu-central-1:210987654321:secret:prod/cdcd-AbCdEf", SecretARN{"aws", "eu-central-1", "210987654321", "prod/cdcd-AbCdEf"}},
		{"arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:a_b+c=d.e@f-g", SecretARN{"aws-us-gov", "us-gov-west-1", "123456789012", "a_b+c=d.e@f-g"}},
		{"arn:aws:secretsmanager:us-east-1:123456789012:secret:db", SecretARN{"aws", "us-east-1", "123456789012", "db"}},
		{"", SecretARN{}},
		{"prod/cdcd", SecretARN{}},
		{"arn:aws:s3:::bucket", SecretARN{}},
		{"arn:aws:kms:us-east-1:123456789012:key/x", SecretARN{}},
		{"arn:aws:secretsmanager:us-east-1:123456789012:secret:", SecretARN{}},
		{"arn:aws:secretsmanager:us-east-1:123456789012:secret:*", SecretARN{}}, // accepted by the former .+ pattern
		{"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod-??????", SecretARN{}},
		{"arn:aws:secretsmanager:us-east-1:123456789012:secret:a b", SecretARN{}},
		{"arn:aws:secretsmanager:us-east-1:123456789012:secret/db", SecretARN{}},
		{"arn:aws:secretsmanager:virginia:123456789012:secret:db", SecretARN{}},
		{"arn:aws:secretsmanager:us-east-1:000:secret:db", SecretARN{}},
		{"arn:awsx:secretsmanager:us-east-1:123456789012:secret:db", SecretARN{}},
	})
}
