package roundtrip

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// Value generators return PostgreSQL text input (cast in SQL with
// $n::text::type), or nil for NULL. Each mixes edge values of its type with
// random ones.

// pieces are what random text is made of: ASCII, multi-byte letters, emoji
// (one a ZWJ sequence), a combining mark, characters JSON must escape, and
// text that array literals and CSV-minded code trip over; and the marker
// that the suite's log scan looks for (testenv.RunCheckingLogs).
var pieces = []string{
	"a", "b", "q", "X", "Z", "0", "7", " ", "  ", "-", "_", ".", testenv.MarkerText,
	"é", "ß", "Ж", "ж", "ع", "漢", "字", "한", "😀", "🚀", "👩‍👩‍👧", "e\u0301",
	"\"", "\\", "'", "\n", "\t", "\r", "\x01", "\x1f", "\u2028", "\u00a0", "\ufeff", "\U0010fffd",
	"<", ">", "&", "{", "}", ",", ";", "(", ")", "[", "]", "NULL", "null",
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.Intn(len(xs))] }

func ptr(s string) *string { return &s }

// text returns up to maxRunes runes of random text.
func text(r *rand.Rand, maxRunes int) string {
	var b strings.Builder
	n := r.Intn(maxRunes + 1)
	runes := 0
	for runes < n {
		p := pick(r, pieces)
		if k := utf8.RuneCountInString(p); runes+k <= n {
			b.WriteString(p)
			runes += k
		} else {
			b.WriteByte('a')
			runes++
		}
	}
	return b.String()
}

// bigText returns at least n bytes of text with little repetition, so
// PostgreSQL stores it out of line (TOAST) rather than compressing it
// inline, with multi-byte characters throughout so that chunk boundaries
// fall next to them.
func bigText(r *rand.Rand, n int) string {
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var b strings.Builder
	b.Grow(n + 16)
	for b.Len() < n {
		if r.Intn(8) == 0 {
			b.WriteString(pick(r, pieces))
		} else {
			b.WriteByte(alnum[r.Intn(len(alnum))])
		}
	}
	return b.String()
}

// truncBytes cuts s to at most n bytes on a rune boundary.
func truncBytes(s string, n int) string {
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// nullable makes a generator return NULL one time in seven.
func nullable(gen func(*rand.Rand) *string) func(*rand.Rand) *string {
	return func(r *rand.Rand) *string {
		if r.Intn(7) == 0 {
			return nil
		}
		return gen(r)
	}
}

func genInt(bits int) func(*rand.Rand) *string {
	return func(r *rand.Rand) *string {
		hi := int64(1)<<(bits-1) - 1
		switch r.Intn(8) {
		case 0:
			return ptr(strconv.FormatInt(hi, 10))
		case 1:
			return ptr(strconv.FormatInt(-hi-1, 10))
		case 2:
			return ptr(pick(r, []string{"0", "-1", "1"}))
		case 3:
			if bits >= 32 { // the marker of the log scan
				return ptr(strconv.Itoa(testenv.MarkerNumber))
			}
		}
		return ptr(strconv.FormatInt(r.Int63n(hi)-r.Int63n(hi), 10))
	}
}

func genOID(r *rand.Rand) *string {
	if r.Intn(5) == 0 {
		return ptr(pick(r, []string{"0", "4294967295", "2147483648"}))
	}
	return ptr(strconv.FormatUint(uint64(r.Uint32()), 10))
}

func genFloat4(r *rand.Rand) *string {
	if r.Intn(4) == 0 {
		return ptr(pick(r, []string{"NaN", "Infinity", "-Infinity", "-0", "1.4e-45", "3.4028235e+38", "1.1754944e-38", "0.1"}))
	}
	f := float32(r.NormFloat64() * math.Pow(10, float64(r.Intn(30)-15)))
	return ptr(strconv.FormatFloat(float64(f), 'g', -1, 32))
}

func genFloat8(r *rand.Rand) *string {
	switch r.Intn(5) {
	case 0:
		return ptr(pick(r, []string{"NaN", "Infinity", "-Infinity", "-0", "5e-324", "1.7976931348623157e+308",
			"2.2250738585072014e-308", "0.1", "9007199254740993", "123456789012345680000"}))
	case 1:
		for {
			f := math.Float64frombits(r.Uint64())
			if !math.IsNaN(f) && !math.IsInf(f, 0) {
				return ptr(strconv.FormatFloat(f, 'g', -1, 64))
			}
		}
	}
	return ptr(strconv.FormatFloat(r.NormFloat64()*math.Pow(10, float64(r.Intn(40)-20)), 'g', -1, 64))
}

func digits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.Intn(10))
	}
	return string(b)
}

