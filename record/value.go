package record

import (
	"fmt"
)

// This file maps a column's type OID to its JSON encoding (docs/records.md#values) and
// dispatches a datum to the text or binary decoder of that encoding. The
// decoders themselves live in value_text.go, value_binary.go, value_time.go
// and value_array.go.

// Builtin type OIDs, fixed by PostgreSQL's pg_type.dat.
const (
	oidBool        = 16
	oidBytea       = 17
	oidChar        = 18
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidJSON        = 114
	oidXML         = 142
	oidFloat4      = 700
	oidFloat8      = 701
	oidBpchar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidInterval    = 1186
	oidTimetz      = 1266
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802

	oidBoxArray = 1020
)

// valueClass is the JSON encoding a type resolves to.
type valueClass uint8

const (
	classOther  valueClass = iota // PostgreSQL's text output as a string
	classString                   // text, varchar, name, xml, json, enum labels
	classBpchar
	classChar
	classInt2
	classInt4
	classInt8
	classOID
	classFloat4
	classFloat8
	classNumeric
	classBool
	classBytea
	classDate
	classTime
	classTimetz
	classTimestamp
	classInterval
	classUUID
	classJSONB
	classArray
	classEnum
)

// builtinClass classifies the builtin scalar types.
func builtinClass(oid uint32) (valueClass, bool) {
	switch oid {
	case oidBool:
		return classBool, true
	case oidBytea:
		return classBytea, true
	case oidChar:
		return classChar, true
	case oidName, oidText, oidVarchar, oidJSON, oidXML:
		return classString, true
	case oidInt8:
		return classInt8, true
	case oidInt2:
		return classInt2, true
	case oidInt4:
		return classInt4, true
	case oidOID:
		return classOID, true
	case oidFloat4:
		return classFloat4, true
	case oidFloat8:
		return classFloat8, true
	case oidBpchar:
		return classBpchar, true
	case oidDate:
		return classDate, true
	case oidTime:
		return classTime, true
	case oidTimestamp, oidTimestamptz:
		return classTimestamp, true
	case oidInterval:
		return classInterval, true
	case oidTimetz:
		return classTimetz, true
	case oidNumeric:
		return classNumeric, true
	case oidUUID:
		return classUUID, true
	case oidJSONB:
		return classJSONB, true
	}
	return classOther, false
}

// builtinArrayElem returns the element type of a builtin array type.
func builtinArrayElem(oid uint32) (uint32, bool) {
	switch oid {
	case 1000:
		return oidBool, true
	case 1001:
		return oidBytea, true
	case 1002:
		return oidChar, true
	case 1003:
		return oidName, true
	case 1005:
		return oidInt2, true
	case 1007:
		return oidInt4, true
	case 1009:
		return oidText, true
	case 1014:
		return oidBpchar, true
	case 1015:
		return oidVarchar, true
	case 1016:
		return oidInt8, true
	case 1021:
		return oidFloat4, true
	case 1022:
		return oidFloat8, true
	case 1028:
		return oidOID, true
	case 1115:
		return oidTimestamp, true
	case 1182:
		return oidDate, true
	case 1183:
		return oidTime, true
	case 1185:
		return oidTimestamptz, true
	case 1187:
		return oidInterval, true
	case 1231:
		return oidNumeric, true
	case 1270:
		return oidTimetz, true
	case 199:
		return oidJSON, true
	case 143:
		return oidXML, true
	case 2951:
		return oidUUID, true
	case 3807:
		return oidJSONB, true
	}
	return 0, false
}

// maxTypeDepth bounds domain-over-domain chains and array nesting through
// Types, so a cyclic or corrupt catalog answer cannot recurse forever.
const maxTypeDepth = 16

// valueCodec encodes datums. It carries the Types resolver and scratch
// buffers, so it is owned by one Encoder and not safe for concurrent use.
type valueCodec struct {
	types Types
	// bytes is scratch for bytea decoding.
	bytes []byte
	// elems is scratch for unescaped text-array elements, one per nesting
	// level of appendDatum, because an element may itself be an array text
	// (an array of a domain over an array).
	elems [maxTypeDepth + 1][]byte
}

// resolve classifies oid, following domains to their base type. For arrays
// it also returns the element type (0 when only the binary payload knows
// it).
func (v *valueCodec) resolve(oid uint32) (class valueClass, elem uint32, err error) {
	for range maxTypeDepth {
		if c, ok := builtinClass(oid); ok {
			return c, 0, nil
		}
		if e, ok := builtinArrayElem(oid); ok {
			return classArray, e, nil
		}
		if v.types == nil {
			return classOther, 0, nil
		}
		info, ok := v.types.LookupType(oid)
		if !ok {
			return classOther, 0, nil
		}
		switch info.Kind {
		case TypeEnum:
			return classEnum, 0, nil
		case TypeArray:
			return classArray, info.ElemOID, nil
		case TypeDomain:
			oid = info.BaseOID
			continue
		}
		return classOther, 0, nil
	}
	return classOther, 0, fmt.Errorf("%w: domain chain deeper than %d", ErrMalformedValue, maxTypeDepth)
}

