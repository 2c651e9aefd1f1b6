package pgauth

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test -update if the change is intended):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestPolicyGolden(t *testing.T) {
	acct := Account{Partition: "aws", Region: "us-east-1", ID: "123456789012"}
	tests := []struct {
		name string
		src  Source
		acct Account
		user string
	}{
		{"iam_instance", Source{IAMAuth: true, ResourceID: "db-ABCDEFGHIJKLMNOPQRSTUVWXY1"}, acct, "cdcd"},
		{"iam_aurora_cluster_region", Source{IAMAuth: true, ResourceID: "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY2", Region: "eu-west-1"}, acct, "cdcd_reader"},
		{"iam_govcloud", Source{IAMAuth: true, ResourceID: "db-GOV1234567890"}, Account{Partition: "aws-us-gov", Region: "us-gov-west-1", ID: "123456789012"}, "cdcd"},
		{"secret_arn_aws_managed_key", Source{SecretID: "arn:aws:secretsmanager:eu-central-1:210987654321:secret:prod/cdcd-AbCdEf"}, acct, ""},
		{"secret_arn_customer_key", Source{
			SecretID:     "arn:aws:secretsmanager:eu-central-1:210987654321:secret:prod/cdcd-AbCdEf",
			SecretKMSKey: "arn:aws:kms:eu-central-1:210987654321:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		}, acct, ""},
		{"secret_name_customer_key", Source{
			SecretID:     "prod/cdcd",
			SecretKMSKey: "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		}, acct, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stmts, err := tt.src.Policy(tt.acct, tt.user)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := PolicyDocument(stmts)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "policy_"+tt.name+".json", doc)
		})
	}
}

func TestPolicyNotNeeded(t *testing.T) {
	acct := Account{Partition: "aws", Region: "us-east-1", ID: "123456789012"}
	for _, src := range []Source{{}, {PasswordFile: "/run/secrets/pg"}, {PasswordEnv: "PGPASSWORD"}} {
		stmts, err := src.Policy(acct, "cdcd")
		if err != nil || len(stmts) != 0 {
			t.Errorf("%+v: statements %+v, err %v; want none", src, stmts, err)
		}
	}
	if _, err := PolicyDocument(nil); err == nil {
		t.Error("an empty policy document is invalid in IAM: want an error")
	}
}

func TestPolicyErrors(t *testing.T) {
	acct := Account{Partition: "aws", Region: "us-east-1", ID: "123456789012"}
	tests := []struct {
		name string
		src  Source
		acct Account
		user string
		want string
	}{
		{"iam without resource id", Source{IAMAuth: true}, acct, "cdcd", "db_resource_id is required"},
		{"iam with a name for the resource id", Source{IAMAuth: true, ResourceID: "mydb"}, acct, "cdcd", "is not a DbiResourceId"},
		{"iam without user", Source{IAMAuth: true, ResourceID: "db-ABC"}, acct, "", "set user= in the dsn"},
		{"iam wildcard user", Source{IAMAuth: true, ResourceID: "db-ABC"}, acct, "*", "cannot name"},
		{"bad account", Source{IAMAuth: true, ResourceID: "db-ABC"}, Account{Partition: "aws", Region: "us-east-1", ID: "000"}, "u", "12-digit"},
		{"alias key", Source{SecretID: "db", SecretKMSKey: "arn:aws:kms:us-east-1:123456789012:alias/db"}, acct, "", "aliases"},
		{"bad secret arn", Source{SecretID: "arn:aws:kms:us-east-1:123456789012:key/x"}, acct, "", "not a Secrets Manager secret ARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.src.Policy(tt.acct, tt.user)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
