package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/config"
	"github.com/cdcd-dev/cdcd/test/stsstub"
)

// TestSourceRoleSignsIAMTokens: with aws_role_arn, the IAM authentication
// token of every new connection is signed with the source role's
// credentials, assumed from the base identity.
func TestSourceRoleSignsIAMTokens(t *testing.T) {
	const role = "arn:aws:iam::123456789012:role/cdcd-source"
	sts := stsstub.New(t)
	sts.AddRole(role, "", true)
	cfg, err := config.Parse("c.toml", fmt.Sprintf(`
state_dir = "/tmp/x"
[aws]
sts_endpoint = %q
[[cluster]]
name = "db"
dsn = "postgres://cdcd@127.0.0.1:5432/db"
iam_auth = true
aws_role_arn = %q
[[stream]]
name = "s"
cluster = "db"
tables = ["public.t"]
[stream.target]
kinesis_stream = "k"
`, sts.URL(), role))
	if err != nil {
		t.Fatal(err)
	}
	base := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDBASE", "secret", "")}
	auth, err := SourceAuth(cfg, &cfg.Clusters[0], base, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	pcfg, err := pgconn.ParseConfig(cfg.Clusters[0].DSN)
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.Configure(context.Background(), pcfg); err != nil {
		t.Fatal(err)
	}
	if sts.AssumeRoleCalls() != 1 || sts.Requests()[0].RoleARN != role {
		t.Fatalf("the source role was not assumed: %+v", sts.Requests())
	}
	// The token is a presigned rds-db:connect URL signed with the role's
	// access key, not the base identity's.
	issued := sts.Requests()[0]
	if !strings.Contains(pcfg.Password, "X-Amz-Credential=") || strings.Contains(pcfg.Password, "AKIDBASE") || issued.ErrorCode != "" {
		t.Fatalf("token not signed with the role's credentials: %q", pcfg.Password)
	}
}
