package stsstub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/cdcd-dev/cdcd/ident"
)

// Constraints from the STS API reference (AssumeRole, Tag); role ARNs and
// external ids are checked by ident, as cdcd checks them before a request.
var (
	sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	tagKeyPattern      = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$`)
	tagValuePattern    = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$`)
	authPattern        = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/,]+)/[0-9]{8}/[a-z0-9-]+/sts/aws4_request, ?SignedHeaders=[a-z0-9;-]+, ?Signature=[0-9a-f]{64}$`)
	tagMemberPattern   = regexp.MustCompile(`^Tags\.member\.([0-9]+)\.(Key|Value)$`)
)

const (
	apiVersion    = "2011-06-15"
	maxPolicy     = 2048
	maxTags       = 50
	minDurationS  = 900
	maxDurationS  = 43200
	formMediaType = "application/x-www-form-urlencoded"
)

// parseRequest decodes and validates one request. The returned Request is
// filled as far as parsing got, so failures are recorded too.
func parseRequest(r *http.Request) (Request, *apiError) {
	var req Request
	if r.Method != http.MethodPost {
		return req, &apiError{status: http.StatusMethodNotAllowed, code: "InvalidAction", message: "use POST with a form-encoded body"}
	}
	m := authPattern.FindStringSubmatch(r.Header.Get("Authorization"))
	if r.Header.Get("Authorization") == "" {
		return req, &apiError{status: http.StatusForbidden, code: "MissingAuthenticationToken", message: "Request is missing Authentication Token"}
	}
	if m == nil {
		return req, &apiError{status: http.StatusForbidden, code: "IncompleteSignature", message: "Authorization header is not a SigV4 signature for sts"}
	}
	req.AccessKeyID = m[1]
	if !strings.HasPrefix(r.Header.Get("Content-Type"), formMediaType) {
		return req, &apiError{status: http.StatusBadRequest, code: "InvalidParameterValue", message: "Content-Type must be " + formMediaType}
	}
	if err := r.ParseForm(); err != nil {
		return req, &apiError{status: http.StatusBadRequest, code: "MalformedQueryString", message: err.Error()}
	}
	f := r.PostForm
	req.Action = f.Get("Action")
	if v := f.Get("Version"); v != apiVersion || (req.Action != "AssumeRole" && req.Action != "GetCallerIdentity") {
		return req, &apiError{status: http.StatusBadRequest, code: "InvalidAction",
			message: fmt.Sprintf("Could not find operation %s for version %s", req.Action, v)}
	}
	if req.Action == "GetCallerIdentity" {
		return req, nil
	}
	return parseAssumeRole(req, f)
}

func parseAssumeRole(req Request, f map[string][]string) (Request, *apiError) {
	get := func(k string) string {
		if v := f[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	req.RoleARN = get("RoleArn")
	req.RoleSessionName = get("RoleSessionName")
	req.ExternalID = get("ExternalId")
	req.Policy = get("Policy")
	if d := get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil {
			return req, validationError("DurationSeconds " + strconv.Quote(d) + " is not a number")
		}
		req.DurationSeconds = n
	}
	tags, transitive, apiErr := parseTags(f)
	req.Tags, req.TransitiveTagKeys = tags, transitive
	if apiErr != nil {
		return req, apiErr
	}

	switch {
	case !validRoleARN(req.RoleARN):
		return req, validationError(fmt.Sprintf("Value '%s' at 'roleArn' failed to satisfy constraint: Member must be a role ARN of length 20 to 2048", req.RoleARN))
	case !sessionNamePattern.MatchString(req.RoleSessionName):
		return req, validationError(fmt.Sprintf(`Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]* and have length 2 to 64`, req.RoleSessionName))
	case has(f, "ExternalId") && !ident.ValidExternalID(req.ExternalID):
		return req, validationError(`Value at 'externalId' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@:\/-]* and have length 2 to 1224`)
	case has(f, "DurationSeconds") && (req.DurationSeconds < minDurationS || req.DurationSeconds > maxDurationS):
		return req, validationError(fmt.Sprintf("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200", req.DurationSeconds))
	case has(f, "Policy") && len(req.Policy) > maxPolicy:
		return req, validationError(fmt.Sprintf("Value at 'policy' failed to satisfy constraint: Member must have length less than or equal to %d (got %d)", maxPolicy, len(req.Policy)))
	case has(f, "Policy") && !validPolicy(req.Policy):
		return req, &apiError{status: http.StatusBadRequest, code: "MalformedPolicyDocument", message: "The policy is not a JSON object with Version and Statement"}
	}
	return req, nil
}

func has(f map[string][]string, k string) bool { _, ok := f[k]; return ok }

func validRoleARN(s string) bool { _, err := ident.ParseRoleARN(s); return err == nil }

// validPolicy accepts what IAM would at least parse: a JSON object with
// Version and Statement.
func validPolicy(p string) bool {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(p), &doc); err != nil {
		return false
	}
	_, v := doc["Version"]
	_, s := doc["Statement"]
	return v && s
}

// parseTags reads Tags.member.N.Key/Value (N from 1, no gaps, at most 50,
// keys unique ignoring case, no "aws:" prefix) and
// TransitiveTagKeys.member.N, which must name sent tags.
func parseTags(f map[string][]string) ([]Tag, []string, *apiError) {
	byIndex := map[int]*Tag{}
	seen := map[int][2]bool{}
	for k, v := range f {
		m := tagMemberPattern.FindStringSubmatch(k)
		if m == nil {
			if strings.HasPrefix(k, "Tags.") {
				return nil, nil, validationError("unknown parameter " + k)
			}
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 {
			return nil, nil, validationError("bad tag index in " + k)
		}
		t := byIndex[n]
		if t == nil {
			t = &Tag{}
			byIndex[n] = t
		}
		s := seen[n]
		if m[2] == "Key" {
			t.Key, s[0] = v[0], true
		} else {
			t.Value, s[1] = v[0], true
		}
		seen[n] = s
	}
	if len(byIndex) > maxTags {
		return nil, nil, validationError(fmt.Sprintf("Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to %d", maxTags))
	}
	tags := make([]Tag, 0, len(byIndex))
	keys := map[string]bool{}
	for n := 1; n <= len(byIndex); n++ {
		t, ok := byIndex[n]
		if !ok {
			return nil, nil, validationError(fmt.Sprintf("tags are not numbered 1 to %d", len(byIndex)))
		}
		switch s := seen[n]; {
		case !s[0] || !s[1]:
			return nil, nil, validationError(fmt.Sprintf("Tags.member.%d needs both Key and Value", n))
		case !tagKeyPattern.MatchString(t.Key):
			return nil, nil, validationError(fmt.Sprintf("tag key %q must be 1 to 128 characters of letters, digits, spaces and _.:/=+-@", t.Key))
		case strings.HasPrefix(strings.ToLower(t.Key), "aws:"):
			return nil, nil, validationError(fmt.Sprintf("tag key %q uses the reserved aws: prefix", t.Key))
		case !tagValuePattern.MatchString(t.Value):
			return nil, nil, validationError(fmt.Sprintf("tag value %q must be 0 to 256 characters of letters, digits, spaces and _.:/=+-@", t.Value))
		case keys[strings.ToLower(t.Key)]:
			return nil, nil, validationError("Duplicate tag keys found. Please note that Tag keys are case insensitive.")
		}
		keys[strings.ToLower(t.Key)] = true
		tags = append(tags, *t)
	}

	var transitive []string
	var idx []int
	for k := range f {
		if n, ok := strings.CutPrefix(k, "TransitiveTagKeys.member."); ok {
			i, err := strconv.Atoi(n)
			if err != nil || i < 1 {
				return nil, nil, validationError("bad index in " + k)
			}
			idx = append(idx, i)
		}
	}
	sort.Ints(idx)
	for _, i := range idx {
		k := f[fmt.Sprintf("TransitiveTagKeys.member.%d", i)][0]
		if !keys[strings.ToLower(k)] {
			return nil, nil, validationError(fmt.Sprintf("transitive tag key %q is not a session tag", k))
		}
		transitive = append(transitive, k)
	}
	if len(tags) == 0 {
		tags = nil
	}
	return tags, transitive, nil
}
