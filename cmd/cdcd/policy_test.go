package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/cdcd-dev/cdcd/config"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestPolicyGolden(t *testing.T) {
	cfg, err := config.Load("testdata/policy.toml")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := writePolicies(cfg, "orders", "arn:aws:sts::111122223333:assumed-role/cdcd-daemon/i-0abc", "", &out); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/policy.golden"
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Fatalf("policy output differs from %s (rerun with -update after checking):\n%s", golden, out.String())
	}
	// Each document must paste into IAM as is: valid JSON that names the
	// real ARNs.
	for _, part := range []string{"base", "trust", "permissions", "reader"} {
		var doc bytes.Buffer
		if err := writePolicies(cfg, "orders", "arn:aws:iam::111122223333:role/cdcd-daemon", part, &doc); err != nil {
			t.Fatal(err)
		}
		if !json.Valid(doc.Bytes()) {
			t.Errorf("--only %s is not valid JSON:\n%s", part, doc.String())
		}
	}
	for _, s := range []string{"arn:aws:kinesis:eu-west-1:444455556666:stream/orders-cdc", "c6a1f0e2-orders",
		"arn:aws:iam::111122223333:role/cdcd-daemon", "kinesis:PutRecords", "kms:GenerateDataKey", "sts:ExternalId",
		"rds-db:connect", "arn:aws:rds-db:eu-west-1:111122223333:dbuser:cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ/cdcd",
		"sts:AssumeRole", "sts:TagSession", "kinesis:GetRecords"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("policy output lacks %s", s)
		}
	}
}

func TestPolicyErrors(t *testing.T) {
	cfg, err := config.Load("testdata/policy.toml")
	if err != nil {
		t.Fatal(err)
	}
	// The file's cluster is read by the base identity itself: there is no
	// source role whose policy --only source could print.
	if err := writePolicies(cfg, "orders", "arn:aws:iam::111122223333:role/x", "source", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--only source: 0 documents") {
		t.Errorf("--only source without a source role: got %v", err)
	}
	if err := writePolicies(cfg, "nope", "arn:aws:iam::111122223333:role/x", "", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown stream: got %v", err)
	}
	if err := writePolicies(cfg, "", "not-an-arn", "", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "not-an-arn") {
		t.Errorf("a principal that is no ARN: got %v", err)
	}
}
