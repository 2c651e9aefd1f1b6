package config

import (
	"strings"
	"testing"
)

func TestPolicies(t *testing.T) {
	cfg, err := Parse("policies.toml", `
[aws]
region = "eu-west-1"
account = "111122223333"
[[cluster]]
name = "iam"
dsn = "postgres://cdcd@db.example.com/orders?sslmode=verify-full"
iam_auth = true
db_resource_id = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
[[cluster]]
name = "password"
dsn = "postgres://cdcd@db.example.com/orders"
password_env = "PGPASSWORD"
[[stream]]
name = "roled"
cluster = "iam"
tables = ["public.orders"]
target = { kinesis_stream = "orders-cdc", role_arn = "arn:aws:iam::444455556666:role/cdcd-orders", external_id = "c6a1f0e2-orders" }
[[stream]]
name = "plain"
cluster = "password"
tables = ["public.orders"]
target = { kinesis_stream = "plain-cdc" }
`)
	if err != nil {
		t.Fatal(err)
	}
	const principal = "arn:aws:iam::111122223333:role/cdcd-daemon"
	p, err := cfg.Policies("roled", principal)
	if err != nil {
		t.Fatal(err)
	}
	for doc, want := range map[string]string{
		p.Trust:       principal,
		p.Permissions: "arn:aws:kinesis:eu-west-1:444455556666:stream/orders-cdc",
		p.Source:      "arn:aws:rds-db:eu-west-1:111122223333:dbuser:cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ/cdcd",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("policy lacks %s:\n%s", want, doc)
		}
	}
	if p.Cluster != "iam" || p.RoleARN != "arn:aws:iam::444455556666:role/cdcd-orders" {
		t.Errorf("cluster %q role %q", p.Cluster, p.RoleARN)
	}
	// Without a role, on a cluster reached with a password, nothing is needed.
	if p, err := cfg.Policies("plain", principal); err != nil || p != (Policies{Cluster: "password"}) {
		t.Errorf("plain stream: %+v, %v", p, err)
	}
}