// appendDatum appends the JSON encoding of one datum of type oid. depth
// counts array nesting through element types; callers start at 0.
func (v *valueCodec) appendDatum(dst []byte, oid uint32, kind DatumKind, data []byte, depth int) ([]byte, error) {
	switch kind {
	case DatumNull:
		return append(dst, "null"...), nil
	case DatumText, DatumBinary:
	default:
		// DatumUnchanged is resolved by compaction before encoding; reaching
		// here means a bug, not a user error.
		return dst, fmt.Errorf("%w: datum kind %q cannot be encoded", ErrMalformedValue, byte(kind))
	}
	if depth > maxTypeDepth {
		return dst, fmt.Errorf("%w: nested deeper than %d", ErrMalformedValue, maxTypeDepth)
	}
	class, elem, err := v.resolve(oid)
	if err != nil {
		return dst, err
	}
	if kind == DatumText {
		return v.appendText(dst, class, elem, oid, data, depth)
	}
	return v.appendBinary(dst, class, data, depth)
}

// appendText appends the encoding of PostgreSQL's text output of a value.
func (v *valueCodec) appendText(dst []byte, class valueClass, elem, oid uint32, data []byte, depth int) ([]byte, error) {
	switch class {
	case classString, classEnum, classOther, classChar, classUUID, classJSONB:
		// These types' text output is already their JSON string content.
		return appendJSONString(dst, data), nil
	case classBpchar:
		return appendJSONString(dst, trimSpaces(data)), nil
	case classInt2, classInt4, classInt8, classOID:
		return appendTextInteger(dst, data, class)
	case classFloat4:
		return appendTextFloat(dst, data, 32)
	case classFloat8:
		return appendTextFloat(dst, data, 64)
	case classNumeric:
		return appendTextNumeric(dst, data)
	case classBool:
		return appendTextBool(dst, data)
	case classBytea:
		return v.appendTextBytea(dst, data)
	case classDate:
		return appendTextDate(dst, data)
	case classTime:
		return appendTextTime(dst, data)
	case classTimetz:
		return appendTextTimetz(dst, data)
	case classTimestamp:
		return appendTextTimestamp(dst, data)
	case classInterval:
		return appendTextInterval(dst, data)
	case classArray:
		delim := byte(',')
		if oid == oidBoxArray {
			delim = ';' // box is the one builtin whose array delimiter is not a comma
		}
		return v.appendTextArray(dst, elem, delim, data, depth)
	}
	return dst, fmt.Errorf("%w: no text decoder for class %d", ErrMalformedValue, class)
}

// appendBinary appends the encoding of a value in its type's binary send
// format.
func (v *valueCodec) appendBinary(dst []byte, class valueClass, data []byte, depth int) ([]byte, error) {
	switch class {
	case classString, classEnum:
		return appendJSONString(dst, data), nil
	case classBpchar:
		return appendJSONString(dst, trimSpaces(data)), nil
	case classChar:
		return appendBinaryChar(dst, data)
	case classInt2:
		return appendBinaryInt(dst, data, 2)
	case classInt4:
		return appendBinaryInt(dst, data, 4)
	case classInt8:
		return appendBinaryInt(dst, data, 8)
	case classOID:
		return appendBinaryOID(dst, data)
	case classFloat4:
		return appendBinaryFloat(dst, data, 32)
	case classFloat8:
		return appendBinaryFloat(dst, data, 64)
	case classNumeric:
		return appendBinaryNumeric(dst, data)
	case classBool:
		return appendBinaryBool(dst, data)
	case classBytea:
		return appendBase64(dst, data), nil
	case classDate:
		return appendBinaryDate(dst, data)
	case classTime:
		return appendBinaryTime(dst, data)
	case classTimetz:
		return appendBinaryTimetz(dst, data)
	case classTimestamp:
		return appendBinaryTimestamp(dst, data)
	case classInterval:
		return appendBinaryInterval(dst, data)
	case classUUID:
		return appendBinaryUUID(dst, data)
	case classJSONB:
		return appendBinaryJSONB(dst, data)
	case classArray:
		return v.appendBinaryArray(dst, data, depth)
	}
	return dst, ErrBinaryUnsupported
}

// binaryDecodable reports whether values of oid arriving in the binary
// format can be encoded, following domains and array element types.
func (v *valueCodec) binaryDecodable(oid uint32) bool {
	for range maxTypeDepth {
		class, elem, err := v.resolve(oid)
		switch {
		case err != nil || class == classOther:
			return false
		case class != classArray:
			return true
		}
		oid = elem
	}
	return false
}

// trimSpaces removes bpchar's blank padding (docs/records.md#values). Only ASCII spaces
// are padding; other whitespace is data.
func trimSpaces(b []byte) []byte {
	n := len(b)
	for n > 0 && b[n-1] == ' ' {
		n--
	}
	return b[:n]
}
