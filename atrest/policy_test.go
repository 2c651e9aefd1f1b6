package atrest

import (
	"maps"
	"reflect"
	"slices"
	"testing"
)

// TestKeyStatement: the statement allows exactly the calls a Keyring makes
// (the methods of KMSAPI) and names exactly the encryption context every
// data key is bound to.
func TestKeyStatement(t *testing.T) {
	const key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	const cluster = "kmabugltfmjdaj2siqr2qbxgju"
	api := reflect.TypeFor[KMSAPI]()
	var calls []string
	for i := range api.NumMethod() {
		calls = append(calls, "kms:"+api.Method(i).Name)
	}
	st := KeyStatement("Sid", key, cluster)
	if got := st.Action.([]string); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(calls))) {
		t.Errorf("actions %v, want the Keyring's calls %v", got, calls)
	}
	if st.Resource != key || st.Effect != "Allow" || st.Sid != "Sid" {
		t.Errorf("statement %+v", st)
	}
	context := EncryptionContext(cluster, "s")
	keys := st.Condition["ForAllValues:StringEquals"]["kms:EncryptionContextKeys"].([]string)
	if !slices.Equal(slices.Sorted(slices.Values(keys)), slices.Sorted(maps.Keys(context))) {
		t.Errorf("context keys %v, want those of EncryptionContext %v", keys, context)
	}
	if got := st.Condition["StringEquals"]["kms:EncryptionContext:"+ContextCluster]; got != context[ContextCluster] {
		t.Errorf("cluster condition %v, want %s", got, cluster)
	}
	// A cluster whose identifier cdcd derives at start: any identifier, but
	// the context must still name one.
	derived := KeyStatement("Sid", key, "")
	if got := derived.Condition["StringLike"]["kms:EncryptionContext:"+ContextCluster]; got != "*" || derived.Condition["StringEquals"] != nil {
		t.Errorf("without an identifier: %+v", derived.Condition)
	}
}
