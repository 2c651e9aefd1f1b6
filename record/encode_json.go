package record

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// This file holds the JSON primitives the encoder appends with. Records are
// built by hand into reused buffers rather than through encoding/json: the
// field order is part of the format (docs/records.md#envelope), and reflection per value
// would dominate the cost of a row.

const hexDigitsLower = "0123456789abcdef"

// jsonSafeASCII reports the ASCII bytes that appear in a JSON string as
// themselves; every other ASCII byte needs an escape.
var jsonSafeASCII = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// appendJSONString appends s as a quoted JSON string. Control characters are
// escaped, invalid UTF-8 becomes \ufffd (so every record is valid UTF-8, which
// chunking relies on), and U+2028/U+2029 are escaped so the text is also safe
// to embed in JavaScript.
func appendJSONString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	dst = appendJSONStringBody(dst, s)
	return append(dst, '"')
}

// appendJSONStringBody appends s escaped as in appendJSONString, without the
// quotes. jsonEscapedLen must agree with it byte for byte.
func appendJSONStringBody[S ~string | ~[]byte](dst []byte, s S) []byte {
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if jsonSafeASCII[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigitsLower[b>>4], hexDigitsLower[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigitsLower[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// decodeRune is utf8.DecodeRune for both strings and byte slices, so one
// escaper serves column names and values without converting either.
func decodeRune[S ~string | ~[]byte](s S) (rune, int) {
	const bad = utf8.RuneError
	n := len(s)
	if n == 0 {
		return bad, 0
	}
	b0 := s[0]
	switch {
	case b0 < utf8.RuneSelf:
		return rune(b0), 1
	case b0 < 0xC2:
		return bad, 1
	case b0 < 0xE0:
		if n < 2 || s[1]&0xC0 != 0x80 {
			return bad, 1
		}
		return rune(b0&0x1F)<<6 | rune(s[1]&0x3F), 2
	case b0 < 0xF0:
		lo, hi := byte(0x80), byte(0xBF)
		if b0 == 0xE0 {
			lo = 0xA0 // overlong
		} else if b0 == 0xED {
			hi = 0x9F // surrogates
		}
		if n < 3 || s[1] < lo || s[1] > hi || s[2]&0xC0 != 0x80 {
			return bad, 1
		}
		return rune(b0&0x0F)<<12 | rune(s[1]&0x3F)<<6 | rune(s[2]&0x3F), 3
	case b0 < 0xF5:
		lo, hi := byte(0x80), byte(0xBF)
		if b0 == 0xF0 {
			lo = 0x90 // overlong
		} else if b0 == 0xF4 {
			hi = 0x8F // above U+10FFFF
		}
		if n < 4 || s[1] < lo || s[1] > hi || s[2]&0xC0 != 0x80 || s[3]&0xC0 != 0x80 {
			return bad, 1
		}
		return rune(b0&0x07)<<18 | rune(s[1]&0x3F)<<12 | rune(s[2]&0x3F)<<6 | rune(s[3]&0x3F), 4
	}
	return bad, 1
}

// jsonEscapedLen returns how many bytes appendJSONStringBody writes for the
// character starting at s[0], and how many bytes of s that character spans.
func jsonEscapedLen(s []byte) (out, in int) {
	b := s[0]
	if b < utf8.RuneSelf {
		switch {
		case jsonSafeASCII[b]:
			return 1, 1
		case b == '"', b == '\\', b == '\n', b == '\r', b == '\t', b == '\b', b == '\f':
			return 2, 1
		}
		return 6, 1
	}
	r, size := decodeRune(s)
	if r == utf8.RuneError && size == 1 {
		return 6, 1
	}
	if r == '\u2028' || r == '\u2029' {
		return 6, size
	}
	return size, size
}

// appendJSONFloat appends f as a JSON number, or as the strings "NaN",
// "Infinity" and "-Infinity" that docs/records.md#values prescribes. The number format is
// encoding/json's (ES6 style: plain decimals between 1e-6 and 1e21, exponent
// otherwise), with the shortest digits that read back as the same float of
// the given size, so text and binary inputs encode identically.
func appendJSONFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(dst, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(dst, `"-Infinity"`...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// Shorten e-09 to e-9, as encoding/json does.
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// appendUpperHex appends v in uppercase hexadecimal without leading zeros,
// as PostgreSQL prints LSN halves.
func appendUpperHex(dst []byte, v uint32) []byte {
	const digits = "0123456789ABCDEF"
	var tmp [8]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = digits[v&0xF]
		v >>= 4
		if v == 0 {
			break
		}
	}
	return append(dst, tmp[i:]...)
}

// appendLSN appends an LSN in PostgreSQL's "16/B374D848" form.
func appendLSN(dst []byte, lsn uint64) []byte {
	dst = appendUpperHex(dst, uint32(lsn>>32))
	dst = append(dst, '/')
	return appendUpperHex(dst, uint32(lsn))
}

// AppendJSONString appends s as a quoted JSON string escaped as record
// fields are; the sink writes PutRecords request bodies with it.
func AppendJSONString(dst []byte, s string) []byte { return appendJSONString(dst, s) }
