package record

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// TestValueErrorsLeaveOutTheValue encodes a value each decoder refuses, in
// a key column and in a plain one: the error names the table, the column
// and the type, and the value's length, but holds none of its bytes (it
// reaches the log and the status reason, docs/lifecycle.md#status-reason).
func TestValueErrorsLeaveOutTheValue(t *testing.T) {
	be := func(vs ...uint16) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.BigEndian.AppendUint16(b, v)
		}
		return b
	}
	timetz := binary.BigEndian.AppendUint64(nil, uint64(86_400_000_000+424242))
	tests := []struct {
		name     string
		oid      uint32
		kind     DatumKind
		in       []byte
		typeName string
		secret   string // what must not appear; the whole input when empty
	}{
		{"integer", oidInt4, DatumText, []byte("98765x4321"), "type integer, OID 23", ""},
		{"bigint", oidInt8, DatumText, []byte("987654321987654321987"), "type bigint", ""},
		{"float", oidFloat8, DatumText, []byte("31415.9265.358"), "type double precision", ""},
		{"numeric", oidNumeric, DatumText, []byte("2718281828e5"), "type numeric", ""},
		{"boolean", oidBool, DatumText, []byte("yes-4242"), "type boolean", ""},
		{"bytea hex digit", oidBytea, DatumText, []byte(`\x4142zq`), "type bytea", "zq"},
		{"date not ISO", oidDate, DatumText, []byte("14/03/2031"), "type date", ""},
		{"time", oidTime, DatumText, []byte("13:37:42x"), "type time", ""},
		{"timetz", oidTimetz, DatumText, []byte("13:37:42+99:99x"), "type timetz", ""},
		{"timestamp not ISO", oidTimestamp, DatumText, []byte("Fri Mar 14 15:09:26 2031"), "type timestamp", ""},
		{"timestamptz past int64", oidTimestamptz, DatumText, []byte("294270-03-14 15:09:26+00"), "type timestamptz", ""},
		{"interval sql_standard", oidInterval, DatumText, []byte("+1234-5 +6 +7:08:09.101112"), "type interval", ""},
		{"array element", 1007, DatumText, []byte("{98765,43x21}"), "OID 1007", "43x21"},
		{"array character", 1009, DatumText, []byte(`{ab"cd}`), "OID 1009", `ab"cd`},
		{"binary numeric sign", oidNumeric, DatumBinary, be(0, 0, 0x4d2, 0), "type numeric", "1234"},
		{"binary numeric digit", oidNumeric, DatumBinary, be(1, 0, 0, 0, 54321), "type numeric", "54321"},
		{"binary timetz time of day", oidTimetz, DatumBinary, append(timetz, 0, 0, 0, 0), "type timetz", "424242"},
	}
	for _, tt := range tests {
		for _, key := range []bool{true, false} {
			name := tt.name + " plain"
			if key {
				name = tt.name + " key"
			}
			t.Run(name, func(t *testing.T) {
				rel := &Relation{ID: 7, Schema: "shop", Table: "orders", HasKey: true,
					Columns: []Column{{Name: "id", TypeOID: oidInt4, Key: true}, {Name: "secret_col", TypeOID: tt.oid, Key: key}}}
				id := Datum{Kind: DatumText, Data: []byte("1")}
				if tt.kind == DatumBinary {
					id = Datum{Kind: DatumBinary, Data: []byte{0, 0, 0, 1}}
				}
				_, err := newTestEncoder(t, nil).Encode(testTxn(insertOf(rel, Tuple{id, {Kind: tt.kind, Data: tt.in}})), 0, testNow)
				var ve *ValueError
				if !errors.As(err, &ve) {
					t.Fatalf("error %v, want a *ValueError", err)
				}
				msg := err.Error()
				secret := tt.secret
				if secret == "" {
					secret = string(tt.in)
				}
				if strings.Contains(msg, secret) {
					t.Errorf("the error quotes the value %q: %s", secret, msg)
				}
				for _, want := range []string{`"shop"."orders"`, `column "secret_col"`, tt.typeName} {
					if !strings.Contains(msg, want) {
						t.Errorf("the error does not name %s: %s", want, msg)
					}
				}
			})
		}
	}
}

// TestBadValueNamesTheLength: a decoder's error gives the value's length,
// which helps tell a truncated value from a misformatted one.
func TestBadValueNamesTheLength(t *testing.T) {
	_, err := appendTextTimestamp(nil, []byte("294270-03-14 15:09:26"))
	if !errors.Is(err, ErrValueOutOfRange) || !strings.Contains(err.Error(), "a value of 21 bytes") {
		t.Errorf("got %v, want ErrValueOutOfRange naming 21 bytes", err)
	}
}