// genNumeric covers the special values, huge integers and scales of up to
// a thousand digits.
func genNumeric(r *rand.Rand) *string {
	switch r.Intn(12) {
	case 0:
		return ptr(pick(r, []string{"NaN", "Infinity", "-Infinity"}))
	case 1:
		return ptr(pick(r, []string{"0", "-0.000", "0.00000000000000000001", "1e-1000", "-1e+300"}))
	case 2:
		return ptr("0." + digits(r, 1+r.Intn(1000)))
	case 3:
		return ptr("-" + "9" + digits(r, 1+r.Intn(150)) + "." + digits(r, r.Intn(40)))
	}
	s := pick(r, []string{"", "-"}) + strconv.Itoa(r.Intn(1000000))
	if r.Intn(2) == 0 {
		s += "." + digits(r, 1+r.Intn(20))
	}
	return ptr(s)
}

// genNumericScaled fits numeric(30, 10); PostgreSQL rounds the scale.
func genNumericScaled(r *rand.Rand) *string {
	if r.Intn(10) == 0 {
		return ptr("NaN")
	}
	return ptr(pick(r, []string{"", "-"}) + digits(r, 1+r.Intn(20)) + "." + digits(r, r.Intn(16)))
}

func genBool(r *rand.Rand) *string { return ptr(pick(r, []string{"true", "false"})) }

func genText(r *rand.Rand) *string {
	if r.Intn(12) == 0 {
		// Large enough to be TOASTed, so updates of other columns leave
		// it out of the WAL's new row.
		return ptr(bigText(r, 4000+r.Intn(60000)))
	}
	return ptr(text(r, 60))
}

func genVarchar(r *rand.Rand) *string { return ptr(text(r, 40)) }

func genName(r *rand.Rand) *string { return ptr(truncBytes(text(r, 30), 63)) }

// genChar covers "char"'s ASCII bytes, the empty value (the zero byte) and
// bytes with the high bit, whose text form is a backslash and three octal
// digits.
func genChar(r *rand.Rand) *string {
	return ptr(pick(r, []string{"a", "Z", "0", " ", "\"", "\\", "{", "", `\351`, `\200`, `\377`}))
}

func genBpchar8(r *rand.Rand) *string {
	return ptr(pick(r, []string{"", " ", "  x"}) + text(r, 5) + pick(r, []string{"", " ", "  "}))
}

func genBpcharU(r *rand.Rand) *string {
	return ptr(pick(r, []string{"", " "}) + text(r, 20) + pick(r, []string{"", " ", "   ", "\u00a0", "\t"}))
}

func genBytea(r *rand.Rand) *string {
	n := r.Intn(40)
	if r.Intn(15) == 0 {
		n = 3000 + r.Intn(5000)
	}
	b := make([]byte, n)
	r.Read(b)
	return ptr(`\x` + hex.EncodeToString(b))
}

var epoch = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

func genDate(r *rand.Rand) *string {
	if r.Intn(4) == 0 {
		return ptr(pick(r, []string{"infinity", "-infinity", "4713-01-01 BC", "5874897-12-31", "2000-02-29",
			"1970-01-01", "0001-01-01", "0001-12-31 BC", "1969-12-31"}))
	}
	return ptr(epoch.AddDate(0, 0, r.Intn(2*365*300)-365*300).Format("2006-01-02"))
}

func clock(us int64) string {
	return fmt.Sprintf("%02d:%02d:%02d.%06d", us/3600e6, us/60e6%60, us/1e6%60, us%1e6)
}

func genTime(r *rand.Rand) *string {
	if r.Intn(4) == 0 {
		return ptr(pick(r, []string{"00:00:00", "24:00:00", "23:59:59.999999", "00:00:00.000001", "12:00:00"}))
	}
	return ptr(clock(r.Int63n(86400e6)))
}

func offset(r *rand.Rand) string {
	sign := pick(r, []string{"+", "-"})
	s := fmt.Sprintf("%s%02d:%02d", sign, r.Intn(16), pick(r, []int{0, 0, 30, 45, r.Intn(60)}))
	if r.Intn(10) == 0 {
		s += fmt.Sprintf(":%02d", r.Intn(60))
	}
	return s
}

