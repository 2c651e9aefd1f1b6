// Package docs holds the contract in prose; this test keeps the code's
// references to it honest.
package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	// docRef is a reference to a document here, with an optional anchor.
	docRef = regexp.MustCompile(`docs/([a-z0-9_-]+\.md)(#[a-z0-9_-]+)?`)
	// outside names documents that are not in this repository.
	outside = regexp.MustCompile(`\b(SPEC|STYLE|INFRA)(\.md)?\b ?§|\b(SPEC|STYLE|INFRA)\.md\b`)
	heading = regexp.MustCompile(`(?m)^#{1,6} +(.+)$`)
)

// anchor is GitHub's anchor for a heading: lower case, punctuation other
// than '-' and '_' dropped, spaces as '-'.
func anchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(title)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

func anchors(t *testing.T, doc string) map[string]bool {
	t.Helper()
	text, err := os.ReadFile(doc)
	if err != nil {
		t.Fatalf("read %s: %v", doc, err)
	}
	out := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(string(text), -1) {
		out["#"+anchor(strings.Trim(m[1], "`"))] = true
	}
	return out
}

// TestReferencesResolve: every docs/<file>.md#<anchor> written in the code,
// the README or the docs names a document and a heading that exist, and
// nothing cites a document outside the repository.
func TestReferencesResolve(t *testing.T) {
	known := map[string]map[string]bool{}
	refs := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != ".." || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		ext := filepath.Ext(path)
		if d.IsDir() || ext != ".go" && ext != ".md" && ext != ".toml" && ext != ".sh" {
			return nil
		}
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if ext == ".go" && outside.Match(text) {
			t.Errorf("%s cites a document outside the repository: %q", path, outside.Find(text))
		}
		for _, m := range docRef.FindAllStringSubmatch(string(text), -1) {
			refs++
			doc := m[1]
			if known[doc] == nil {
				if _, err := os.Stat(doc); err != nil {
					t.Errorf("%s refers to docs/%s, which does not exist", path, doc)
					known[doc] = map[string]bool{}
					continue
				}
				known[doc] = anchors(t, doc)
			}
			if m[2] != "" && !known[doc][m[2]] {
				t.Errorf("%s refers to docs/%s%s: no such heading", path, doc, m[2])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if refs == 0 {
		t.Fatal("found no reference to docs/: the walk is broken")
	}
}
