package record

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
)

// Date and time types (docs/records.md#values). The text decoders read the output of
// DateStyle = ISO and IntervalStyle = postgres, which capture must set on
// the replication connection; PostgreSQL's binary formats count from
// 2000-01-01 and are shifted to the Unix epoch here.

const (
	usPerSecond = 1_000_000
	usPerDay    = 86_400 * usPerSecond
	// unixEpochJDate and postgresEpochJDate are the Julian day numbers of
	// 1970-01-01 and 2000-01-01 (PostgreSQL's date2j).
	unixEpochJDate     = 2_440_588
	postgresEpochJDate = 2_451_545
	epochShiftDays     = postgresEpochJDate - unixEpochJDate // 10957
	epochShiftUs       = epochShiftDays * usPerDay

	// TimestampPosInfinity and TimestampNegInfinity encode 'infinity' and
	// '-infinity' timestamps (docs/records.md#values, DSQL's values).
	TimestampPosInfinity int64 = 9223372036825200000
	TimestampNegInfinity int64 = -9223372036832400000

	// DatePosInfinity and DateNegInfinity encode 'infinity' and '-infinity'
	// dates. docs/records.md#values gives none; cdcd uses PostgreSQL's own binary
	// sentinels DATEVAL_NOEND (INT32_MAX) and DATEVAL_NOBEGIN (INT32_MIN)
	// shifted from the 2000-01-01 epoch to 1970-01-01, so they sit beyond
	// every finite date (the last is 5874897-12-31, day 2145042905).
	DatePosInfinity int64 = math.MaxInt32 + epochShiftDays
	DateNegInfinity int64 = math.MinInt32 + epochShiftDays

	// secondsPerMonth is docs/records.md#values's interval month: 30.4375 days.
	secondsPerMonth = 2_629_800
)

// date2j is PostgreSQL's Julian day number of a proleptic Gregorian date;
// year is astronomical (1 BC is year 0).
func date2j(year, month, day int64) int64 {
	if month > 2 {
		month++
		year += 4800
	} else {
		month += 13
		year += 4799
	}
	century := year / 100
	julian := year*365 - 32167
	julian += year/4 - century + century/4
	julian += 7834*month/256 + day
	return julian
}

// textCursor walks a text value left to right.
type textCursor struct {
	s   []byte
	pos int
}

func (c *textCursor) done() bool { return c.pos >= len(c.s) }

func (c *textCursor) peek() byte {
	if c.done() {
		return 0
	}
	return c.s[c.pos]
}

func (c *textCursor) accept(b byte) bool {
	if c.peek() == b && !c.done() {
		c.pos++
		return true
	}
	return false
}

// digits reads between min and max decimal digits.
func (c *textCursor) digits(min, max int) (int64, bool) {
	var v int64
	n := 0
	for n < max && !c.done() && c.s[c.pos] >= '0' && c.s[c.pos] <= '9' {
		v = v*10 + int64(c.s[c.pos]-'0')
		c.pos++
		n++
	}
	return v, n >= min
}

// fraction reads ".ffffff" if present, returning microseconds.
func (c *textCursor) fraction() (int64, bool) {
	if !c.accept('.') {
		return 0, true
	}
	start := c.pos
	v, ok := c.digits(1, 6)
	if !ok {
		return 0, false
	}
	for n := c.pos - start; n < 6; n++ {
		v *= 10
	}
	return v, true
}

// clock reads "HH:MM:SS[.ffffff]" and returns microseconds. maxHourDigits is
// 2 for times of day and more for intervals, whose hours are not folded
// into days.
func (c *textCursor) clock(maxHourDigits int) (int64, bool) {
	h, ok1 := c.digits(1, maxHourDigits)
	ok2 := c.accept(':')
	m, ok3 := c.digits(2, 2)
	ok4 := c.accept(':')
	s, ok5 := c.digits(2, 2)
	f, ok6 := c.fraction()
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || m > 59 || s > 60 {
		return 0, false
	}
	us, ok := mulAdd(h, 3600, m*60+s)
	if !ok {
		return 0, false
	}
	return mulAdd(us, usPerSecond, f)
}