func genTimetz(r *rand.Rand) *string {
	if r.Intn(4) == 0 {
		return ptr(pick(r, []string{"24:00:00+00", "24:00:00-15:59", "00:00:00+15:59", "23:59:59.999999-15:59",
			"12:00:00+05:30:15", "00:00:00+00", "23:30:00-08"}))
	}
	return ptr(clock(r.Int63n(86400e6)) + offset(r))
}

// randInstant is a random instant between the years 1000 and 3000.
func randInstant(r *rand.Rand) time.Time {
	const year = 31556952 // seconds in a Gregorian year
	return time.Unix(-970*year+r.Int63n(2000*year), 1000*r.Int63n(1e6)).UTC()
}

func genTimestamp(r *rand.Rand) *string {
	if r.Intn(4) == 0 {
		return ptr(pick(r, []string{"infinity", "-infinity", "4713-01-01 00:00:00 BC", "0044-03-15 12:00:00 BC",
			"99999-12-31 23:59:59.999999", "2000-01-01 00:00:00", "1970-01-01 00:00:00", "1969-12-31 23:59:59.999999"}))
	}
	return ptr(randInstant(r).Format("2006-01-02 15:04:05.999999"))
}

func genTimestamptz(r *rand.Rand) *string {
	if r.Intn(4) == 0 {
		// Without an offset, a value is read in the workload session's
		// time zone (see workload.run).
		return ptr(pick(r, []string{"infinity", "-infinity", "4713-01-01 00:00:00+00 BC", "0044-03-15 12:00:00 BC",
			"99999-12-31 23:59:59.999999+00", "1970-01-01 00:00:00+00", "1890-06-01 12:00:00", "2024-03-10 02:30:00"}))
	}
	return ptr(randInstant(r).Format("2006-01-02 15:04:05.999999") + offset(r))
}

func genInterval(r *rand.Rand) *string {
	if r.Intn(4) == 0 {
		return ptr(pick(r, []string{"0", "1 mon", "-1 mon", "1 year 1 mon 1 day 00:00:00.000001", "@ 1 year 2 mons ago",
			"1 day -00:00:00.000001",
			"178000000 years", "-178000000 years", // past int64 microseconds: docs/records.md#values says null
			"2562047788:00:54.775807", "-2562047788:00:54.775807", // the int64 limits themselves
			"1 mon 2562047788:00:00", // months push it past int64
		}))
	}
	return ptr(fmt.Sprintf("%d mons %d days %d microseconds", r.Intn(2001)-1000, r.Intn(2001)-1000, r.Int63n(2e12)-1e12))
}

func genUUID(r *rand.Rand) *string {
	if r.Intn(10) == 0 {
		return ptr(pick(r, []string{"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"}))
	}
	b := make([]byte, 16)
	r.Read(b)
	h := hex.EncodeToString(b)
	return ptr(h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32])
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// genJSON produces JSON text whose exact form json keeps: odd whitespace,
// duplicate keys, escapes, big numbers, and the JSON null that is not SQL
// NULL.
func genJSON(r *rand.Rand) *string {
	if r.Intn(3) == 0 {
		return ptr(pick(r, []string{`null`, `true`, `"😀 \u00e9"`, `{"a":1,"a":2}`, `  [1, 2.50 ,"x" ]  `,
			`12345678901234567890123.5e-3`, `{"nested":{"deep":[{"x":"\"quoted\"\n"}]}}`, `[]`, `{}`}))
	}
	return ptr(fmt.Sprintf(`{ "k" : %s, "n": %s,"a":[%d, null, %s] }`, jsonString(text(r, 20)),
		pick(r, []string{"1.50", "-0", "1e400", "3"}), r.Intn(100), jsonString(text(r, 8))))
}

func genMood(r *rand.Rand) *string {
	return ptr(pick(r, []string{"sad", "ok", "happy", "très bien 😀", `with "quotes", commas`}))
}

func genPosint(r *rand.Rand) *string { return ptr(strconv.Itoa(1 + r.Intn(math.MaxInt32))) }

func genEmail(r *rand.Rand) *string { return ptr(text(r, 10) + "@" + text(r, 10)) }

func genInet(r *rand.Rand) *string {
	if r.Intn(3) == 0 {
		return ptr(pick(r, []string{"::1", "2001:db8::1/64", "::ffff:1.2.3.4", "10.0.0.0/8", "0.0.0.0/0"}))
	}
	return ptr(fmt.Sprintf("%d.%d.%d.%d/%d", r.Intn(256), r.Intn(256), r.Intn(256), r.Intn(256), 24+r.Intn(9)))
}

