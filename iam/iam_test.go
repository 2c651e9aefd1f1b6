package iam

import "testing"

func TestRender(t *testing.T) {
	p := Policy{Version: Version, Statement: []Statement{{
		Sid:      "List",
		Effect:   "Allow",
		Action:   []string{"kinesis:PutRecord", "kinesis:PutRecords"},
		Resource: []string{"arn:aws:kinesis:us-east-1:123456789012:stream/a&b"},
	}, {
		Sid:       "Single",
		Effect:    "Allow",
		Principal: map[string]string{"AWS": "arn:aws:iam::123456789012:role/r"},
		Action:    "sts:AssumeRole",
		Condition: map[string]map[string]any{"StringEquals": {"b": "<2>", "a": []string{"x"}}},
	}}}
	tests := []struct {
		name   string
		render func() (string, error)
		want   string
	}{
		{"compact", p.Compact, `{"Version":"2012-10-17","Statement":[` +
			`{"Sid":"List","Effect":"Allow","Action":["kinesis:PutRecord","kinesis:PutRecords"],"Resource":["arn:aws:kinesis:us-east-1:123456789012:stream/a&b"]},` +
			`{"Sid":"Single","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/r"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"a":["x"],"b":"<2>"}}}]}`},
		{"indent", p.Indent, `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "List",
      "Effect": "Allow",
      "Action": [
        "kinesis:PutRecord",
        "kinesis:PutRecords"
      ],
      "Resource": [
        "arn:aws:kinesis:us-east-1:123456789012:stream/a&b"
      ]
    },
    {
      "Sid": "Single",
      "Effect": "Allow",
      "Principal": {
        "AWS": "arn:aws:iam::123456789012:role/r"
      },
      "Action": "sts:AssumeRole",
      "Condition": {
        "StringEquals": {
          "a": [
            "x"
          ],
          "b": "<2>"
        }
      }
    }
  ]
}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.render()
			if err != nil || got != tt.want {
				t.Errorf("got %v\n%s\nwant\n%s", err, got, tt.want)
			}
		})
	}
}

func TestRenderRefusesNoStatements(t *testing.T) {
	for _, p := range []Policy{{Version: Version}, {Version: Version, Statement: []Statement{}}} {
		if out, err := p.Indent(); err == nil {
			t.Errorf("Indent() = %q, want an error: IAM rejects a policy without statements", out)
		}
		if out, err := p.Compact(); err == nil {
			t.Errorf("Compact() = %q, want an error: IAM rejects a policy without statements", out)
		}
	}
}
