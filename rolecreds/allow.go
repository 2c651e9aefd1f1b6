package rolecreds

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cdcd-dev/cdcd/ident"
)

// AllowKey is the configuration key that holds the allow-list.
const AllowKey = "aws.role_arn_allow"

// ErrRoleNotAllowed is returned (wrapped) by AllowList.Check for a role ARN
// that no pattern matches.
var ErrRoleNotAllowed = errors.New("role ARN not allowed")

// AllowList is cdcd's stand-in for iam:PassRole: a stream may name a role
// only if the operator's configuration allows it. Without the check, anyone
// who can call CreateStream could make the daemon write with any role its
// base identity can assume. An empty list allows nothing.
//
// A pattern is an exact ARN or a glob in which "*" matches any run of
// characters (including "/" and ":", as in IAM policy ARNs) and "?" matches
// one character. Matching is case-sensitive, as IAM's ARN matching is.
type AllowList struct {
	patterns []string
}

// NewAllowList checks every pattern: each must start with "arn:" so that a
// role name or a stray "*" is not taken for a pattern, and a pattern without
// wildcards must be a valid role ARN.
func NewAllowList(patterns []string) (*AllowList, error) {
	a := &AllowList{patterns: make([]string, 0, len(patterns))}
	for i, p := range patterns {
		if !strings.HasPrefix(p, "arn:") {
			return nil, fmt.Errorf("%s[%d] %q: want a role ARN or an ARN pattern with * and ? starting with \"arn:\"", AllowKey, i, p)
		}
		if !strings.ContainsAny(p, "*?") {
			if _, err := ident.ParseRoleARN(p); err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", AllowKey, i, err)
			}
		}
		a.patterns = append(a.patterns, p)
	}
	return a, nil
}

// Check returns nil if roleARN is a valid role ARN matched by a pattern, and
// otherwise an error naming the ARN and the configuration key. The patterns
// are left out of the message, which may reach API callers.
func (a *AllowList) Check(roleARN string) error {
	if _, err := ident.ParseRoleARN(roleARN); err != nil {
		return err
	}
	for _, p := range a.patterns {
		if globMatch(p, roleARN) {
			return nil
		}
	}
	if len(a.patterns) == 0 {
		return fmt.Errorf("%w: %q: %s is empty; add the role ARN or a matching pattern to it", ErrRoleNotAllowed, roleARN, AllowKey)
	}
	return fmt.Errorf("%w: %q matches no pattern in %s; add it or a matching pattern", ErrRoleNotAllowed, roleARN, AllowKey)
}

// globMatch reports whether s matches pattern. It backtracks only to the
// last "*", so it runs in O(len(pattern)·len(s)) at worst, whatever the
// pattern; ARNs are ASCII, so bytes are characters.
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
