package docs

import (
	"strings"
	"testing"

	"github.com/cdcd-dev/cdcd/codes"
)

// TestRunbookCoversEveryCode: every code's statusReason points at a
// section of docs/runbook.md that exists.
func TestRunbookCoversEveryCode(t *testing.T) {
	have := anchors(t, "runbook.md")
	for _, c := range codes.All() {
		doc, anchor, ok := strings.Cut(c.Runbook(), "#")
		if !ok || doc != "docs/runbook.md" || !have["#"+anchor] {
			t.Errorf("%s points at %q: no such section in docs/runbook.md", c, c.Runbook())
		}
	}
}
