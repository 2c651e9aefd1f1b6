package record

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

// Hand-written cases beyond the golden file: inputs PostgreSQL does not
// print by default (escape-format bytea, odd array spacing), malformed
// inputs, and boundaries of the arithmetic.

func TestTextValues(t *testing.T) {
	tests := []struct {
		name string
		oid  uint32
		in   string
		want string // JSON, or "error:<sentinel text>"
	}{
		{"bytea escape format", oidBytea, `a\\b\001\377`, `"YVxiAf8="`},
		{"bytea escape format bad", oidBytea, `\9`, "error:malformed"},
		{"bytea hex upper", oidBytea, `\xDEADBEEF`, `"3q2+7w=="`},
		{"bytea hex odd", oidBytea, `\xabc`, "error:malformed"},
		{"int4 overflow", oidInt4, "2147483648", "error:malformed"},
		{"int2 overflow", oidInt2, "-32769", "error:malformed"},
		{"int8 junk", oidInt8, "12a", "error:malformed"},
		{"int leading zero", oidInt4, "007", "error:malformed"},
		{"int plus", oidInt4, "+7", "error:malformed"},
		{"oid negative", oidOID, "-1", "error:malformed"},
		{"float8 junk", oidFloat8, "1.2.3", "error:malformed"},
		{"float4 exponent", oidFloat4, "1e+20", "100000000000000000000"},
		{"numeric junk", oidNumeric, "1e5", "error:malformed"},
		{"numeric bare dot", oidNumeric, "1.", "error:malformed"},
		{"bool junk", oidBool, "true", "error:malformed"},
		{"date not ISO", oidDate, "01/15/2024", "error:malformed"},
		{"date month 13", oidDate, "2024-13-01", "error:malformed"},
		{"time with junk", oidTime, "12:00:00x", "error:malformed"},
		{"time fraction of 7 digits", oidTime, "12:00:00.1234567", "error:malformed"},
		{"timetz wraps below zero", oidTimetz, "00:00:00+01", "82800000000"},
		{"timetz wraps at a day", oidTimetz, "24:00:00+00", "0"},
		{"timestamptz offset with seconds", oidTimestamptz, "1970-01-01 00:00:00+00:00:01", "-1000000"},
		{"timestamp last representable year", oidTimestamp, "294246-01-01 00:00:00", "9223339708800000000"},
		{"timestamp past int64", oidTimestamp, "294276-12-31 23:59:59", "error:out of range"},
		{"timestamp not ISO", oidTimestamp, "Mon Jan 15 12:30:00 2024", "error:malformed"},
		{"interval verbose style", oidInterval, "@ 1 day", "error:malformed"},
		{"interval sql standard", oidInterval, "1-2", "error:malformed"},
		{"interval empty", oidInterval, "", "error:malformed"},
		{"interval unit only", oidInterval, "day", "error:malformed"},
		{"interval plus on a part", oidInterval, "-1 days +1 mons", "2543400000000"},
		{"interval infinity (PostgreSQL 17)", oidInterval, "infinity", "null"},
		{"interval overflow", oidInterval, "292471 years 1 day 9999:00:00", "null"},
		{"array spaces", 1007, ` { 1 , 2 } `, `[1,2]`},
		{"array null any case", 1007, `{NuLl,1}`, `[null,1]`},
		{"array escaped unquoted", 1009, `{a\,b,c\ }`, `["a,b","c "]`},
		{"array unquoted trailing space trimmed", 1009, `{ab   ,c}`, `["ab","c"]`},
		{"array quoted keeps spaces", 1009, `{"  a  "}`, `["  a  "]`},
		{"array escaped NULL is a string", 1009, `{\NULL}`, `["NULL"]`},
		{"array empty nested", 1007, `{{},{}}`, `[[],[]]`},
		{"array bad dimension decoration", 1007, `[1:2{1,2}`, "error:malformed"},
		{"array unterminated", 1007, `{1,2`, "error:malformed"},
		{"array trailing junk", 1007, `{1}x`, "error:malformed"},
		{"array empty element", 1007, `{1,,2}`, "error:malformed"},
		{"array quote inside unquoted", 1009, `{a"b}`, "error:malformed"},
		{"array too deep", 1007, `{{{{{{{1}}}}}}}`, "error:malformed"},
		{"array bad element", 1007, `{x}`, "error:malformed"},
		{"array of bytea", 1001, `{"\\x01"}`, `["AQ=="]`},
		{"text with invalid UTF-8", oidText, "a\xffb", `"a\ufffdb"`},
		{"bpchar keeps tabs", oidBpchar, "a\t ", `"a\t"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &valueCodec{}
			got, err := v.appendDatum(nil, tt.oid, DatumText, []byte(tt.in), 0)
			checkValue(t, string(got), err, tt.want)
		})
	}
}

func checkValue(t *testing.T, got string, err error, want string) {
	t.Helper()
	if strings.HasPrefix(want, "error:") {
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(want, "error:")) {
			t.Errorf("got %s, %v; want an error containing %q", got, err, strings.TrimPrefix(want, "error:"))
		}
		return
	}
	if err != nil {
		t.Fatalf("error %v, want %s", err, want)
	}
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if !json.Valid([]byte(got)) {
		t.Errorf("%s is not valid JSON", got)
	}
}

func be16(vs ...uint16) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}

func TestBinaryValues(t *testing.T) {
	u64 := func(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
	interval := func(us int64, days, months int32) []byte {
		b := u64(us)
		b = binary.BigEndian.AppendUint32(b, uint32(days))
		return binary.BigEndian.AppendUint32(b, uint32(months))
	}
	tests := []struct {
		name string
		oid  uint32
		in   []byte
		want string
	}{
		// numeric: ndigits, weight, sign, dscale, digits
		{"numeric dscale truncates a digit group", oidNumeric, be16(1, 0xFFFF, 0, 2, 1234), `"0.12"`},
		{"numeric dscale pads beyond the digits", oidNumeric, be16(1, 0, 0, 6, 7), `"7.000000"`},
		{"numeric weight beyond the digits", oidNumeric, be16(1, 2, 0, 0, 5), `"500000000"`},
		{"numeric negative weight", oidNumeric, be16(1, 0xFFFE, 0x4000, 8, 5), `"-0.00000005"`},
		{"numeric zero digits", oidNumeric, be16(0, 0, 0, 0), `"0"`},
		{"numeric bad sign", oidNumeric, be16(0, 0, 0x1234, 0), "error:malformed"},
		{"numeric digit over 9999", oidNumeric, be16(1, 0, 0, 0, 10000), "error:malformed"},
		{"numeric truncated digits", oidNumeric, be16(2, 0, 0, 0, 1), "error:malformed"},
		{"numeric short header", oidNumeric, []byte{0, 1}, "error:malformed"},
		{"int4 wrong length", oidInt4, []byte{0, 1}, "error:malformed"},
		{"bool nonzero", oidBool, []byte{2}, "true"},
		{"date wrong length", oidDate, []byte{0}, "error:malformed"},
		{"timetz bad time", oidTimetz, append(u64(-1), 0, 0, 0, 0), "error:malformed"},
		{"timestamp just past int64 after the shift", oidTimestamp, u64(math.MaxInt64 - 1), "error:out of range"},
		{"interval overflow is null", oidInterval, interval(0, 0, math.MaxInt32), "null"},
		{"interval negative overflow is null", oidInterval, interval(math.MinInt64+1, -1, 0), "null"},
		{"interval infinity (PostgreSQL 17) is null", oidInterval, interval(math.MaxInt64, math.MaxInt32, math.MaxInt32), "null"},
		{"jsonb without version", oidJSONB, []byte(`{}`), "error:malformed"},
		{"uuid short", oidUUID, make([]byte, 15), "error:malformed"},
		{"char wrong length", oidChar, []byte("ab"), "error:malformed"},
		{"array truncated header", 1007, make([]byte, 8), "error:malformed"},
		{"array too many dims", 1007, binary.BigEndian.AppendUint32(nil, 7), "error:malformed"},
		{"array huge dimension", 1007, append(be16(0, 1, 0, 0, 0, 23), be16(0x7FFF, 0xFFFF, 0, 1)...), "error:malformed"},
		{"array element overruns", 1007, append(be16(0, 1, 0, 0, 0, 23, 0, 1, 0, 1), be16(0, 8, 0, 0)...), "error:malformed"},
		{"array trailing bytes", 1007, append(be16(0, 1, 0, 0, 0, 23, 0, 1, 0, 1), be16(0xFFFF, 0xFFFF, 0)...), "error:malformed"},
		{"array null element", 1007, append(be16(0, 1, 0, 1, 0, 23, 0, 1, 0, 1), be16(0xFFFF, 0xFFFF)...), "[null]"},
		{"unknown type", 600, make([]byte, 16), "error:text format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &valueCodec{}
			got, err := v.appendDatum(nil, tt.oid, DatumBinary, tt.in, 0)
			checkValue(t, string(got), err, tt.want)
		})
	}
}

func TestDatumKinds(t *testing.T) {
	v := &valueCodec{}
	if got, err := v.appendDatum(nil, oidInt4, DatumNull, nil, 0); err != nil || string(got) != "null" {
		t.Errorf("NULL: %s, %v", got, err)
	}
	if _, err := v.appendDatum(nil, oidInt4, DatumUnchanged, nil, 0); !errors.Is(err, ErrMalformedValue) {
		t.Errorf("unchanged datum: %v", err)
	}
}

// cyclicTypes is a corrupt catalog: a domain over itself.
type cyclicTypes struct{}

func (cyclicTypes) LookupType(oid uint32) (TypeInfo, bool) {
	return TypeInfo{OID: oid, Kind: TypeDomain, BaseOID: oid}, true
}

func TestDomainCycle(t *testing.T) {
	v := &valueCodec{types: cyclicTypes{}}
	if _, err := v.appendDatum(nil, 99999, DatumText, []byte("x"), 0); !errors.Is(err, ErrMalformedValue) {
		t.Errorf("cyclic domain: %v", err)
	}
}

func TestAppendJSONString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{"\"\\/", `"\"\\/"`},
		{"\n\r\t\b\f\x00\x1f", `"\n\r\t\b\f\u0000\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"é☃😀", `"é☃😀"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"a\xffb\xc3", `"a\ufffdb\ufffd"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // a surrogate is not UTF-8
		{"<&>", `"<&>"`},
	}
	for _, tt := range tests {
		if got := string(appendJSONString(nil, tt.in)); got != tt.want {
			t.Errorf("appendJSONString(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if got := string(appendJSONString(nil, []byte(tt.in))); got != tt.want {
			t.Errorf("appendJSONString([]byte %q) = %s, want %s", tt.in, got, tt.want)
		}
		var back string
		if err := json.Unmarshal([]byte(tt.want), &back); err != nil {
			t.Errorf("%s: %v", tt.want, err)
		}
	}
}

// FuzzDecodeRune holds the generic decodeRune and jsonEscapedLen to the
// standard library and to appendJSONStringBody.
func FuzzDecodeRune(f *testing.F) {
	for _, s := range []string{"a", "é", "☃", "😀", "\xff", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x80\x80", "\"", "\u2028"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		r, n := decodeRune(b)
		wr, wn := utf8.DecodeRune(b)
		if r != wr || n != wn {
			t.Fatalf("decodeRune(%q) = %q,%d; utf8 says %q,%d", b, r, n, wr, wn)
		}
		out, in := jsonEscapedLen(b)
		if got := len(appendJSONStringBody(nil, b[:in])); got != out || in != n {
			t.Fatalf("jsonEscapedLen(%q) = %d,%d; escaping writes %d", b, out, in, got)
		}
	})
}

func TestAppendJSONFloat(t *testing.T) {
	tests := []struct {
		f    float64
		bits int
		want string
	}{
		{0, 64, "0"},
		{math.Copysign(0, -1), 64, "-0"},
		{1e21, 64, "1e+21"},
		{1e-7, 64, "1e-7"},
		{123456789, 64, "123456789"},
		{float64(float32(0.1)), 32, "0.1"},
		{float64(float32(16777217)), 32, "16777216"},
		{math.NaN(), 64, `"NaN"`},
		{math.Inf(-1), 32, `"-Infinity"`},
	}
	for _, tt := range tests {
		if got := string(appendJSONFloat(nil, tt.f, tt.bits)); got != tt.want {
			t.Errorf("appendJSONFloat(%v, %d) = %s, want %s", tt.f, tt.bits, got, tt.want)
		}
	}
}
