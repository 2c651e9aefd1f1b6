package api

import (
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
