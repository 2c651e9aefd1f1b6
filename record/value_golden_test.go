package record

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Golden files pin the value table (docs/records.md#values) and the envelope. Regenerate
// them with
//
//	go test ./record -run Golden -update
//
// and review the diff. The "update" flag is registered only if no other test
// file of the package registered it first, so the consumer's tests may share
// it.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files under testdata/")
	}
}

func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// checkGolden compares got with testdata/name, or rewrites it under -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if updateGolden() {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs at line %d (run with -update if intended):\n got: %s\nwant: %s", path, i+1, g, w)
			}
		}
	}
}

// goldenValue is one line of testdata/values_input.tsv, captured from a
// real PostgreSQL by values_gen.sh.
type goldenValue struct {
	name     string
	oid      uint32
	typtype  byte
	baseOID  uint32
	elemOID  uint32
	category byte
	text     []byte
	binary   []byte
}

func readGoldenValues(t testing.TB) []goldenValue {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "values_input.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []goldenValue
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 8 {
			t.Fatalf("values_input.tsv: %d fields in %q", len(fields), sc.Text())
		}
		num := func(s string) uint32 {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				t.Fatalf("values_input.tsv: %q: %v", s, err)
			}
			return uint32(n)
		}
		var text string
		if err := json.Unmarshal([]byte(fields[6]), &text); err != nil {
			t.Fatalf("values_input.tsv: %s text: %v", fields[0], err)
		}
		bin, err := hex.DecodeString(fields[7])
		if err != nil {
			t.Fatalf("values_input.tsv: %s binary: %v", fields[0], err)
		}
		out = append(out, goldenValue{
			name: fields[0], oid: num(fields[1]), typtype: fields[2][0], baseOID: num(fields[3]),
			elemOID: num(fields[4]), category: fields[5][0], text: []byte(text), binary: bin,
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// goldenTypes answers for the enum, domain and array types the generator
// created, the way capture answers from pg_type.
type goldenTypes map[uint32]TypeInfo

func (g goldenTypes) LookupType(oid uint32) (TypeInfo, bool) {
	ti, ok := g[oid]
	return ti, ok
}

func typesOf(values []goldenValue) goldenTypes {
	types := goldenTypes{}
	for _, v := range values {
		// Capture resolves from pg_type every type the builtin table does
		// not know, builtin or not.
		if _, ok := builtinClass(v.oid); ok {
			continue
		}
		if _, ok := builtinArrayElem(v.oid); ok {
			continue
		}
		switch {
		case v.typtype == 'e':
			types[v.oid] = TypeInfo{OID: v.oid, Kind: TypeEnum}
		case v.typtype == 'd':
			types[v.oid] = TypeInfo{OID: v.oid, Kind: TypeDomain, BaseOID: v.baseOID}
		case v.category == 'A' && v.elemOID != 0:
			types[v.oid] = TypeInfo{OID: v.oid, Kind: TypeArray, ElemOID: v.elemOID}
		default:
			types[v.oid] = TypeInfo{OID: v.oid, Kind: TypeBase}
		}
	}
	return types
}

// binaryOnlyText lists the cases whose type has no binary decoder: only
// their text format can be encoded (docs/records.md#values "anything else").
var binaryOnlyText = map[string]bool{
	"other_point": true, "other_inet": true, "other_int4range": true,
	"other_composite": true, "other_box_array": true, "other_point_array": true,
}

func encodeGoldenValue(v *valueCodec, oid uint32, kind DatumKind, data []byte) string {
	out, err := v.appendDatum(nil, oid, kind, data, 0)
	if err != nil {
		return "error: " + err.Error()
	}
	if !json.Valid(out) {
		return "INVALID JSON: " + string(out)
	}
	return string(out)
}

// TestGoldenValues encodes every captured value from both formats, requires
// the two to agree (except where the binary format is unsupported), and
// pins the result in testdata/values.golden.
func TestGoldenValues(t *testing.T) {
	values := readGoldenValues(t)
	v := &valueCodec{types: typesOf(values)}
	var buf bytes.Buffer
	buf.WriteString("# name\ttype oid\tJSON from the text format (and from the binary format where it differs)\n")
	for _, c := range values {
		text := encodeGoldenValue(v, c.oid, DatumText, c.text)
		bin := encodeGoldenValue(v, c.oid, DatumBinary, c.binary)
		fmt.Fprintf(&buf, "%s\t%d\t%s\n", c.name, c.oid, text)
		if strings.HasPrefix(text, "error") || strings.HasPrefix(text, "INVALID") {
			t.Errorf("%s: text format: %s", c.name, text)
		}
		if binaryOnlyText[c.name] {
			if !strings.Contains(bin, ErrBinaryUnsupported.Error()) {
				t.Errorf("%s: binary format: got %s, want ErrBinaryUnsupported", c.name, bin)
			}
		} else if bin != text {
			t.Errorf("%s: binary format gives %s, text format %s", c.name, bin, text)
		}
		if bin != text {
			fmt.Fprintf(&buf, "%s\t%d\tbinary: %s\n", c.name, c.oid, bin)
		}
	}
	checkGolden(t, "values.golden", buf.Bytes())
}

// TestGoldenValuesWithoutTypes pins what happens to the types outside the
// builtin table when capture has no type lookup: the text format encodes as
// text output (which is an enum's label), and the binary format fails with
// ErrBinaryUnsupported.
func TestGoldenValuesWithoutTypes(t *testing.T) {
	values := readGoldenValues(t)
	v := &valueCodec{}
	var buf bytes.Buffer
	for _, c := range values {
		if _, ok := typesOf(values)[c.oid]; !ok {
			continue
		}
		fmt.Fprintf(&buf, "%s\ttext: %s\n", c.name, encodeGoldenValue(v, c.oid, DatumText, c.text))
		fmt.Fprintf(&buf, "%s\tbinary: %s\n", c.name, encodeGoldenValue(v, c.oid, DatumBinary, c.binary))
	}
	checkGolden(t, "values_without_types.golden", buf.Bytes())
}
