package record

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
)

// Decoders for the binary send formats of the scalar types (pgoutput with
// the publication option binary). Each produces exactly what the text path
// produces for the same value; the golden tests hold both to that.

func errLength(what string, got, want int) error {
	return fmt.Errorf("%w: %s of %d bytes, want %d", ErrMalformedValue, what, got, want)
}

// appendBinaryChar renders "char" as charout does: the byte itself, an empty
// string for NUL, and a backslash-octal escape for bytes with the high bit
// set, which are not valid UTF-8 on their own (PostgreSQL 15+).
func appendBinaryChar(dst, data []byte) ([]byte, error) {
	if len(data) != 1 {
		return dst, errLength(`"char"`, len(data), 1)
	}
	c := data[0]
	switch {
	case c == 0:
		return append(dst, `""`...), nil
	case c >= 0x80:
		return append(dst, '"', '\\', '\\', '0'+c>>6, '0'+c>>3&7, '0'+c&7, '"'), nil
	}
	return appendJSONString(dst, data), nil
}

func appendBinaryInt(dst, data []byte, size int) ([]byte, error) {
	if len(data) != size {
		return dst, errLength("integer", len(data), size)
	}
	var v int64
	switch size {
	case 2:
		v = int64(int16(binary.BigEndian.Uint16(data)))
	case 4:
		v = int64(int32(binary.BigEndian.Uint32(data)))
	default:
		v = int64(binary.BigEndian.Uint64(data))
	}
	return strconv.AppendInt(dst, v, 10), nil
}

func appendBinaryOID(dst, data []byte) ([]byte, error) {
	if len(data) != 4 {
		return dst, errLength("oid", len(data), 4)
	}
	return strconv.AppendUint(dst, uint64(binary.BigEndian.Uint32(data)), 10), nil
}

func appendBinaryFloat(dst, data []byte, bits int) ([]byte, error) {
	if len(data) != bits/8 {
		return dst, errLength("float", len(data), bits/8)
	}
	if bits == 32 {
		return appendJSONFloat(dst, float64(math.Float32frombits(binary.BigEndian.Uint32(data))), 32), nil
	}
	return appendJSONFloat(dst, math.Float64frombits(binary.BigEndian.Uint64(data)), 64), nil
}

func appendBinaryBool(dst, data []byte) ([]byte, error) {
	if len(data) != 1 {
		return dst, errLength("boolean", len(data), 1)
	}
	if data[0] != 0 {
		return append(dst, "true"...), nil
	}
	return append(dst, "false"...), nil
}

// Numeric sign words of numeric_send.
const (
	numericPos  = 0x0000
	numericNeg  = 0x4000
	numericNaN  = 0xC000
	numericPInf = 0xD000
	numericNInf = 0xF000
)

// appendBinaryNumeric renders numeric_send's format, a base-10000 digit
// string, exactly as numeric_out (get_str_from_var) prints it:
//
//	int16 ndigits, int16 weight, uint16 sign, uint16 dscale, ndigits × int16
//
// The value is Σ digit[i] × 10000^(weight−i); dscale is the number of decimal
// digits printed after the point, zero-padded or truncated.
func appendBinaryNumeric(dst, data []byte) ([]byte, error) {
	if len(data) < 8 {
		return dst, fmt.Errorf("%w: numeric header of %d bytes", ErrMalformedValue, len(data))
	}
	ndigits := int(int16(binary.BigEndian.Uint16(data)))
	weight := int(int16(binary.BigEndian.Uint16(data[2:])))
	sign := binary.BigEndian.Uint16(data[4:])
	dscale := int(binary.BigEndian.Uint16(data[6:]))
	switch sign {
	case numericNaN:
		return append(dst, `"NaN"`...), nil
	case numericPInf:
		return append(dst, `"Infinity"`...), nil
	case numericNInf:
		return append(dst, `"-Infinity"`...), nil
	case numericPos, numericNeg:
	default:
		return dst, badValue(ErrMalformedValue, "numeric with an unknown sign field", data)
	}
	if ndigits < 0 || len(data) != 8+2*ndigits {
		return dst, fmt.Errorf("%w: numeric of %d digits in %d bytes", ErrMalformedValue, ndigits, len(data))
	}
	if dscale&0x3FFF != dscale { // NUMERIC_DSCALE_MASK
		return dst, badValue(ErrMalformedValue, "numeric with a display scale above 16383", data)
	}
	digits := data[8:]
	digit := func(i int) int {
		if i < 0 || i >= ndigits {
			return 0
		}
		return int(binary.BigEndian.Uint16(digits[2*i:]))
	}
	for i := range ndigits {
		if digit(i) > 9999 {
			return dst, badValue(ErrMalformedValue, fmt.Sprintf("numeric digit group %d above 9999", i), data)
		}
	}
	dst = append(dst, '"')
	if sign == numericNeg {
		dst = append(dst, '-')
	}
	// Integer part: the first group without leading zeros, the rest
	// zero-padded to four digits; "0" when the value is below one.
	if weight < 0 {
		dst = append(dst, '0')
	} else {
		for i := 0; i <= weight; i++ {
			d := digit(i)
			if i == 0 {
				dst = strconv.AppendInt(dst, int64(d), 10)
				continue
			}
			dst = append(dst, byte('0'+d/1000), byte('0'+d/100%10), byte('0'+d/10%10), byte('0'+d%10))
		}
	}
	if dscale > 0 {
		dst = append(dst, '.')
		for written, i := 0, weight+1; written < dscale; i++ {
			d := digit(i)
			for _, c := range [4]byte{byte('0' + d/1000), byte('0' + d/100%10), byte('0' + d/10%10), byte('0' + d%10)} {
				if written == dscale {
					break
				}
				dst = append(dst, c)
				written++
			}
		}
	}
	return append(dst, '"'), nil
}

// appendBinaryUUID formats uuid_send's 16 bytes as 8-4-4-4-12 lowercase hex,
// as uuid_out does.
func appendBinaryUUID(dst, data []byte) ([]byte, error) {
	if len(data) != 16 {
		return dst, errLength("uuid", len(data), 16)
	}
	dst = append(dst, '"')
	for i, b := range data {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigitsLower[b>>4], hexDigitsLower[b&0xF])
	}
	return append(dst, '"'), nil
}

// appendBinaryJSONB strips jsonb_send's version byte (1, the only version)
// from the JSON text that follows it.
func appendBinaryJSONB(dst, data []byte) ([]byte, error) {
	if len(data) == 0 || data[0] != 1 {
		return dst, fmt.Errorf("%w: jsonb without version byte 1", ErrMalformedValue)
	}
	return appendJSONString(dst, data[1:]), nil
}
