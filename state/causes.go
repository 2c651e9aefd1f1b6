package state

import (
	"cmp"
	"slices"

	"github.com/cdcd-dev/cdcd/codes"
)

// causes are a stream's outstanding causes: at most one per code, each with
// the latest message and the time its code was first seen, most severe
// first (docs/lifecycle.md#status-reason).
type causes []Reason

// causesOf is the set a record holds: its statusReason and otherReasons.
func causesOf(r *File) causes {
	if r.StatusReason == nil {
		return nil
	}
	c := make(causes, 0, 1+len(r.OtherReasons))
	c = append(c, *r.StatusReason)
	c = append(c, r.OtherReasons...)
	slices.SortStableFunc(c, moreSevere)
	return c
}

// moreSevere orders the most severe code first; codes of one rank (only
// unknown ones share a rank) by name, so the order is total.
func moreSevere(a, b Reason) int {
	if n := cmp.Compare(b.Code.Severity(), a.Code.Severity()); n != 0 {
		return n
	}
	return cmp.Compare(a.Code, b.Code)
}

// with is c with r added, or, when r's code is outstanding already, with
// that cause's message replaced and its first-seen time kept.
func (c causes) with(r Reason) causes {
	out := slices.Clone(c)
	if i := slices.IndexFunc(out, func(x Reason) bool { return x.Code == r.Code }); i >= 0 {
		out[i].Message = r.Message
		return out
	}
	out = append(out, r)
	slices.SortStableFunc(out, moreSevere)
	return out
}

// without is c less the causes that owner owns.
func (c causes) without(owner codes.Owner) causes {
	return slices.DeleteFunc(slices.Clone(c), func(x Reason) bool { return x.Code.Owner() == owner })
}

// sameCodes reports whether c and d hold the same codes; both are sorted.
func (c causes) sameCodes(d causes) bool {
	return slices.EqualFunc(c, d, func(a, b Reason) bool { return a.Code == b.Code })
}

// show splits c into the statusReason, its most severe cause, and the
// others, copied so that the record shares nothing with c.
func (c causes) show() (*Reason, []Reason) {
	if len(c) == 0 {
		return nil, nil
	}
	first := c[0]
	var others []Reason
	if len(c) > 1 {
		others = slices.Clone(c[1:])
	}
	return &first, others
}
