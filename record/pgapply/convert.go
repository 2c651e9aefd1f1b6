package pgapply

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// This file inverts docs/records.md#values: a record value's JSON back into PostgreSQL's
// text input for the replica column's type. Values travel as text and are
// cast in SQL ($n::text::type), so every type PostgreSQL can read from text
// works, and only the types whose JSON is not their text output (bytea,
// dates and times, arrays) need converting here.

// kind is how a replica type's values are encoded in records.
type kind int

const (
	// kindText: the JSON string is the text input (text, numeric, uuid,
	// json, enums, anything else), or a number or boolean whose JSON text
	// is its text input.
	kindText kind = iota
	kindBytea
	kindDate
	kindTime
	kindTimetz
	kindTimestamp
	kindTimestamptz
	kindInterval
	kindArray
)

// pgType is a replica type resolved for conversion: domains are replaced by
// their base type, arrays carry their element.
type pgType struct {
	kind  kind
	elem  *pgType // kindArray
	delim byte    // kindArray: the element type's typdelim
}

// Sentinels of docs/records.md#values and cdcd's date infinities (the producer's
// DatePosInfinity/DateNegInfinity: PostgreSQL's DATEVAL_NOEND/NOBEGIN moved
// to the Unix epoch). Repeated here so the applier reads the documented
// format, not the encoder's internals.
const (
	timestampPosInfinity int64 = 9223372036825200000
	timestampNegInfinity int64 = -9223372036832400000
	datePosInfinity      int64 = math.MaxInt32 + 10957
	dateNegInfinity      int64 = math.MinInt32 + 10957

	usPerSecond = 1_000_000
	usPerDay    = 86_400 * usPerSecond
)

// sqlText converts one record value for a column of type t. ok is false
// for SQL NULL.
func sqlText(t *pgType, raw json.RawMessage) (text string, ok bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, err
		}
		return stringText(t, s)
	}
	switch t.kind {
	case kindText:
		if raw[0] == '[' || raw[0] == '{' {
			var b bytes.Buffer
			if err := json.Compact(&b, raw); err != nil {
				return "", false, err
			}
			return b.String(), true, nil
		}
		if raw[0] == 't' || raw[0] == 'f' || isNumber(raw) {
			return string(raw), true, nil
		}
		return "", false, fmt.Errorf("a JSON value of %d bytes that is not a string, number, boolean, array or object", len(raw))
	case kindArray:
		if raw[0] != '[' {
			return "", false, fmt.Errorf("array column: want a JSON array, got %s", jsonKind(raw))
		}
		var b strings.Builder
		if err := appendArray(&b, t, raw, 0); err != nil {
			return "", false, err
		}
		return b.String(), true, nil
	case kindBytea:
		return "", false, fmt.Errorf("bytea column: want a base64 string, got %s", jsonKind(raw))
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return "", false, fmt.Errorf("want an integer, got %s", jsonKind(raw))
	}
	s, err := temporalText(t.kind, n)
	return s, err == nil, err
}

// stringText handles a JSON string: the text input itself for most types,
// base64 for bytea. Temporal types take strings too (text such as
// "infinity" from a producer that chose it), passed through.
func stringText(t *pgType, s string) (string, bool, error) {
	switch t.kind {
	case kindBytea:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return "", false, fmt.Errorf("bytea: %w", err)
		}
		return `\x` + hex.EncodeToString(b), true, nil
	case kindArray:
		// Not the record format's array encoding (docs/records.md#values), but PostgreSQL's text output of an array is
		// what its "anything else" row would carry; it is valid input.
		return s, true, nil
	}
	return s, true, nil
}

func isNumber(raw []byte) bool {
	var n json.Number
	return json.Unmarshal(raw, &n) == nil
}

