package config

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcd-dev/cdcd/atrest"
	"github.com/cdcd-dev/cdcd/capture/pgauth"
	"github.com/cdcd-dev/cdcd/iam"
	"github.com/cdcd-dev/cdcd/rolecreds"
)

// Document is one IAM policy document cdcd needs, ready to paste into IAM.
type Document struct {
	// Part is what `cdcd policy --only` selects: base, trust, permissions,
	// source, source-trust or reader.
	Part string
	// Title says whose document it is and where it goes in IAM.
	Title string
	// JSON is the document, indented and ending in a newline.
	JSON string
}

// Policies returns the IAM policy documents cdcd needs, for every stream
// or, with a name, for that stream only: one identity policy for cdcd's
// base identity principal (an IAM or STS ARN) with every call it makes
// itself; each stream role's trust and permissions policies; each source
// role's; and the identity policy of a reader that runs cdcd tail. Without
// aws.account, ARNs are built in the principal's account, the one run
// finds with sts:GetCallerIdentity.
func (c *Config) Policies(name, principal string) ([]Document, error) {
	base, err := rolecreds.BasePrincipal(principal)
	if err != nil {
		return nil, err
	}
	a, _ := arn.Parse(base) // BasePrincipal checked it
	cfg, err := c.narrowed(name)
	if err != nil {
		return nil, err
	}
	cfg.AWS.Account = cmp.Or(cfg.AWS.Account, a.AccountID)
	stmts, err := cfg.baseStatements()
	if err != nil {
		return nil, err
	}
	var docs []Document
	if len(stmts) > 0 {
		doc, err := document("base", "Identity policy of cdcd's base identity "+base+" (IAM: an inline or managed policy on it)", stmts)
		if err != nil {
			return nil, err
		}
		docs = append(docs, doc)
	}
	roles, err := cfg.roleDocuments(principal)
	if err != nil {
		return nil, err
	}
	sources, err := cfg.sourceRoleDocuments(base)
	if err != nil {
		return nil, err
	}
	docs = append(append(docs, roles...), sources...)
	reader, err := cfg.readerDocument()
	if err != nil || reader.JSON == "" {
		return docs, err
	}
	return append(docs, reader), nil
}

// narrowed is a copy of c with only the stream called name and its
// cluster, or all of c when name is "".
func (c *Config) narrowed(name string) (*Config, error) {
	cfg := *c
	if name == "" {
		return &cfg, nil
	}
	s := c.StreamNamed(name)
	if s == nil {
		return nil, fmt.Errorf("no stream %q in %s", name, c.Path)
	}
	cfg.Streams, cfg.Clusters = []Stream{*s}, []Cluster{*c.ClusterNamed(s.Cluster)}
	return &cfg, nil
}

// baseStatements are what the base identity calls itself: sts:AssumeRole
// (and sts:TagSession, as cdcd tags stream sessions) on the roles, the
// cluster keys, the sources it reads without a source role, and Kinesis for
// the streams without a role.
func (c *Config) baseStatements() ([]iam.Statement, error) {
	var out []iam.Statement
	var streamRoles, sourceRoles []string
	for _, s := range c.Streams {
		if s.Target.RoleARN != "" {
			streamRoles = append(streamRoles, s.Target.RoleARN)
		}
	}
	for _, cl := range c.Clusters {
		if cl.RoleARN != "" {
			sourceRoles = append(sourceRoles, cl.RoleARN)
		}
	}
	if len(streamRoles) > 0 {
		out = append(out, iam.Statement{Sid: "CdcdAssumeStreamRoles", Effect: "Allow",
			Action: []string{"sts:AssumeRole", "sts:TagSession"}, Resource: sortedSet(streamRoles)})
	}
	if len(sourceRoles) > 0 {
		out = append(out, iam.Statement{Sid: "CdcdAssumeSourceRoles", Effect: "Allow",
			Action: "sts:AssumeRole", Resource: sortedSet(sourceRoles)})
	}
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		if cl.ClusterKeyARN != "" {
			out = append(out, atrest.KeyStatement("CdcdClusterKey", cl.ClusterKeyARN, cl.Identifier))
		}
		if cl.RoleARN == "" {
			st, err := c.sourceStatements(cl)
			if err != nil {
				return nil, err
			}
			out = append(out, st...)
		}
	}
	for i := range c.Streams {
		if s := &c.Streams[i]; s.Target.RoleARN == "" {
			st, err := c.writerStatements(s)
			if err != nil {
				return nil, err
			}
			out = append(out, st...)
		}
	}
	return out, nil
}

// writerStatements are the permissions that write a stream's target.
func (c *Config) writerStatements(s *Stream) ([]iam.Statement, error) {
	rc, err := c.RoleConfig(s, "", c.ClusterNamed(s.Cluster).Identifier, nil)
	if err != nil {
		return nil, err
	}
	st, err := rolecreds.Statements(rc)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", s.Name, err)
	}
	return st, nil
}

