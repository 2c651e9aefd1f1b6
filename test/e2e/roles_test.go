package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/test/stsstub"
)

const (
	e2eRole       = "arn:aws:iam::000000000000:role/cdcd-e2e"
	e2eExternalID = "e2e-external-id"
)

// TestRoleLostAndRestored writes as a scoped role through the STS stand-in:
// the AssumeRole request is checked field by field, short-lived credentials
// are refreshed during a steady load, removing the trust impairs the stream
// with ROLE_ACCESS_DENIED, and restoring it brings the stream back ACTIVE
// with every change delivered.
func TestRoleLostAndRestored(t *testing.T) {
	t.Parallel()
	sts := stsstub.New(t)
	sts.AddRoleWith(e2eRole, stsstub.Role{ExternalID: e2eExternalID, TrustAllowed: true, TagSession: true})
	// Credentials live 3 s, so the run below spans several refreshes.
	sts.SetLifetime(3 * time.Second)

	h := newHarness(t, harnessOptions{
		tables: []string{"public.items"}, shards: 2,
		aws:    fmt.Sprintf("sts_endpoint = %q\nrole_arn_allow = [%q]", sts.URL(), e2eRole),
		target: fmt.Sprintf("role_arn = %q\nexternal_id = %q", e2eRole, e2eExternalID),
	})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	d := h.start()
	h.waitStatus("ACTIVE", "", 30*time.Second)

	// Steady load across several credential lifetimes.
	callsBefore := sts.AssumeRoleCalls()
	id := 0
	insert := func(n int) {
		for range n {
			id++
			h.exec(`INSERT INTO items VALUES ($1, 'x')`, id)
			time.Sleep(20 * time.Millisecond)
		}
	}
	insert(400) // about 8 s
	if sts.AssumeRoleCalls() <= callsBefore+1 {
		t.Errorf("credentials were not refreshed during the load: %d AssumeRole calls before, %d after", callsBefore, sts.AssumeRoleCalls())
	}
	h.waitIDs(id, 60*time.Second)

	// Every AssumeRole request names the stream's role with its external
	// id, a session name naming the stream, session tags, and a session
	// policy narrowed to this one Kinesis stream.
	reqs := sts.Requests()
	if len(reqs) == 0 {
		t.Fatal("no AssumeRole request reached the STS stand-in")
	}
	r := reqs[0]
	if r.RoleARN != e2eRole || r.ExternalID != e2eExternalID || !strings.HasPrefix(r.RoleSessionName, "cdcd-") {
		t.Errorf("AssumeRole request: role %q external id %q session %q", r.RoleARN, r.ExternalID, r.RoleSessionName)
	}
	tags := map[string]string{}
	for _, tg := range r.Tags {
		tags[tg.Key] = tg.Value
	}
	if tags["cdcd:stream"] == "" || tags["cdcd:cluster"] == "" {
		t.Errorf("session tags %v lack cdcd:stream or cdcd:cluster", r.Tags)
	}
	var pol struct {
		Statement []struct {
			Action    any `json:"Action"`
			Resource  any `json:"Resource"`
			Condition map[string]map[string]any
		}
	}
	if err := json.Unmarshal([]byte(r.Policy), &pol); err != nil {
		t.Fatalf("session policy is not JSON: %v: %s", err, r.Policy)
	}
	wantARN := "arn:aws:kinesis:" + h.env.Region + ":000000000000:stream/" + h.kinesis
	if !strings.Contains(r.Policy, `"Resource":"`+wantARN+`"`) || !strings.Contains(r.Policy, "kinesis:PutRecords") ||
		!strings.Contains(r.Policy, `"kms:EncryptionContext:aws:kinesis:arn":"`+wantARN+`"`) {
		t.Errorf("session policy is not narrowed to %s: %s", wantARN, r.Policy)
	}
	for _, st := range pol.Statement {
		if fmt.Sprint(st.Action) == "*" || fmt.Sprint(st.Resource) == "*" && st.Condition == nil {
			t.Errorf("session policy has an unconditioned wildcard statement: %s", r.Policy)
		}
	}

	// Trust removed: the stream impairs with ROLE_ACCESS_DENIED and keeps
	// capturing; trust restored: ACTIVE again, nothing lost.
	sts.Deny(e2eRole)
	insert(20)
	h.waitStatus("IMPAIRED", "ROLE_ACCESS_DENIED", 60*time.Second)
	insert(20)
	sts.Allow(e2eRole)
	h.waitStatus("ACTIVE", "", 60*time.Second)
	h.waitIDs(id, 60*time.Second)
	d.stop(t)
}

// waitIDs waits until every id from 1 to n has arrived in Kinesis.
func (h *harness) waitIDs(n int, timeout time.Duration) {
	h.t.Helper()
	h.waitRecords(timeout, func(recs []cdcRecord) bool {
		seen := map[int]bool{}
		for _, r := range recs {
			if v, err := strconv.Atoi(string(r.After["id"])); err == nil {
				seen[v] = true
			}
		}
		for i := 1; i <= n; i++ {
			if !seen[i] {
				return false
			}
		}
		return true
	})
}