func genPoint(r *rand.Rand) *string { return ptr("(" + *genFloat8(r) + "," + *genFloat8(r) + ")") }

// arrayLit writes an array literal, every element quoted.
func arrayLit(elems []*string, delim string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, e := range elems {
		if i > 0 {
			b.WriteString(delim)
		}
		if e == nil {
			b.WriteString("NULL")
			continue
		}
		b.WriteByte('"')
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(*e))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

func genArray(elem func(*rand.Rand) *string, delim string) func(*rand.Rand) *string {
	return func(r *rand.Rand) *string {
		elems := make([]*string, r.Intn(6))
		for i := range elems {
			if r.Intn(6) == 0 {
				continue // a NULL element
			}
			elems[i] = elem(r)
		}
		return ptr(arrayLit(elems, delim))
	}
}

// genIntArrayND is a 2- or 3-dimensional int8 array with NULL elements.
func genIntArrayND(r *rand.Rand) *string {
	var build func(dims []int) string
	build = func(dims []int) string {
		if len(dims) == 1 {
			elems := make([]*string, dims[0])
			for i := range elems {
				if r.Intn(5) != 0 {
					elems[i] = genInt(64)(r)
				}
			}
			return arrayLit(elems, ",")
		}
		parts := make([]string, dims[0])
		for i := range parts {
			parts[i] = build(dims[1:])
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	dims := []int{1 + r.Intn(3), 1 + r.Intn(3)}
	if r.Intn(4) == 0 {
		dims = append(dims, 1+r.Intn(2))
	}
	return ptr(build(dims))
}

func genBox(r *rand.Rand) *string {
	return ptr(fmt.Sprintf("(%d,%d),(%d,%.2f)", r.Intn(100), r.Intn(100), -r.Intn(100), r.Float64()))
}

// column is one generated column of public.typed.
type column struct {
	name, typ string
	gen       func(*rand.Rand) *string
}

var typedColumns = []column{
	{"c_int2", "int2", genInt(16)},
	{"c_int4", "int4", genInt(32)},
	{"c_int8", "int8", genInt(64)},
	{"c_oid", "oid", genOID},
	{"c_real", "real", genFloat4},
	{"c_double", "double precision", genFloat8},
	{"c_numeric", "numeric", genNumeric},
	{"c_numeric_s", "numeric(30,10)", genNumericScaled},
	{"c_bool", "boolean", genBool},
	{"c_text", "text", genText},
	{"c_varchar", "varchar(40)", genVarchar},
	{"c_name", "name", genName},
	{"c_char", `"char"`, genChar},
	{"c_bpchar", "char(8)", genBpchar8},
	{"c_bpchar_u", "bpchar", genBpcharU},
	{"c_bytea", "bytea", genBytea},
	{"c_date", "date", genDate},
	{"c_time", "time", genTime},
	{"c_timetz", "timetz", genTimetz},
	{"c_ts", "timestamp", genTimestamp},
	{"c_tstz", "timestamptz", genTimestamptz},
	{"c_interval", "interval", genInterval},
	{"c_uuid", "uuid", genUUID},
	{"c_json", "json", genJSON},
	{"c_jsonb", "jsonb", genJSON},
	{"c_mood", "mood", genMood},
	{"c_posint", "posint", genPosint},
	{"c_email", "email", genEmail},
	{"c_inet", "inet", genInet},
	{"c_point", "point", genPoint},
	{"c_int_arr", "int4[]", genArray(genInt(32), ",")},
	{"c_int_arr2", "int8[]", genIntArrayND},
	{"c_text_arr", "text[]", genArray(func(r *rand.Rand) *string { return ptr(text(r, 12)) }, ",")},
	{"c_num_arr", "numeric[]", genArray(genNumeric, ",")},
	{"c_float_arr", "float8[]", genArray(genFloat8, ",")},
	{"c_bool_arr", "boolean[]", genArray(genBool, ",")},
	{"c_bytea_arr", "bytea[]", genArray(genBytea, ",")},
	{"c_date_arr", "date[]", genArray(genDate, ",")},
	{"c_tstz_arr", "timestamptz[]", genArray(genTimestamptz, ",")},
	{"c_uuid_arr", "uuid[]", genArray(genUUID, ",")},
	{"c_mood_arr", "mood[]", genArray(genMood, ",")},
	{"c_box_arr", "box[]", genArray(genBox, ";")},
}

func init() {
	for i := range typedColumns {
		typedColumns[i].gen = nullable(typedColumns[i].gen)
	}
}