// offset reads a UTC offset "+HH[:MM[:SS]]" (EncodeTimezone) and returns
// seconds east of UTC.
func (c *textCursor) offset() (int64, bool) {
	sign := int64(1)
	switch {
	case c.accept('-'):
		sign = -1
	case c.accept('+'):
	default:
		return 0, false
	}
	h, ok := c.digits(2, 2)
	if !ok {
		return 0, false
	}
	secs := h * 3600
	if c.accept(':') {
		m, ok := c.digits(2, 2)
		if !ok {
			return 0, false
		}
		secs += m * 60
		if c.accept(':') {
			s, ok := c.digits(2, 2)
			if !ok {
				return 0, false
			}
			secs += s
		}
	}
	return sign * secs, true
}

// date reads "YYYY-MM-DD" and returns the Julian day number, before any BC
// suffix is applied to the year.
func (c *textCursor) date() (year, month, day int64, ok bool) {
	year, ok1 := c.digits(4, 7)
	ok2 := c.accept('-')
	month, ok3 := c.digits(2, 2)
	ok4 := c.accept('-')
	day, ok5 := c.digits(2, 2)
	ok = ok1 && ok2 && ok3 && ok4 && ok5 && month >= 1 && month <= 12 && day >= 1 && day <= 31
	return year, month, day, ok
}

// bc consumes a trailing " BC" and reports whether it was there.
func (c *textCursor) bc() bool {
	if len(c.s)-c.pos == 3 && string(c.s[c.pos:]) == " BC" {
		c.pos += 3
		return true
	}
	return false
}

// astronomical turns a year printed with a BC suffix into an astronomical
// year: 1 BC is year 0.
func astronomical(year int64, bc bool) int64 {
	if bc {
		return 1 - year
	}
	return year
}

func appendTextDate(dst, data []byte) ([]byte, error) {
	switch string(data) {
	case "infinity":
		return strconv.AppendInt(dst, DatePosInfinity, 10), nil
	case "-infinity":
		return strconv.AppendInt(dst, DateNegInfinity, 10), nil
	}
	c := textCursor{s: data}
	y, m, d, ok := c.date()
	bc := c.bc()
	if !ok || !c.done() {
		return dst, badValue(ErrMalformedValue, "date text does not parse (DateStyle must be ISO)", data)
	}
	return strconv.AppendInt(dst, date2j(astronomical(y, bc), m, d)-unixEpochJDate, 10), nil
}

func appendBinaryDate(dst, data []byte) ([]byte, error) {
	if len(data) != 4 {
		return dst, errLength("date", len(data), 4)
	}
	v := int32(binary.BigEndian.Uint32(data))
	switch v {
	case math.MaxInt32:
		return strconv.AppendInt(dst, DatePosInfinity, 10), nil
	case math.MinInt32:
		return strconv.AppendInt(dst, DateNegInfinity, 10), nil
	}
	return strconv.AppendInt(dst, int64(v)+epochShiftDays, 10), nil
}

func appendTextTime(dst, data []byte) ([]byte, error) {
	c := textCursor{s: data}
	us, ok := c.clock(2)
	if !ok || !c.done() || us > usPerDay {
		return dst, badValue(ErrMalformedValue, "time text does not parse", data)
	}
	return strconv.AppendInt(dst, us, 10), nil
}

func appendBinaryTime(dst, data []byte) ([]byte, error) {
	if len(data) != 8 {
		return dst, errLength("time", len(data), 8)
	}
	return strconv.AppendInt(dst, int64(binary.BigEndian.Uint64(data)), 10), nil
}