func temporalText(k kind, n int64) (string, error) {
	switch k {
	case kindDate:
		switch n {
		case datePosInfinity:
			return "infinity", nil
		case dateNegInfinity:
			return "-infinity", nil
		}
		return dateText(n), nil
	case kindTime, kindTimetz:
		if n < 0 || n > usPerDay {
			return "", errors.New("time of day outside [0, 24h]")
		}
		s := clockText(n)
		if k == kindTimetz {
			s += "+00" // docs/records.md#values: timetz travels as UTC
		}
		return s, nil
	case kindTimestamp, kindTimestamptz:
		switch n {
		case timestampPosInfinity:
			return "infinity", nil
		case timestampNegInfinity:
			return "-infinity", nil
		}
		days, us := floorDiv(n, usPerDay), floorMod(n, usPerDay)
		date, era := civilText(days)
		s := date + " " + clockText(us)
		if k == kindTimestamptz {
			s += "+00"
		}
		return s + era, nil
	case kindInterval:
		return intervalText(n), nil
	}
	return strconv.FormatInt(n, 10), nil
}

// dateText formats days since 1970-01-01.
func dateText(days int64) string {
	date, era := civilText(days)
	return date + era
}

// civilText returns the proleptic Gregorian date of days since 1970-01-01
// as "YYYY-MM-DD" and " BC" or "" (H. Hinnant's civil_from_days, valid for
// every int64 day count PostgreSQL can produce).
func civilText(days int64) (string, string) {
	z := days + 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	suffix := ""
	if y <= 0 { // astronomical year 0 is 1 BC
		y, suffix = 1-y, " BC"
	}
	return fmt.Sprintf("%04d-%02d-%02d", y, m, d), suffix
}

// clockText formats microseconds since midnight as HH:MM:SS.ffffff.
func clockText(us int64) string {
	h := us / (3600 * usPerSecond)
	m := us / (60 * usPerSecond) % 60
	s := us / usPerSecond % 60
	return fmt.Sprintf("%02d:%02d:%02d.%06d", h, m, s, us%usPerSecond)
}

// intervalText formats docs/records.md#values's interval microseconds. The record has
// already folded months (30.4375 days) and days (24 h) into microseconds;
// days are split out again only to keep the hours field within
// PostgreSQL's int range.
func intervalText(n int64) string {
	u := uint64(n)
	sign := ""
	if n < 0 {
		u, sign = uint64(-(n+1))+1, "-"
	}
	days := u / usPerDay
	clock := sign + clockText(int64(u%usPerDay))
	if days == 0 {
		return clock
	}
	return fmt.Sprintf("%s%d days %s", sign, days, clock)
}

// appendArray writes a JSON array as an array literal, nested JSON arrays
// as further dimensions, every element quoted so no element text can be
// mistaken for syntax.
func appendArray(b *strings.Builder, t *pgType, raw json.RawMessage, depth int) error {
	if depth > 6 {
		return fmt.Errorf("array nested deeper than PostgreSQL's 6 dimensions")
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return err
	}
	delim := t.delim
	if delim == 0 {
		delim = ','
	}
	b.WriteByte('{')
	for i, e := range elems {
		if i > 0 {
			b.WriteByte(delim)
		}
		e = bytes.TrimSpace(e)
		if len(e) > 0 && e[0] == '[' && t.elem.kind != kindArray {
			if err := appendArray(b, t, e, depth+1); err != nil {
				return err
			}
			continue
		}
		text, ok, err := sqlText(t.elem, e)
		if err != nil {
			return fmt.Errorf("element %d: %w", i, err)
		}
		if !ok {
			b.WriteString("NULL")
			continue
		}
		b.WriteByte('"')
		for i := 0; i < len(text); i++ {
			if text[i] == '"' || text[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(text[i])
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// jsonKind describes a JSON value for an error without quoting it: values
// never appear in errors, which reach the log.
func jsonKind(raw json.RawMessage) string {
	kind := "a number"
	switch raw[0] {
	case '{':
		kind = "an object"
	case '[':
		kind = "an array"
	case '"':
		kind = "a string"
	case 't', 'f':
		kind = "a boolean"
	}
	return fmt.Sprintf("%s of %d bytes", kind, len(raw))
}
