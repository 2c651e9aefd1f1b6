package codes

import "testing"

// TestCodeProperties writes out every code's owner, severity rank and
// classes, independently of the switches in codes.go.
func TestCodeProperties(t *testing.T) {
	tests := []struct {
		code     Code
		owner    Owner
		severity int // rank, 1 = most severe
		fatal    bool
		denial   bool
	}{
		{KinesisStreamNotFound, OwnerSink, 1, true, false},
		{SourceSlotLost, OwnerCapture, 2, true, false},
		{ClusterCMKInaccessible, OwnerClusterKey, 3, false, true},
		{RoleAccessDenied, OwnerRole, 4, false, true},
		{KinesisAccessDenied, OwnerSink, 5, false, true},
		{KinesisKMSAccessDenied, OwnerSink, 6, false, true},
		{SourcePrerequisiteUnmet, OwnerCapture, 7, false, false},
		{KinesisOversizeRecord, OwnerSink, 8, false, false},
		{SourceTableChanged, OwnerCapture, 9, false, false},
		{SpillFull, OwnerSpill, 10, false, false},
		{SourceUnavailable, OwnerCapture, 11, false, false},
		{KinesisThroughputExceeded, OwnerSink, 12, false, false},
		{InternalError, OwnerPipeline, 13, false, false},
		{Code("SOMETHING_NEW"), OwnerPipeline, 14, false, false},
	}
	for i, tt := range tests {
		t.Run(string(tt.code), func(t *testing.T) {
			if got := tt.code.Owner(); got != tt.owner {
				t.Errorf("Owner = %s, want %s", got, tt.owner)
			}
			if got := tt.code.Fatal(); got != tt.fatal {
				t.Errorf("Fatal = %v", got)
			}
			if got := tt.code.Denial(); got != tt.denial {
				t.Errorf("Denial = %v", got)
			}
			if i+1 != tt.severity {
				t.Fatalf("table out of order at %s", tt.code)
			}
			if i > 0 && tt.code.Severity() >= tests[i-1].code.Severity() {
				t.Errorf("Severity %d not below %s's %d", tt.code.Severity(), tests[i-1].code, tests[i-1].code.Severity())
			}
		})
	}
	all := All()
	if len(all) != len(tests)-1 {
		t.Fatalf("All() has %d codes, want %d", len(all), len(tests)-1)
	}
	for i, c := range all {
		if c != tests[i].code {
			t.Errorf("All()[%d] = %s, want %s", i, c, tests[i].code)
		}
	}
}

func TestOwners(t *testing.T) {
	owned := map[Owner]int{}
	for _, c := range All() {
		owned[c.Owner()]++
	}
	for _, o := range Owners() {
		if owned[o] == 0 {
			t.Errorf("owner %s owns no code", o)
		}
	}
	if len(owned) != len(Owners()) {
		t.Errorf("codes are owned by %v, Owners() = %v", owned, Owners())
	}
}
