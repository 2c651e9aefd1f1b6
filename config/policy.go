package config

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/capture/pgauth"
	"github.com/cdcd-dev/cdcd/rolecreds"
)

// Policies are the IAM policy documents one stream needs, each JSON ready
// to paste into IAM.
type Policies struct {
	// Cluster names the cluster the stream reads.
	Cluster string
	// RoleARN is the role the stream writes as; empty when cdcd writes
	// with its base identity, and then Trust and Permissions are empty.
	RoleARN string
	// Trust is the role's trust policy, naming cdcd's base principal.
	Trust string
	// Permissions is the role's permissions policy.
	Permissions string
	// Source is the identity policy cdcd's base principal needs to read
	// the cluster: rds-db:connect for IAM authentication, secretsmanager
	// and kms:Decrypt for a secret; empty when it needs none.
	Source string
}

// Policies assembles the policies of the stream called name for cdcd's
// base principal, an IAM or STS ARN.
func (c *Config) Policies(name, principal string) (Policies, error) {
	s := c.StreamNamed(name)
	if s == nil || name == "" {
		return Policies{}, fmt.Errorf("no stream %q in %s", name, c.Path)
	}
	cl := c.ClusterNamed(s.Cluster)
	p := Policies{Cluster: cl.Name, RoleARN: s.Target.RoleARN}
	var err error
	if p.Source, err = c.sourcePolicy(cl); err != nil || p.RoleARN == "" {
		return p, err
	}
	rc, err := c.RoleConfig(s, "", cl.Identifier, nil)
	if err != nil {
		return p, err
	}
	if p.Trust, err = rolecreds.TrustPolicy(principal, rc, true); err != nil {
		return p, err
	}
	p.Permissions, err = rolecreds.PermissionsPolicy(rc)
	return p, err
}

func (c *Config) sourcePolicy(cl *Cluster) (string, error) {
	pcfg, err := pgconn.ParseConfig(cl.DSN)
	if err != nil {
		return "", fmt.Errorf("cluster %s dsn: %w", cl.Name, err)
	}
	stmts, err := cl.Source.Policy(pgauth.Account{Partition: c.AWS.Partition, Region: c.AWS.Region, ID: c.AWS.Account}, pcfg.User)
	if err != nil || len(stmts) == 0 {
		return "", err
	}
	return pgauth.PolicyDocument(stmts)
}
