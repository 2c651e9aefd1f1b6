package roundtrip

import "fmt"

// schemaSQL creates the tables of the workload. Source and replica run the
// same text, so the replica starts with the same, empty, tables.
const schemaSQL = `
CREATE SCHEMA rt;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'très bien 😀', 'with "quotes", commas');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');

-- One column per docs/records.md#values row, and arrays of many element types.
CREATE TABLE public.typed (
	id           int8 PRIMARY KEY,
	c_int2       int2,
	c_int4       int4,
	c_int8       int8,
	c_oid        oid,
	c_real       real,
	c_double     double precision,
	c_numeric    numeric,
	c_numeric_s  numeric(30, 10),
	c_bool       boolean,
	c_text       text,
	c_varchar    varchar(40),
	c_name       name,
	c_char       "char",
	c_bpchar     char(8),
	c_bpchar_u   bpchar,
	c_bytea      bytea,
	c_date       date,
	c_time       time,
	c_timetz     timetz,
	c_ts         timestamp,
	c_tstz       timestamptz,
	c_interval   interval,
	c_uuid       uuid,
	c_json       json,
	c_jsonb      jsonb,
	c_mood       mood,
	c_posint     posint,
	c_email      email,
	c_inet       inet,
	c_point      point,
	c_int_arr    int4[],
	c_int_arr2   int8[][],
	c_text_arr   text[],
	c_num_arr    numeric[],
	c_float_arr  float8[],
	c_bool_arr   boolean[],
	c_bytea_arr  bytea[],
	c_date_arr   date[],
	c_tstz_arr   timestamptz[],
	c_uuid_arr   uuid[],
	c_mood_arr   mood[],
	c_box_arr    box[]
);

-- A composite text + integer key whose parts change.
CREATE TABLE rt.accounts (
	tenant  text,
	n       int4,
	label   varchar(60),
	balance numeric(20, 4),
	opened  timestamptz,
	PRIMARY KEY (tenant, n)
);

-- A uuid key.
CREATE TABLE rt.events (
	id      uuid PRIMARY KEY,
	at      timestamptz NOT NULL,
	payload jsonb,
	tags    text[]
);

-- Large bodies: 1 MB values stored out of line (TOAST) and updated on
-- other columns, and 1.5 MB values beyond Kinesis' 1 MiB record limit.
CREATE TABLE public.docs (
	id    int4 PRIMARY KEY,
	title text NOT NULL,
	rev   int4 NOT NULL,
	body  text
);

-- The workload's last transaction writes here, so a replica that matches
-- the source has seen the end.
CREATE TABLE public.marker (
	id   int4 PRIMARY KEY,
	seed int8 NOT NULL,
	txns int4 NOT NULL
);
`

// tableSpec says how to compare one table.
type tableSpec struct {
	name string   // schema-qualified, as in the config
	pk   []string // primary key columns
	// cols are the compared expressions, one per column. Most are the
	// column itself; where docs/records.md#values's encoding is lossy they normalise
	// both sides to what the encoding keeps, and say why.
	cols []string
}

// specInterval is docs/records.md#values's interval number: (months×2,629,800 +
// days×86,400)×10⁶ + microseconds, NULL where that passes int64. The
// replica receives only this number, so an interval of "1 mon" arrives as
// "30 days 10:30:00" and one that overflows arrives as NULL: comparing
// this expression instead of the interval checks exactly what the
// encoding promises to carry. Every extract is numeric, so nothing rounds.
func specInterval(col string) string {
	return fmt.Sprintf(`(SELECT CASE WHEN v BETWEEN -9223372036854775808 AND 9223372036854775807 THEN v END FROM (SELECT
	((extract(year FROM %[1]s) * 12 + extract(month FROM %[1]s)) * 2629800 + extract(day FROM %[1]s) * 86400) * 1000000
	+ extract(hour FROM %[1]s) * 3600000000 + extract(minute FROM %[1]s) * 60000000 + extract(microseconds FROM %[1]s) AS v) s)`, col)
}

var tables = []tableSpec{
	{
		name: "public.typed",
		pk:   []string{"id"},
		cols: []string{
			"id", "c_int2", "c_int4", "c_int8", "c_oid",
			// real and double compare as their shortest exact text
			// (extra_float_digits = 1), which keeps -0, NaN and ±Infinity.
			"c_real::text", "c_double::text",
			"c_numeric::text", "c_numeric_s::text", "c_bool",
			"c_text", "c_varchar", "c_name", "c_char::text",
			// char(8) pads on the replica again, so it compares as is.
			"c_bpchar",
			// Unbounded bpchar keeps the trailing spaces it was given, but
			// docs/records.md#values sends bpchar without them (they are insignificant
			// to bpchar semantics), so compare the value without them;
			// bpchar's cast to text removes exactly those spaces.
			"c_bpchar_u::text",
			"encode(c_bytea, 'hex')",
			"c_date", "c_time",
			// docs/records.md#values: timetz travels as microseconds since midnight in
			// UTC; the offset is not sent, so compare the UTC time of day.
			"(c_timetz AT TIME ZONE 'UTC')::time",
			"c_ts", "c_tstz",
			specInterval("c_interval"),
			"c_uuid",
			// json keeps its text exactly (whitespace, duplicate keys).
			"c_json::text", "c_jsonb",
			"c_mood::text", "c_posint", "c_email",
			// "Anything else" travels as PostgreSQL's text output, and
			// inet, point and box read their text output back exactly.
			"c_inet", "c_point::text",
			"c_int_arr", "c_int_arr2", "c_text_arr", "c_num_arr::text", "c_float_arr::text",
			"c_bool_arr", "c_bytea_arr::text", "c_date_arr", "c_tstz_arr", "c_uuid_arr",
			"c_mood_arr::text", "c_box_arr::text",
		},
	},
	{
		name: "rt.accounts",
		pk:   []string{"tenant", "n"},
		cols: []string{"tenant", "n", "label", "balance::text", "opened"},
	},
	{
		name: "rt.events",
		pk:   []string{"id"},
		cols: []string{"id", "at", "payload", "tags"},
	},
	{
		name: "public.docs",
		pk:   []string{"id"},
		// md5 and length keep the checksum query small; a difference is
		// still a difference.
		cols: []string{"id", "title", "rev", "md5(body)", "octet_length(body)"},
	},
	{
		name: "public.marker",
		pk:   []string{"id"},
		cols: []string{"id", "seed", "txns"},
	},
}

// tableNames lists the tables for the stream's config.
func tableNames() []string {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.name
	}
	return names
}
