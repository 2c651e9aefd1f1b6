package docs

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/cdcd-dev/cdcd"

// layers is the import order that the README's architecture section
// describes: a package may import only packages of a lower layer. Leaves
// come first; cmd/cdcd is on top. Test code (_test.go files and test/) may
// import anything.
var layers = [][]string{
	{"codes", "ident", "iam", "retry", "record"},
	{"state", "record/pgapply", "capture/pgauth", "rolecreds", "sink", "atrest", "consumer"},
	{"capture", "state/api", "config"},
	{"pipeline"},
	{"cmd/cdcd"},
}

// TestLayering: no package imports a package of its own or a higher layer,
// and every package of the module has a layer.
func TestLayering(t *testing.T) {
	rank := map[string]int{}
	for i, layer := range layers {
		for _, p := range layer {
			rank[p] = i
		}
	}
	checked := 0
	for dir, imports := range packageImports(t, "..") {
		if dir == "docs" || dir == "test" || strings.HasPrefix(dir, "test/") {
			continue
		}
		r, ok := rank[dir]
		if !ok {
			t.Errorf("package %s has no layer: add it to the layers in docs/layers_test.go and to the README's architecture section", dir)
			continue
		}
		checked++
		for _, imp := range imports {
			if ir, ok := rank[imp]; !ok || ir >= r {
				t.Errorf("%s (layer %d) imports %s (layer %d): dependencies must point down", dir, r, imp, ir)
			}
		}
	}
	if checked < len(rank)/2 {
		t.Fatalf("checked only %d packages: the walk is broken", checked)
	}
}

// packageImports maps each folder below root that holds non-test Go files
// to the module's packages those files import.
func packageImports(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		dir := filepath.ToSlash(rel)
		if _, ok := out[dir]; !ok {
			out[dir] = nil
		}
		for _, spec := range f.Imports {
			p, _ := strconv.Unquote(spec.Path.Value)
			if p == module || strings.HasPrefix(p, module+"/") {
				out[dir] = append(out[dir], strings.TrimPrefix(strings.TrimPrefix(p, module), "/"))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
