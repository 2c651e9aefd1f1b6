package ident

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	tests := []struct {
		name  string
		valid func(string) bool
		cases map[string]bool
	}{
		{"ValidPartition", ValidPartition, map[string]bool{
			"aws":        true,
			"aws-cn":     true,
			"aws-us-gov": true,
			"aws-iso-b":  true,
			"aws-eusc":   true,
			"":           false,
			"AWS":        false,
			"awsx":       false, // accepted by the former aws[a-z-]* patterns
			"aws-":       false,
			"aws--cn":    false,
			"gcp":        false,
		}},
		{"ValidRegion", ValidRegion, map[string]bool{
			"us-east-1":      true,
			"eu-west-1":      true,
			"ap-southeast-2": true,
			"us-gov-west-1":  true,
			"cn-north-1":     true,
			"eusc-de-east-1": true, // refused by the former [a-z]{2}(-[a-z]+)+-\d patterns
			"us-east-12":     true,
			"":               false,
			"moon":           false,
			"virginia":       false,
			"useast1":        false,
			"us-east":        false,
			"US-EAST-1":      false,
			"u-east-1":       false,
			"us-east-1a":     false,
			"1":              false, // accepted by the former [a-z0-9-]+ in ARN patterns
		}},
		{"ValidAccount", ValidAccount, map[string]bool{
			"123456789012":  true,
			"000000000000":  true,
			"":              false,
			"000":           false,
			"12345678901":   false,
			"1234567890123": false,
			"12345678901a":  false,
			"١٢٣٤٥٦٧٨٩٠١٢":  false, // digits, but not ASCII ones
		}},
		{"ValidKinesisStreamName", ValidKinesisStreamName, map[string]bool{
			"orders":                 true,
			"k":                      true,
			"Orders_v2.cdc-1":        true,
			strings.Repeat("s", 128): true,
			strings.Repeat("s", 129): false,
			"":                       false,
			"a b":                    false,
			"a/b":                    false,
			"a:b":                    false,
		}},
		{"ValidExternalID", ValidExternalID, map[string]bool{
			"cdcd-ext-3f9a7c21":          true,
			"ab":                         true,
			"a_b+c=d,e.f@g:h/i-j":        true,
			strings.Repeat("e", 1224):    true,
			strings.Repeat("e", 1225):    false,
			"x":                          false,
			"":                           false,
			"ext id":                     false,
			"ext*id":                     false,
			"zahlungsüberweisung-extern": false,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for s, want := range tt.cases {
				if got := tt.valid(s); got != want {
					t.Errorf("%s(%q) = %v, want %v", tt.name, s, got, want)
				}
			}
		})
	}
}