// wrapDay folds microseconds into [0, 86400000000).
func wrapDay(us int64) int64 {
	us %= usPerDay
	if us < 0 {
		us += usPerDay
	}
	return us
}

func appendTextTimetz(dst, data []byte) ([]byte, error) {
	c := textCursor{s: data}
	us, ok1 := c.clock(2)
	east, ok2 := c.offset()
	if !ok1 || !ok2 || !c.done() || us > usPerDay {
		return dst, badValue(ErrMalformedValue, "timetz text does not parse", data)
	}
	return strconv.AppendInt(dst, wrapDay(us-east*usPerSecond), 10), nil
}

// appendBinaryTimetz reads timetz_send: int64 microseconds of local time and
// int32 zone in seconds WEST of UTC (PostgreSQL's sign convention).
func appendBinaryTimetz(dst, data []byte) ([]byte, error) {
	if len(data) != 12 {
		return dst, errLength("timetz", len(data), 12)
	}
	us := int64(binary.BigEndian.Uint64(data))
	west := int64(int32(binary.BigEndian.Uint32(data[8:])))
	if us < 0 || us > usPerDay {
		return dst, badValue(ErrMalformedValue, "timetz time of day outside [0, 24h]", data)
	}
	return strconv.AppendInt(dst, wrapDay(us+west*usPerSecond), 10), nil
}

// appendTextTimestamp reads timestamp and timestamptz output in DateStyle
// ISO: "2024-01-15 12:30:00.123456+05:30", with " BC" after the offset for
// years before 1 AD. A timestamp without time zone has no offset and is
// taken as UTC wall time.
func appendTextTimestamp(dst, data []byte) ([]byte, error) {
	switch string(data) {
	case "infinity":
		return strconv.AppendInt(dst, TimestampPosInfinity, 10), nil
	case "-infinity":
		return strconv.AppendInt(dst, TimestampNegInfinity, 10), nil
	}
	c := textCursor{s: data}
	y, m, d, ok := c.date()
	ok = ok && c.accept(' ')
	clock, okClock := c.clock(2)
	var east int64
	okOffset := true
	if p := c.peek(); p == '+' || p == '-' {
		east, okOffset = c.offset()
	}
	bc := c.bc()
	if !ok || !okClock || !okOffset || !c.done() {
		return dst, badValue(ErrMalformedValue, "timestamp text does not parse (DateStyle must be ISO)", data)
	}
	days := date2j(astronomical(y, bc), m, d) - unixEpochJDate
	us, ok := mulAdd(days, usPerDay, clock)
	if ok {
		us, ok = addChecked(us, -east*usPerSecond)
	}
	return appendTimestampUs(dst, us, ok, data)
}

// appendBinaryTimestamp reads timestamp_send and timestamptz_send: int64
// microseconds since 2000-01-01 UTC, with INT64_MAX/MIN as ±infinity.
func appendBinaryTimestamp(dst, data []byte) ([]byte, error) {
	if len(data) != 8 {
		return dst, errLength("timestamp", len(data), 8)
	}
	v := int64(binary.BigEndian.Uint64(data))
	switch v {
	case math.MaxInt64:
		return strconv.AppendInt(dst, TimestampPosInfinity, 10), nil
	case math.MinInt64:
		return strconv.AppendInt(dst, TimestampNegInfinity, 10), nil
	}
	us, ok := addChecked(v, epochShiftUs)
	return appendTimestampUs(dst, us, ok, data)
}

// appendTimestampUs appends a finite timestamp, refusing the last ~30
// years of PostgreSQL's range (294247–294276 AD): shifted to the Unix epoch
// they overflow int64 or collide with the infinity sentinel.
func appendTimestampUs(dst []byte, us int64, ok bool, data []byte) ([]byte, error) {
	if !ok || us >= TimestampPosInfinity || us <= TimestampNegInfinity {
		return dst, badValue(ErrValueOutOfRange, "timestamp after year 294246 has no int64 microseconds since 1970", data)
	}
	return strconv.AppendInt(dst, us, 10), nil
}

