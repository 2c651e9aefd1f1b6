package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// ColumnValue is one column of a decoded row image. Value is the column's
// exact JSON text (docs/records.md#values): an int8 stays "9223372036854775807", a
// numeric stays "\"123.45\"", SQL NULL is "null".
type ColumnValue struct {
	Name  string
	Value json.RawMessage
}

// RowImage is a decoded before or after image in the record's column order.
// A nil RowImage is JSON null; a non-nil empty one is {}.
type RowImage []ColumnValue

// Get returns the JSON text of the named column.
func (r RowImage) Get(name string) (json.RawMessage, bool) {
	for _, c := range r {
		if c.Name == name {
			return c.Value, true
		}
	}
	return nil, false
}

// Names lists the column names in image order.
func (r RowImage) Names() []string {
	names := make([]string, len(r))
	for i, c := range r {
		names[i] = c.Name
	}
	return names
}

// Project returns the named columns in the order given, or an error naming
// the first column the image lacks.
func (r RowImage) Project(names []string) (RowImage, error) {
	out := make(RowImage, 0, len(names))
	for _, n := range names {
		v, ok := r.Get(n)
		if !ok {
			return nil, fmt.Errorf("image has no column %q", n)
		}
		out = append(out, ColumnValue{Name: n, Value: v})
	}
	return out, nil
}

// MarshalJSON writes the image back as a JSON object in column order.
func (r RowImage) MarshalJSON() ([]byte, error) {
	if r == nil {
		return []byte("null"), nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range r {
		if i > 0 {
			b.WriteByte(',')
		}
		name, err := json.Marshal(c.Name)
		if err != nil {
			return nil, err
		}
		b.Write(name)
		b.WriteByte(':')
		if len(c.Value) == 0 {
			b.WriteString("null")
			continue
		}
		if err := json.Compact(&b, c.Value); err != nil {
			return nil, fmt.Errorf("column %q: %w", c.Name, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Key is the canonical identity of the image's row: its columns sorted by
// name, as compact JSON `[["col",value],...]`. Sorting makes the key of a
// delete's before image (key columns in table order) equal to the key
// projected from an upsert's after image, whatever order KeyColumns uses.
// The text is valid JSON so a store can parse it back (pgapply does, to
// keep newer rows across a truncate).
func (r RowImage) Key() string {
	sorted := slices.Clone(r)
	slices.SortStableFunc(sorted, func(a, b ColumnValue) int { return strings.Compare(a.Name, b.Name) })
	var b bytes.Buffer
	b.WriteByte('[')
	for i, c := range sorted {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(c.Name) // strings always marshal
		b.WriteByte('[')
		b.Write(name)
		b.WriteByte(',')
		if len(c.Value) == 0 || json.Compact(&b, c.Value) != nil {
			// Decode validated every value; a hand-built image with bad
			// JSON still gets a stable, if unparseable, key.
			b.Write(c.Value)
		}
		b.WriteByte(']')
	}
	b.WriteByte(']')
	return b.String()
}

// ParseKey turns a Key back into the image it came from, sorted by name.
func ParseKey(key string) (RowImage, error) {
	var pairs []json.RawMessage
	if err := json.Unmarshal([]byte(key), &pairs); err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	img := make(RowImage, 0, len(pairs))
	// Errors name the pair by position: a key is made of row values.
	for i, p := range pairs {
		var pair []json.RawMessage
		var name string
		if err := json.Unmarshal(p, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("parse key: element %d is not a [name, value] pair", i)
		}
		if err := json.Unmarshal(pair[0], &name); err != nil {
			return nil, fmt.Errorf("parse key: element %d: the column name is not a string", i)
		}
		img = append(img, ColumnValue{Name: name, Value: pair[1]})
	}
	return img, nil
}

// parseImage reads an image object keeping column order and each value's
// exact text. JSON null (or an absent field) is a nil image.
func parseImage(raw json.RawMessage) (RowImage, error) {
	if isNull(raw) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("image is %s, not an object or null", describeToken(tok))
	}
	img := RowImage{}
	seen := make(map[string]struct{})
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("column name %v is not a string", tok)
		}
		// A column appearing twice would make Get and Key ambiguous;
		// PostgreSQL column names are unique, so this is corruption.
		if _, dup := seen[name]; dup {
			return nil, fmt.Errorf("column %q appears twice", name)
		}
		seen[name] = struct{}{}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("column %q: %w", name, err)
		}
		img = append(img, ColumnValue{Name: name, Value: v})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after image")
	}
	return img, nil
}

func describeToken(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, json.Number:
		return "a number"
	}
	return fmt.Sprintf("%v", tok)
}
