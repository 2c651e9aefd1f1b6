package config

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cdcd-dev/cdcd/iam"
)

// everything uses every AWS feature cdcd has: a stream role, a stream
// without one, a KMS-encrypted target (the role's kms statement), a cluster
// key, a Secrets Manager secret under a customer managed key, RDS IAM
// authentication and a source role.
const everything = `
[aws]
region = "eu-west-1"
role_arn_allow = ["arn:aws:iam::444455556666:role/cdcd-*"]
[[cluster]]
name = "iam"
identifier = "kmabugltfmjdaj2siqr2qbxgju"
dsn = "postgres://cdcd@db.example.com/orders?sslmode=verify-full"
iam_auth = true
db_resource_id = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
cluster_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
[[cluster]]
name = "secret"
dsn = "postgres://cdcd@db.example.com/orders?sslmode=verify-full"
secret_id = "arn:aws:secretsmanager:eu-west-1:777788889999:secret:cdcd-pg-AbCdEf"
secret_kms_key = "arn:aws:kms:eu-west-1:777788889999:key/5678abcd-12ab-34cd-56ef-1234567890ab"
aws_role_arn = "arn:aws:iam::777788889999:role/cdcd-source"
cluster_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
[[stream]]
name = "roled"
cluster = "iam"
tables = ["public.orders"]
target = { kinesis_stream = "orders-cdc", role_arn = "arn:aws:iam::444455556666:role/cdcd-orders", external_id = "c6a1f0e2-orders" }
[[stream]]
name = "plain"
cluster = "secret"
tables = ["public.orders"]
target = { kinesis_stream = "plain-cdc" }
`

const principal = "arn:aws:sts::111122223333:assumed-role/cdcd-daemon/i-0abc"

// policiesOf parses everything and returns its policies for the stream
// called name, or for all with "".
func policiesOf(t *testing.T, name string) []Document {
	t.Helper()
	cfg, err := Parse("policies.toml", everything)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := cfg.Policies(name, principal)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

func TestPolicies(t *testing.T) {
	docs := policiesOf(t, "")
	parts := map[string]string{}
	for _, d := range docs {
		if _, dup := parts[d.Part]; dup && d.Part != "trust" && d.Part != "permissions" {
			t.Errorf("two %s documents", d.Part)
		}
		parts[d.Part] += d.JSON
	}
	// Who gets what: the base identity assumes the roles, uses the cluster
	// key, reads the source it reads itself and writes the role-less stream.
	for part, want := range map[string][]string{
		"base": {`"arn:aws:iam::444455556666:role/cdcd-orders"`, `"sts:TagSession"`, `"arn:aws:iam::777788889999:role/cdcd-source"`,
			`"kms:EncryptionContext:cdcd:cluster": "kmabugltfmjdaj2siqr2qbxgju"`, `"kms:EncryptionContext:cdcd:cluster": "*"`, `"CdcdClusterKey2"`,
			"arn:aws:rds-db:eu-west-1:111122223333:dbuser:cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ/cdcd",
			"arn:aws:kinesis:eu-west-1:111122223333:stream/plain-cdc"},
		"trust":        {`"AWS": "arn:aws:iam::111122223333:role/cdcd-daemon"`, `"sts:ExternalId": "c6a1f0e2-orders"`},
		"permissions":  {"arn:aws:kinesis:eu-west-1:444455556666:stream/orders-cdc", `"kms:GenerateDataKey"`},
		"source":       {"secretsmanager:GetSecretValue", "secretsmanager.eu-west-1.amazonaws.com"},
		"source-trust": {`"AWS": "arn:aws:iam::111122223333:role/cdcd-daemon"`},
		"reader":       {"kinesis:GetRecords", "arn:aws:kinesis:eu-west-1:444455556666:stream/orders-cdc", "arn:aws:kinesis:eu-west-1:111122223333:stream/plain-cdc"},
	} {
		for _, w := range want {
			if !strings.Contains(parts[part], w) {
				t.Errorf("%s policy lacks %s:\n%s", part, w, parts[part])
			}
		}
	}
	if strings.Contains(parts["base"], "secretsmanager:") || strings.Contains(parts["base"], "orders-cdc") {
		t.Errorf("the base identity got what the source role or the stream role does:\n%s", parts["base"])
	}
	// One stream: its role, its cluster, its reader; nothing of the other.
	for _, d := range policiesOf(t, "plain") {
		if strings.Contains(d.JSON, "orders-cdc") || strings.Contains(d.JSON, "rds-db") {
			t.Errorf("policy of stream plain names stream roled's resources:\n%s", d.JSON)
		}
	}
	cfg, err := Parse("policies.toml", everything)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Policies("nope", principal); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown stream: %v", err)
	}
}

// TestPolicyCoversEveryCall: every AWS API action cdcd's code calls appears
// in the policies of a configuration that uses every feature. The actions
// are read from the code, not listed here: each request type of an AWS SDK
// service (svc.NameInput) that a non-test file names, in a narrow client
// interface or a call, is the action svc:Name. A new call without a policy
// statement fails this test.
func TestPolicyCoversEveryCall(t *testing.T) {
	called := sdkActions(t, "..")
	for _, a := range []string{"kinesis:PutRecords", "kinesis:DescribeStreamSummary", "kms:GenerateDataKey", "kms:Decrypt",
		"sts:AssumeRole", "secretsmanager:GetSecretValue", "kinesis:GetRecords"} {
		if !slices.Contains(called, a) {
			t.Fatalf("the walk of the code did not find %s: it is broken (found %v)", a, called)
		}
	}
	// Signing an RDS IAM token calls no API, but the login needs it.
	called = append(called, "rds-db:connect")
	granted := map[string]bool{}
	for _, d := range policiesOf(t, "") {
		var p iam.Policy
		if err := json.Unmarshal([]byte(d.JSON), &p); err != nil {
			t.Fatalf("%s: %v", d.Title, err)
		}
		for _, st := range p.Statement {
			for _, a := range actions(st.Action) {
				granted[a] = true
			}
		}
	}
	for _, a := range called {
		switch {
		case a == "sts:GetCallerIdentity":
			// Every identity may call it; IAM has no way to deny it.
		case strings.HasPrefix(a, "dsql:"):
			// cdcd streams calls the daemon's own control plane, not AWS.
		case !granted[a]:
			t.Errorf("cdcd calls %s, and cdcd policy grants it to nobody", a)
		}
	}
}

// actions lists a statement's Action, a string or a list of strings.
func actions(v any) []string {
	if s, ok := v.(string); ok {
		return []string{s}
	}
	var out []string
	for _, a := range v.([]any) {
		out = append(out, a.(string))
	}
	return out
}

// sdkActions walks the module's non-test Go files below root and returns
// "svc:Name" for every svc.NameInput they name, where svc is an AWS SDK
// service package.
func sdkActions(t *testing.T, root string) []string {
	t.Helper()
	const sdk = "github.com/aws/aws-sdk-go-v2/service/"
	var out []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "test") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		services := map[string]string{} // local name → service
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if svc, ok := strings.CutPrefix(p, sdk); ok && !strings.Contains(svc, "/") {
				local := svc
				if imp.Name != nil {
					local = imp.Name.Name
				}
				services[local] = svc
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && services[x.Name] != "" {
				if op, ok := strings.CutSuffix(sel.Sel.Name, "Input"); ok {
					out = append(out, services[x.Name]+":"+op)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return slices.Compact(slices.Sorted(slices.Values(out)))
}
