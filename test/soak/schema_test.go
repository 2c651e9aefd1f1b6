package soak

// schemaSQL creates the source tables. The rows stream (ROW ordering)
// publishes accounts and docs, the spread stream (UNORDERED, with truncate
// records) events and scratch. docs.body holds TOASTed text; cdcd sets
// REPLICA IDENTITY FULL on the tables with TOASTable columns itself
// (set_replica_identity_full). accounts gains a column while the run goes
// on (addedColumn).
const schemaSQL = `
CREATE TABLE accounts (id int8 PRIMARY KEY, owner text NOT NULL, balance numeric(14,2), active bool,
	updated timestamptz, meta jsonb);
CREATE TABLE docs (id int8 PRIMARY KEY, title text, body text, rev int8 NOT NULL DEFAULT 0);
CREATE TABLE events (id int8 PRIMARY KEY, kind text, payload jsonb, amount numeric(12,3), at timestamptz, ok bool);
CREATE TABLE scratch (id int8 PRIMARY KEY, v text, n int8);
`

// addedColumn is the column ADD COLUMN gives accounts during the run.
const addedColumn = "note"

// colType is how a column's value appears in a record
// (docs/records.md#values).
type colType int

const (
	tInt8        colType = iota // a JSON number, exact
	tText                       // a JSON string
	tNumeric                    // a JSON string with the value's digits and scale
	tBool                       // true or false
	tTimestamptz                // a JSON number: microseconds since the epoch
	tJSONB                      // a JSON string: PostgreSQL's text output
)

type column struct {
	name string
	typ  colType
}

// table is one source table as the checks see it; its key is id.
type table struct {
	name string // unqualified, in schema public
	cols []column
}

// tables lists the source tables and their columns, addedColumn included.
func tables() []table {
	return []table{
		{"accounts", []column{{"id", tInt8}, {"owner", tText}, {"balance", tNumeric}, {"active", tBool},
			{"updated", tTimestamptz}, {"meta", tJSONB}, {addedColumn, tText}}},
		{"docs", []column{{"id", tInt8}, {"title", tText}, {"body", tText}, {"rev", tInt8}}},
		{"events", []column{{"id", tInt8}, {"kind", tText}, {"payload", tJSONB}, {"amount", tNumeric},
			{"at", tTimestamptz}, {"ok", tBool}}},
		{"scratch", []column{{"id", tInt8}, {"v", tText}, {"n", tInt8}}},
	}
}

// sourceExpr is the SQL that reads a column as the text its record value
// must equal: numbers and strings as such, timestamps as epoch
// microseconds, booleans as true/false.
func sourceExpr(c column) string {
	q := `"` + c.name + `"`
	switch c.typ {
	case tTimestamptz:
		return "(extract(epoch FROM " + q + ") * 1000000)::int8::text"
	case tBool, tInt8, tNumeric, tJSONB:
		return q + "::text"
	}
	return q
}