// appendTextInterval reads IntervalStyle postgres output: optional
// "N year(s)", "N mon(s)", "N day(s)" parts, each possibly signed, then an
// optional signed "H:MM:SS[.ffffff]" with unbounded hours, e.g.
// "1 year 2 mons -3 days +04:05:06.789" or "00:00:00". PostgreSQL 17's
// "infinity" and "-infinity" overflow the formula and encode as null.
func appendTextInterval(dst, data []byte) ([]byte, error) {
	switch string(data) {
	case "infinity", "-infinity":
		return append(dst, "null"...), nil
	}
	bad := func() ([]byte, error) {
		return dst, badValue(ErrMalformedValue, "interval text does not parse (IntervalStyle must be postgres)", data)
	}
	var months, days, us int64
	c := textCursor{s: data}
	sawClock := false
	for !c.done() {
		if c.pos > 0 && !c.accept(' ') {
			return bad()
		}
		neg := c.accept('-')
		if !neg {
			c.accept('+')
		}
		start := c.pos
		n, ok := c.digits(1, 19)
		if !ok {
			return bad()
		}
		if c.peek() == ':' {
			// The clock part comes last.
			c.pos = start
			t, ok := c.clock(19)
			if !ok || sawClock || !c.done() {
				return bad()
			}
			sawClock = true
			if neg {
				t = -t
			}
			us = t
			continue
		}
		if neg {
			n = -n
		}
		if !c.accept(' ') {
			return bad()
		}
		unitStart := c.pos
		for !c.done() && c.peek() != ' ' {
			c.pos++
		}
		var ok2 bool
		switch string(c.s[unitStart:c.pos]) {
		case "year", "years":
			months, ok2 = mulAdd(n, 12, months)
		case "mon", "mons":
			months, ok2 = addChecked(months, n)
		case "day", "days":
			days, ok2 = addChecked(days, n)
		}
		if !ok2 {
			return bad()
		}
	}
	if c.pos == 0 {
		return bad()
	}
	return appendIntervalUs(dst, months, days, us), nil
}

// appendBinaryInterval reads interval_send: int64 microseconds, int32 days,
// int32 months.
func appendBinaryInterval(dst, data []byte) ([]byte, error) {
	if len(data) != 16 {
		return dst, errLength("interval", len(data), 16)
	}
	us := int64(binary.BigEndian.Uint64(data))
	days := int64(int32(binary.BigEndian.Uint32(data[8:])))
	months := int64(int32(binary.BigEndian.Uint32(data[12:])))
	return appendIntervalUs(dst, months, days, us), nil
}

// appendIntervalUs applies docs/records.md#values's formula,
// (months×2629800 + days×86400)×10⁶ + µs, and writes null when it overflows
// int64.
func appendIntervalUs(dst []byte, months, days, us int64) []byte {
	secs, ok := mulAdd(months, secondsPerMonth, 0)
	if ok {
		secs, ok = mulAdd(days, 86_400, secs)
	}
	var total int64
	if ok {
		total, ok = mulAdd(secs, usPerSecond, us)
	}
	if !ok {
		return append(dst, "null"...)
	}
	return strconv.AppendInt(dst, total, 10)
}

// addChecked returns a+b and whether it did not overflow.
func addChecked(a, b int64) (int64, bool) {
	s := a + b
	return s, (s > a) == (b > 0)
}

// mulAdd returns a×b+c and whether it stayed within int64.
func mulAdd(a, b, c int64) (int64, bool) {
	hi, lo := bits.Mul64(uint64(abs64(a)), uint64(abs64(b)))
	if hi != 0 || lo > math.MaxInt64 || a == math.MinInt64 || b == math.MinInt64 {
		return 0, false
	}
	p := int64(lo)
	if (a < 0) != (b < 0) {
		p = -p
	}
	return addChecked(p, c)
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
