package consumer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cdcd-dev/cdcd/record"
)

// Format is how Printer writes a record. It is a flag.Value.
type Format string

const (
	// FormatJSON writes each record as cdcd wrote it (reassembled if it
	// was chunked), one JSON document a line: the zero Format.
	FormatJSON Format = "json"
	// FormatText writes each record as one line for people; see textLine.
	FormatText Format = "text"
)

func (f *Format) String() string { return string(*f) }

// Set accepts "json" or "text".
func (f *Format) Set(s string) error {
	if Format(s) != FormatJSON && Format(s) != FormatText {
		return fmt.Errorf("want %s or %s", FormatJSON, FormatText)
	}
	*f = Format(s)
	return nil
}

// Printer returns a Handler that writes each record to w in format, one
// line each, and returns ErrStop after limit records (0: no limit).
func Printer(w io.Writer, format Format, limit int) Handler {
	out, printed := bufio.NewWriter(w), 0
	return func(_ context.Context, r Record) error {
		if format == FormatText && r.Message != nil {
			out.WriteString(textLine(r.Message))
		} else {
			out.Write(r.Data) // Config.Raw leaves Message nil: as it is
		}
		out.WriteByte('\n')
		if err := out.Flush(); err != nil {
			return err
		}
		if printed++; limit > 0 && printed >= limit {
			return ErrStop
		}
		return nil
	}
}

// textLine is a full record as one line:
//
//	16/B374D848 public.orders u order_id=1001 status=shipped price=29.99
//	16/B374D848 public.orders d {order_id:1002}
//	16/B374D848 public.orders TRUNCATE
//
// The commit LSN ("-" where the record has none, as DSQL's), the table,
// the op, then the before image in braces where the record has one, then
// the after image as name=value. Records do not say which columns are the
// key, so an upsert (c, u, r) shows every column of after and no braces;
// a delete shows its before, the key columns, or {} for a table without
// a key.
func textLine(m *record.Message) string {
	var b strings.Builder
	lsn := m.Source.LSN
	if lsn == "" {
		lsn = "-"
	}
	fmt.Fprintf(&b, "%s %s.%s ", lsn, m.Source.Schema, m.Source.Table)
	if m.Effect() == record.EffectTruncate {
		b.WriteString("TRUNCATE")
		return b.String()
	}
	b.WriteString(m.Op)
	if m.Before != nil || m.Effect() == record.EffectRemove {
		b.WriteString(" {")
		for i, c := range m.Before {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(c.Name + ":" + textValue(c.Value))
		}
		b.WriteByte('}')
	}
	for _, c := range m.After {
		b.WriteString(" " + c.Name + "=" + textValue(c.Value))
	}
	return b.String()
}

// maxTextValue is how many characters of a value textLine shows before
// cutting it with "…": a line per record stays readable with large values.
const maxTextValue = 80

// textValue is a column's JSON text, compacted, with a string's quotes
// dropped when nothing is lost by it: it is not empty and holds no space
// and no escape (so no quote, backslash or control character that would
// break the line or hide where the value ends).
func textValue(v json.RawMessage) string {
	s := string(v)
	var b bytes.Buffer
	switch {
	case len(v) == 0:
		s = "null"
	case v[0] == '"':
		if inner := s[1 : len(s)-1]; inner != "" && !strings.ContainsFunc(inner, func(r rune) bool { return r == '\\' || unicode.IsSpace(r) }) {
			s = inner
		}
	case json.Compact(&b, v) == nil:
		s = b.String()
	}
	if utf8.RuneCountInString(s) <= maxTextValue {
		return s
	}
	return string([]rune(s)[:maxTextValue]) + "…"
}
