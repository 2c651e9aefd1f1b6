package state

import "testing"

func TestFormatLSN(t *testing.T) {
	if got := FormatLSN(0x16_B374D848); got != "16/B374D848" {
		t.Errorf("FormatLSN = %q", got)
	}
	if got := FormatLSN(0); got != "0/0" {
		t.Errorf("FormatLSN(0) = %q", got)
	}
}
