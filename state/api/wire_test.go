package api

import (
	"encoding/json"
	"testing"
	"time"
)

func TestEpochSeconds(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.UnixMilli(1705318200125), "1705318200.125"},
		{time.UnixMilli(1705318200000), "1705318200.000"},
		{time.Unix(1705318200, 999_999_999), "1705318200.999"},
	}
	for _, tt := range tests {
		b, _ := epochSeconds(tt.in).MarshalJSON()
		if string(b) != tt.want {
			t.Errorf("%v -> %s, want %s", tt.in, b, tt.want)
		}
	}
}

// TestSourceUnknownsAbsent: lag in bytes and the snapshot's progress are
// left out while unknown rather than shown as zero, which would read as
// caught up.
func TestSourceUnknownsAbsent(t *testing.T) {
	b, err := json.Marshal(getOutput(StreamView{Source: &SourceInfo{Slot: "cdcd_orders", WALStatus: "reserved"}}))
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Source map[string]any }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	for _, member := range []string{"lagBytes", "snapshot"} {
		if v, ok := out.Source[member]; ok {
			t.Errorf("source.%s = %v while unknown, want it absent", member, v)
		}
	}
	if out.Source["slot"] != "cdcd_orders" || out.Source["lagSeconds"] != 0.0 {
		t.Errorf("source = %v", out.Source)
	}
}
