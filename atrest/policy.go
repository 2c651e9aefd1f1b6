package atrest

import "github.com/cdcd-dev/cdcd/iam"

// KeyStatement allows what a Keyring calls on the cluster key keyARN,
// kms:GenerateDataKey and kms:Decrypt, for the data keys of one cluster's
// streams only: the encryption context must carry exactly EncryptionContext's
// keys, with clusterID as ContextCluster. With clusterID "" (cdcd derives it
// from the server at start) any cluster identifier is allowed.
func KeyStatement(sid, keyARN, clusterID string) iam.Statement {
	cluster := map[string]any{"kms:EncryptionContext:" + ContextCluster: clusterID}
	match := "StringEquals"
	if clusterID == "" {
		cluster["kms:EncryptionContext:"+ContextCluster] = "*"
		match = "StringLike"
	}
	return iam.Statement{
		Sid:      sid,
		Effect:   "Allow",
		Action:   []string{"kms:Decrypt", "kms:GenerateDataKey"},
		Resource: keyARN,
		Condition: map[string]map[string]any{
			match: cluster,
			// ForAllValues alone would also match a call with no context;
			// the condition above requires the cluster key to be there.
			"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": []string{ContextCluster, ContextStream}},
		},
	}
}
