package ident

import "testing"

func TestNewStreamID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewStreamID()
		if !ValidID(id) {
			t.Fatalf("NewStreamID() = %q, not a valid id", id)
		}
		if seen[id] {
			t.Fatalf("NewStreamID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestDeriveID(t *testing.T) {
	a := DeriveID("7340000000000000000", "orders")
	if !ValidID(a) {
		t.Fatalf("DeriveID = %q, not a valid id", a)
	}
	if b := DeriveID("7340000000000000000", "orders"); a != b {
		t.Errorf("DeriveID not deterministic: %q, %q", a, b)
	}
	if DeriveID("ab", "c") == DeriveID("a", "bc") {
		t.Error("DeriveID ignores part boundaries")
	}
	if DeriveID("x") == DeriveID("x", "") {
		t.Error("DeriveID ignores an empty part")
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"kmabugltfmjdaj2siqr2qbxgju", true},
		{"0123456789abcdefghijklmnop", true},
		{"kmabugltfmjdaj2siqr2qbxgj", false},   // 25
		{"kmabugltfmjdaj2siqr2qbxgjuu", false}, // 27
		{"Kmabugltfmjdaj2siqr2qbxgju", false},  // upper case
		{"../../../../../../etc/pass", false},  // path
		{"ABC", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.in); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestStreamARN(t *testing.T) {
	got := StreamARN("aws", "us-east-1", "123456789012", "kmabugltfmjdaj2siqr2qbxgju", "ffthunp5stx6ffs2vyfqoatmfu")
	want := "arn:aws:cdcd:us-east-1:123456789012:cluster/kmabugltfmjdaj2siqr2qbxgju/stream/ffthunp5stx6ffs2vyfqoatmfu"
	if got != want {
		t.Errorf("StreamARN = %q, want %q", got, want)
	}
}
