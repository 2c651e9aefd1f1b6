// Package iam holds the IAM policy document cdcd prints and sends: one type
// in the shape IAM prints, and one renderer, so that every policy cdcd
// produces is encoded the same way.
package iam

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Version is the IAM policy language version; the older 2008-10-17 does
// not expand policy variables such as ${aws:PrincipalAccount}.
const Version = "2012-10-17"

// Policy is a policy document. The field order is the JSON key order.
type Policy struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one policy statement. Action and Resource hold a string or a
// []string: IAM reads either, and the document shows what was given.
// Condition maps are sorted by encoding/json, so one Statement always
// renders to the same bytes.
type Statement struct {
	Sid       string                    `json:"Sid"`
	Effect    string                    `json:"Effect"`
	Principal map[string]string         `json:"Principal,omitempty"`
	Action    any                       `json:"Action"`
	Resource  any                       `json:"Resource,omitempty"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

// Indent renders p for people: two-space indents, ending in a newline,
// ready to paste into IAM or pass to the AWS CLI.
func (p Policy) Indent() (string, error) { return p.render(true) }

// Compact renders p on one line without a trailing newline, the form to
// send where size counts, as in an STS session policy.
func (p Policy) Compact() (string, error) { return p.render(false) }

// render marshals without HTML escaping, so that an ARN or external id reads
// the same in the policy as in configuration. IAM rejects a document
// without statements, so that is an error here rather than there.
func (p Policy) render(indent bool) (string, error) {
	if len(p.Statement) == 0 {
		return "", errors.New("encode policy: no statements")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(p); err != nil {
		return "", fmt.Errorf("encode policy: %w", err)
	}
	out := buf.String()
	if !indent {
		out = strings.TrimSuffix(out, "\n")
	}
	return out, nil
}
