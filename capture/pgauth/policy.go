package pgauth

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/cdcd-dev/cdcd/iam"
	"github.com/cdcd-dev/cdcd/ident"
)

// resourceIDRe is an RDS DbiResourceId or Aurora DbClusterResourceId.
var resourceIDRe = regexp.MustCompile(`^(db|cluster)-[A-Z0-9]+$`)

// Account locates the policy's resources.
type Account struct {
	Partition string // aws, aws-cn, aws-us-gov
	Region    string
	ID        string // 12 digits
}

// Policy returns the identity-policy statements the principal that reads
// the source needs: cdcd's base identity, or Source.RoleARN when set. user
// is the database user of the dsn; it is only used with IAMAuth. A source
// without IAM or Secrets Manager needs no AWS permission and gets none.
func (s *Source) Policy(acct Account, user string) ([]iam.Statement, error) {
	if s.Region != "" {
		acct.Region = s.Region
	}
	var out []iam.Statement
	if s.IAMAuth {
		arn, err := DBUserARN(acct, s.ResourceID, user)
		if err != nil {
			return nil, err
		}
		out = append(out, ConnectStatement(arn))
	}
	if s.SecretID != "" {
		st, err := SecretStatements(acct, s.SecretID, s.SecretKMSKey)
		if err != nil {
			return nil, err
		}
		out = append(out, st...)
	}
	return out, nil
}

// DBUserARN is the resource rds-db:connect names: one database user on one
// instance or Aurora cluster, identified by its resource id (DbiResourceId
// db-…, or the cluster's cluster-…), not by its name, so that a new
// database that reuses the name gets no access.
func DBUserARN(acct Account, resourceID, user string) (string, error) {
	if err := acct.check(); err != nil {
		return "", err
	}
	switch {
	case resourceID == "":
		return "", errors.New("db_resource_id is required for the rds-db:connect policy: the instance's DbiResourceId (aws rds describe-db-instances --query 'DBInstances[].DbiResourceId') or the Aurora cluster's DbClusterResourceId")
	case !resourceIDRe.MatchString(resourceID):
		return "", fmt.Errorf("db_resource_id %q is not a DbiResourceId (db-ABC…) or cluster resource id (cluster-ABC…)", resourceID)
	case user == "" || strings.ContainsAny(user, "*?/"):
		return "", fmt.Errorf("database user %q cannot name an rds-db:connect resource: set user= in the dsn", user)
	}
	return fmt.Sprintf("arn:%s:rds-db:%s:%s:dbuser:%s/%s", acct.Partition, acct.Region, acct.ID, resourceID, user), nil
}

// ConnectStatement allows signing in as the one database user arn names.
func ConnectStatement(dbUserARN string) iam.Statement {
	return iam.Statement{
		Sid:      "CdcdSourceIAMConnect",
		Effect:   "Allow",
		Action:   []string{"rds-db:connect"},
		Resource: []string{dbUserARN},
	}
}

// SecretARN returns the ARN of a secret given by ARN or by name. A name's
// ARN ends in six random characters IAM cannot know in advance, matched
// with "-??????" as AWS recommends (a "*" would also match other secrets
// whose names start the same).
func SecretARN(acct Account, secretID string) (string, error) {
	if strings.HasPrefix(secretID, "arn:") {
		if _, err := ident.ParseSecretARN(secretID); err != nil {
			return "", fmt.Errorf("secret_id %q is not a Secrets Manager secret ARN", secretID)
		}
		return secretID, nil
	}
	if err := acct.check(); err != nil {
		return "", err
	}
	return fmt.Sprintf("arn:%s:secretsmanager:%s:%s:secret:%s-??????", acct.Partition, acct.Region, acct.ID, secretID), nil
}

// SecretStatements allow reading the one secret and, when it is encrypted
// with a customer managed key (kmsKeyARN), decrypting with that key only
// through Secrets Manager in the secret's region. A secret under the
// aws/secretsmanager key needs no KMS statement: its key policy already
// trusts callers that may read the secret.
func SecretStatements(acct Account, secretID, kmsKeyARN string) ([]iam.Statement, error) {
	arn, err := SecretARN(acct, secretID)
	if err != nil {
		return nil, err
	}
	out := []iam.Statement{{
		Sid:      "CdcdSourceSecretRead",
		Effect:   "Allow",
		Action:   []string{"secretsmanager:GetSecretValue"},
		Resource: []string{arn},
	}}
	if kmsKeyARN == "" {
		return out, nil
	}
	if _, err := ident.ParseKeyARN(kmsKeyARN); err != nil {
		return nil, fmt.Errorf("secret_kms_key %q is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID); aliases do not work as policy resources", kmsKeyARN)
	}
	region := acct.Region
	if a, err := ident.ParseSecretARN(arn); err == nil {
		region = a.Region
	}
	out = append(out, iam.Statement{
		Sid:       "CdcdSourceSecretDecrypt",
		Effect:    "Allow",
		Action:    []string{"kms:Decrypt"},
		Resource:  []string{kmsKeyARN},
		Condition: map[string]map[string]any{"StringEquals": {"kms:ViaService": "secretsmanager." + region + ".amazonaws.com"}},
	})
	return out, nil
}

// PolicyDocument renders statements as an identity-policy document, ready
// for aws iam put-role-policy. IAM rejects a document without statements,
// so none is an error: print nothing for a source that needs no policy.
func PolicyDocument(stmts []iam.Statement) (string, error) {
	return iam.Policy{Version: iam.Version, Statement: stmts}.Indent()
}

func (a Account) check() error {
	switch {
	case !ident.ValidPartition(a.Partition):
		return fmt.Errorf("partition %q is not an AWS partition like aws", a.Partition)
	case !ident.ValidRegion(a.Region):
		return fmt.Errorf("region %q is not an AWS region like us-east-1", a.Region)
	case !ident.ValidAccount(a.ID):
		return fmt.Errorf("account %q is not a 12-digit AWS account id", a.ID)
	}
	return nil
}
