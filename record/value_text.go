package record

import (
	"encoding/base64"
	"fmt"
	"strconv"
)

// Decoders for PostgreSQL's text output of the scalar types whose JSON is a
// number, boolean or base64 string. Each validates its input before copying
// it, so a record is valid JSON whatever capture hands over.

// appendTextInteger copies an integer's text after checking it is one, and
// in range for its type, so a corrupt value cannot break the record's JSON.
func appendTextInteger(dst, data []byte, class valueClass) ([]byte, error) {
	lo, hi := int64(-1<<63), int64(1<<63-1)
	switch class {
	case classInt2:
		lo, hi = -1<<15, 1<<15-1
	case classInt4:
		lo, hi = -1<<31, 1<<31-1
	case classOID:
		lo, hi = 0, 1<<32-1
	}
	if _, ok := parseDecimal(data, lo, hi); !ok {
		return dst, badValue(ErrMalformedValue, "integer text out of range or not canonical", data)
	}
	return append(dst, data...), nil
}

// parseDecimal parses a canonical decimal integer (optional '-', no leading
// zeros, no '+') within [lo, hi]. It works on bytes to keep the hot path free
// of string conversions.
func parseDecimal(data []byte, lo, hi int64) (int64, bool) {
	neg := len(data) > 0 && data[0] == '-'
	digits := data
	if neg {
		digits = data[1:]
	}
	if !isDigits(digits) || len(digits) > 19 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	var u uint64
	for _, c := range digits {
		u = u*10 + uint64(c-'0') // 19 digits cannot overflow uint64
	}
	if neg {
		if u > 1<<63 || -int64(u-1)-1 < lo {
			return 0, false
		}
		return -int64(u-1) - 1, true
	}
	if u > 1<<63-1 || int64(u) > hi {
		return 0, false
	}
	return int64(u), true
}

func isDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// appendTextFloat parses a float's text and re-formats it, so the text and
// binary formats give the same JSON. PostgreSQL 12+ prints the shortest text
// that reads back exactly (extra_float_digits ≥ 1), which makes this exact.
func appendTextFloat(dst, data []byte, bits int) ([]byte, error) {
	switch string(data) {
	case "NaN":
		return append(dst, `"NaN"`...), nil
	case "Infinity":
		return append(dst, `"Infinity"`...), nil
	case "-Infinity":
		return append(dst, `"-Infinity"`...), nil
	}
	f, err := strconv.ParseFloat(string(data), bits)
	if err != nil {
		return dst, badValue(ErrMalformedValue, fmt.Sprintf("float%d text does not parse", bits/8), data)
	}
	return appendJSONFloat(dst, f, bits), nil
}

// appendTextNumeric copies a numeric's text into a JSON string. PostgreSQL
// prints numerics in plain decimal with the column's scale ("1.50"), never
// with an exponent, plus NaN and ±Infinity.
func appendTextNumeric(dst, data []byte) ([]byte, error) {
	switch string(data) {
	case "NaN", "Infinity", "-Infinity":
		return appendJSONString(dst, data), nil
	}
	digits := data
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	intPart, frac, hasDot := cutByte(digits, '.')
	if !isDigits(intPart) || (hasDot && !isDigits(frac)) {
		return dst, badValue(ErrMalformedValue, "numeric text is not plain decimal", data)
	}
	dst = append(dst, '"')
	dst = append(dst, data...)
	return append(dst, '"'), nil
}

// cutByte is bytes.Cut for one separator byte.
func cutByte(b []byte, sep byte) (before, after []byte, found bool) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

func appendTextBool(dst, data []byte) ([]byte, error) {
	switch string(data) {
	case "t":
		return append(dst, "true"...), nil
	case "f":
		return append(dst, "false"...), nil
	}
	return dst, badValue(ErrMalformedValue, `boolean text is neither "t" nor "f"`, data)
}

// appendTextBytea decodes bytea's text output, hex ("\x0a0b", the default
// since PostgreSQL 9.0) or escape (bytea_output = escape), to base64.
func (v *valueCodec) appendTextBytea(dst, data []byte) ([]byte, error) {
	raw, err := decodeByteaText(v.bytes[:0], data)
	if err != nil {
		return dst, err
	}
	v.bytes = raw
	return appendBase64(dst, raw), nil
}

// decodeByteaText appends the bytes that bytea text denotes to buf.
func decodeByteaText(buf, data []byte) ([]byte, error) {
	if len(data) >= 2 && data[0] == '\\' && data[1] == 'x' {
		hexText := data[2:]
		if len(hexText)%2 != 0 {
			return buf, fmt.Errorf("%w: bytea hex of odd length", ErrMalformedValue)
		}
		for i := 0; i < len(hexText); i += 2 {
			hi, ok1 := unhex(hexText[i])
			lo, ok2 := unhex(hexText[i+1])
			if !ok1 || !ok2 {
				return buf, fmt.Errorf("%w: bytea hex with a non-hex digit at byte %d", ErrMalformedValue, 2+i)
			}
			buf = append(buf, hi<<4|lo)
		}
		return buf, nil
	}
	// Escape format: "\\" is a backslash, "\ooo" an octal byte, anything
	// else stands for itself.
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c != '\\' {
			buf = append(buf, c)
			continue
		}
		switch {
		case i+1 < len(data) && data[i+1] == '\\':
			buf = append(buf, '\\')
			i++
		case i+3 < len(data) && isOctal(data[i+1]) && isOctal(data[i+2]) && isOctal(data[i+3]) && data[i+1] <= '3':
			buf = append(buf, (data[i+1]-'0')<<6|(data[i+2]-'0')<<3|(data[i+3]-'0'))
			i += 3
		default:
			return buf, fmt.Errorf("%w: bytea escape at byte %d", ErrMalformedValue, i)
		}
	}
	return buf, nil
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func appendBase64(dst, raw []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, raw)
	return append(dst, '"')
}
