package capture

import (
	"slices"
	"strings"
	"testing"
)

// TestPlanPublicationGeneratedColumns: on PostgreSQL 18 and later a
// publication cdcd owns is set to publish stored generated columns, and one
// it does not own must already do so when a table has such columns; before
// 18 the option does not exist and is never asked for.
func TestPlanPublicationGeneratedColumns(t *testing.T) {
	complete := pubState{exists: true, insert: true, update: true, delete: true, truncate: true, viaRoot: true,
		rels: map[string]pubRel{`"public"."g"`: {}}}
	plain := []table{{name: `"public"."g"`}}
	withGenerated := []table{{name: `"public"."g"`, generated: []string{"twice"}}}
	cases := []struct {
		name     string
		external bool
		version  int
		tables   []table
		want     []string
	}{
		{"owned, 18", false, 180000, plain, []string{`ALTER PUBLICATION "p" SET (publish_generated_columns = stored)`}},
		{"owned, 17", false, 170000, withGenerated, nil},
		{"external, 18, generated columns", true, 180000, withGenerated, []string{`ALTER PUBLICATION "p" SET (publish_generated_columns = stored)`}},
		{"external, 18, none", true, 180000, plain, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &Source{cfg: Config{Publication: "p", ExternalPublication: tc.external}}
			plan := s.planPublication(complete, tc.tables, tc.version)
			if !slices.Equal(plan.statements, tc.want) {
				t.Fatalf("statements %q, want %q", plan.statements, tc.want)
			}
			if len(tc.want) > 0 && !strings.Contains(strings.Join(plan.problems, ";"), "generated columns") {
				t.Errorf("problems %q do not name the generated columns", plan.problems)
			}
		})
	}
	p := complete
	p.generated = true
	if plan := (&Source{cfg: Config{Publication: "p"}}).planPublication(p, withGenerated, 180000); len(plan.statements) != 0 {
		t.Errorf("a publication that publishes them: %q", plan.statements)
	}
}