// roleDocuments are the trust and permissions policies of each stream role.
func (c *Config) roleDocuments(principal string) ([]Document, error) {
	var docs []Document
	for i := range c.Streams {
		s := &c.Streams[i]
		if s.Target.RoleARN == "" {
			continue
		}
		rc, err := c.RoleConfig(s, "", c.ClusterNamed(s.Cluster).Identifier, nil)
		if err != nil {
			return nil, err
		}
		trust, err := rolecreds.TrustPolicy(principal, rc, true)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", s.Name, err)
		}
		perms, err := rolecreds.PermissionsPolicy(rc)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", s.Name, err)
		}
		role := s.Target.RoleARN + ", the role of stream " + s.Name
		docs = append(docs,
			Document{Part: "trust", Title: "Trust policy of " + role + " (IAM: the role's trust relationships)", JSON: trust},
			Document{Part: "permissions", Title: "Permissions policy of " + role + " (IAM: an inline or managed policy on the role)", JSON: perms})
	}
	return docs, nil
}

// sourceRoleDocuments are the permissions and trust policies of each
// cluster's aws_role_arn, which reads the source in the base identity's
// place. cdcd sends no external id for it.
func (c *Config) sourceRoleDocuments(base string) ([]Document, error) {
	var docs []Document
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		if cl.RoleARN == "" {
			continue
		}
		role := cl.RoleARN + ", the source role of cluster " + cl.Name
		stmts, err := c.sourceStatements(cl)
		if err != nil {
			return nil, err
		}
		perms, err := document("source", "Permissions policy of "+role+" (IAM: an inline or managed policy on the role)", stmts)
		if err != nil {
			return nil, err
		}
		trust, err := document("source-trust", "Trust policy of "+role+" (IAM: the role's trust relationships)", []iam.Statement{{
			Sid: "CdcdAssumeSourceRole", Effect: "Allow", Principal: map[string]string{"AWS": base}, Action: "sts:AssumeRole"}})
		if err != nil {
			return nil, err
		}
		docs = append(docs, perms, trust)
	}
	return docs, nil
}

// sourceStatements are what reading a cluster's source needs: rds-db:connect
// for IAM authentication, secretsmanager and kms:Decrypt for a secret.
func (c *Config) sourceStatements(cl *Cluster) ([]iam.Statement, error) {
	pcfg, err := pgconn.ParseConfig(cl.DSN)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cl.Name, pgauth.DSNError(err))
	}
	st, err := cl.Source.Policy(pgauth.Account{Partition: c.AWS.Partition, Region: c.AWS.Region, ID: c.AWS.Account}, pcfg.User)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cl.Name, err)
	}
	return st, nil
}

// readerActions are the Kinesis calls of cdcd tail (package consumer).
var readerActions = []string{"kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"}

// readerDocument is the identity policy of whoever reads the streams' records
// with cdcd tail: a consumer, not the daemon. Reading a stream encrypted
// with a KMS key needs kms:Decrypt through Kinesis for that stream.
func (c *Config) readerDocument() (Document, error) {
	var streams []string
	for i := range c.Streams {
		a, err := c.KinesisStreamARN(&c.Streams[i])
		if err != nil {
			return Document{}, err
		}
		streams = append(streams, a)
	}
	if len(streams) == 0 {
		return Document{}, nil
	}
	streams = sortedSet(streams)
	return document("reader", "Identity policy of a reader that runs cdcd tail (not the daemon)", []iam.Statement{{
		Sid: "CdcdKinesisRead", Effect: "Allow", Action: readerActions, Resource: streams,
	}, {
		Sid: "CdcdKinesisReadKMS", Effect: "Allow", Action: "kms:Decrypt", Resource: "*",
		Condition: map[string]map[string]any{"StringEquals": {
			"kms:ViaService":                        rolecreds.ViaKinesis(c.AWS.Partition, c.AWS.Region),
			"kms:EncryptionContext:aws:kinesis:arn": streams,
		}},
	}})
}

// document renders stmts as one identity or trust policy, numbering
// repeated statement ids (IAM requires them unique in a document).
func document(part, title string, stmts []iam.Statement) (Document, error) {
	seen := map[string]int{}
	for i := range stmts {
		sid := stmts[i].Sid
		if seen[sid]++; seen[sid] > 1 {
			stmts[i].Sid = sid + strconv.Itoa(seen[sid])
		}
	}
	text, err := iam.Policy{Version: iam.Version, Statement: stmts}.Indent()
	return Document{Part: part, Title: title, JSON: text}, err
}

// sortedSet sorts s and drops repeats.
func sortedSet(s []string) []string {
	return slices.Compact(slices.Sorted(slices.Values(s)))
}
