package pgapply

import (
	"strings"
	"testing"
)

func TestSQLText(t *testing.T) {
	text := &pgType{kind: kindText}
	arr := func(elem *pgType) *pgType { return &pgType{kind: kindArray, elem: elem, delim: ','} }
	tests := []struct {
		name   string
		typ    *pgType
		in     string
		want   string
		isNull bool
	}{
		{"null", text, `null`, "", true},
		{"int8 max stays exact", text, `9223372036854775807`, "9223372036854775807", false},
		{"float exponent", text, `1e+300`, "1e+300", false},
		{"numeric string", text, `"12345678901234567890.123456789"`, "12345678901234567890.123456789", false},
		{"float NaN string", text, `"NaN"`, "NaN", false},
		{"boolean", text, `true`, "true", false},
		{"text with escapes", text, `"a\"b\\c\n☃"`, "a\"b\\c\n☃", false},
		{"json text string", text, `"{\"a\": [1, 2]}"`, `{"a": [1, 2]}`, false},
		{"bare object passes as JSON", text, `{"a": 1}`, `{"a":1}`, false},
		{"bytea", &pgType{kind: kindBytea}, `"AP8Q"`, `\x00ff10`, false},
		{"bytea empty", &pgType{kind: kindBytea}, `""`, `\x`, false},
		{"date", &pgType{kind: kindDate}, `19737`, "2024-01-15", false},
		{"date epoch", &pgType{kind: kindDate}, `0`, "1970-01-01", false},
		{"date before epoch", &pgType{kind: kindDate}, `-1`, "1969-12-31", false},
		{"date bc", &pgType{kind: kindDate}, `-735160`, "0044-03-15 BC", false},
		{"date min", &pgType{kind: kindDate}, `-2440588`, "4714-11-24 BC", false},
		{"date max", &pgType{kind: kindDate}, `2145042905`, "5874897-12-31", false},
		{"date infinity", &pgType{kind: kindDate}, `2147494604`, "infinity", false},
		{"date -infinity", &pgType{kind: kindDate}, `-2147472691`, "-infinity", false},
		{"time", &pgType{kind: kindTime}, `45045123456`, "12:30:45.123456", false},
		{"time 24h", &pgType{kind: kindTime}, `86400000000`, "24:00:00.000000", false},
		{"timetz is UTC", &pgType{kind: kindTimetz}, `25200000000`, "07:00:00.000000+00", false},
		{"timestamp", &pgType{kind: kindTimestamp}, `1705321800123456`, "2024-01-15 12:30:00.123456", false},
		{"timestamp before epoch", &pgType{kind: kindTimestamp}, `-1`, "1969-12-31 23:59:59.999999", false},
		{"timestamp bc", &pgType{kind: kindTimestamp}, `-63517780800000000`, "0044-03-15 12:00:00.000000 BC", false},
		{"timestamp y10000", &pgType{kind: kindTimestamp}, `253402300800000000`, "10000-01-01 00:00:00.000000", false},
		{"timestamp infinity", &pgType{kind: kindTimestamp}, `9223372036825200000`, "infinity", false},
		{"timestamptz -infinity", &pgType{kind: kindTimestamptz}, `-9223372036832400000`, "-infinity", false},
		{"timestamptz", &pgType{kind: kindTimestamptz}, `1720083600500000`, "2024-07-04 09:00:00.500000+00", false},
		{"timestamptz bc", &pgType{kind: kindTimestamptz}, `-63517780800000000`, "0044-03-15 12:00:00.000000+00 BC", false},
		{"interval", &pgType{kind: kindInterval}, `90061000001`, "1 days 01:01:01.000001", false},
		{"interval negative", &pgType{kind: kindInterval}, `-79020000000`, "-21:57:00.000000", false},
		{"interval max", &pgType{kind: kindInterval}, `9223372036854775807`, "106751991 days 04:00:54.775807", false},
		{"interval min", &pgType{kind: kindInterval}, `-9223372036854775808`, "-106751991 days -04:00:54.775808", false},
		{"int array", arr(text), `[1,null,3]`, `{"1",NULL,"3"}`, false},
		{"empty array", arr(text), `[]`, `{}`, false},
		{"2d array", arr(text), `[[1,2],[3,4]]`, `{{"1","2"},{"3","4"}}`, false},
		{"text array quoting", arr(text), `["a b","","NULL","quo\"te","back\\slash","x,y","{br}"]`,
			`{"a b","","NULL","quo\"te","back\\slash","x,y","{br}"}`, false},
		{"bytea array", arr(&pgType{kind: kindBytea}), `["Af8=",null,""]`, `{"\\x01ff",NULL,"\\x"}`, false},
		{"date array", arr(&pgType{kind: kindDate}), `[19737,2147494604]`, `{"2024-01-15","infinity"}`, false},
		{"box array delimiter", &pgType{kind: kindArray, elem: text, delim: ';'}, `["(1,1),(0,0)","(2,2),(1,1)"]`, `{"(1,1),(0,0)";"(2,2),(1,1)"}`, false},
		{"array as text output", arr(text), `"{1,2}"`, `{1,2}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := sqlText(tt.typ, []byte(tt.in))
			if err != nil {
				t.Fatalf("sqlText(%s): %v", tt.in, err)
			}
			if ok == tt.isNull || got != tt.want {
				t.Errorf("sqlText(%s) = %q, %v; want %q, null %v", tt.in, got, ok, tt.want, tt.isNull)
			}
		})
	}
}

// TestSQLTextErrors: each error says what was wrong, never the value
// (98765 in each input), since it reaches cdcd tail's log.
func TestSQLTextErrors(t *testing.T) {
	tests := []struct {
		name string
		typ  *pgType
		in   string
		want string
	}{
		{"bytea not base64", &pgType{kind: kindBytea}, `"!!98765"`, "bytea"},
		{"bytea number", &pgType{kind: kindBytea}, `98765`, "base64 string, got a number of 5 bytes"},
		{"date fraction", &pgType{kind: kindDate}, `1.98765`, "want an integer"},
		{"time out of range", &pgType{kind: kindTime}, `86400098765`, "outside"},
		{"array not array", &pgType{kind: kindArray, elem: &pgType{}}, `98765`, "want a JSON array"},
		{"array too deep", &pgType{kind: kindArray, elem: &pgType{}}, `[[[[[[[[98765]]]]]]]]`, "deeper"},
		{"array bad element", &pgType{kind: kindArray, elem: &pgType{kind: kindDate}}, `[true, "98765"]`, "element 0"},
		{"text not JSON", &pgType{kind: kindText}, `x98765`, "not a string, number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := sqlText(tt.typ, []byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "98765") {
				t.Errorf("the error quotes the value: %v", err)
			}
		})
	}
}
