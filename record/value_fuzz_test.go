package record

import (
	"encoding/json"
	"testing"
)

// Fuzz targets for the value decoders: whatever bytes capture hands over,
// the encoder must not panic, and whatever it writes must be valid JSON.
//
//	go test ./record -run '^$' -fuzz FuzzTextArray -fuzztime 1m
//	go test ./record -run '^$' -fuzz FuzzValueDecoders -fuzztime 1m

// fuzzOIDs are the types the fuzzers pick from: every builtin class, some
// arrays, and the enum, domain and array types of fuzzTypes.
var fuzzOIDs = []uint32{
	oidBool, oidBytea, oidChar, oidName, oidInt8, oidInt2, oidInt4, oidText, oidOID, oidJSON, oidXML,
	oidFloat4, oidFloat8, oidBpchar, oidVarchar, oidDate, oidTime, oidTimestamp, oidTimestamptz,
	oidInterval, oidTimetz, oidNumeric, oidUUID, oidJSONB, 600, oidBoxArray,
	1000, 1001, 1007, 1009, 1016, 1022, 1182, 1185, 1187, 1231, 2951, 3807,
	70001, 70002, 70003, 70004,
}

// fuzzTypes: 70001 enum, 70002 domain over int4[], 70003 array of 70002,
// 70004 domain over 70003.
var fuzzTypes = goldenTypes{
	70001: {OID: 70001, Kind: TypeEnum},
	70002: {OID: 70002, Kind: TypeDomain, BaseOID: 1007},
	70003: {OID: 70003, Kind: TypeArray, ElemOID: 70002},
	70004: {OID: 70004, Kind: TypeDomain, BaseOID: 70003},
}

func addGoldenSeeds(f *testing.F, add func(oid uint32, kind DatumKind, data []byte)) {
	for _, v := range readGoldenValues(f) {
		add(v.oid, DatumText, v.text)
		add(v.oid, DatumBinary, v.binary)
	}
}

func oidIndex(oid uint32) uint8 {
	for i, o := range fuzzOIDs {
		if o == oid {
			return uint8(i)
		}
	}
	return 0
}

func FuzzValueDecoders(f *testing.F) {
	addGoldenSeeds(f, func(oid uint32, kind DatumKind, data []byte) {
		f.Add(oidIndex(oid), kind == DatumBinary, data)
	})
	f.Add(oidIndex(70004), false, []byte(`{"{1,2}","{3}"}`))
	f.Fuzz(func(t *testing.T, which uint8, binaryFormat bool, data []byte) {
		oid := fuzzOIDs[int(which)%len(fuzzOIDs)]
		kind := DatumText
		if binaryFormat {
			kind = DatumBinary
		}
		v := &valueCodec{types: fuzzTypes}
		out, err := v.appendDatum(nil, oid, kind, data, 0)
		if err == nil && !json.Valid(out) {
			t.Fatalf("type %d %c %q: invalid JSON %s", oid, kind, data, out)
		}
	})
}

func FuzzTextArray(f *testing.F) {
	for _, s := range []string{
		`{1,2,NULL,3}`, `{{1,2},{3,4}}`, `[0:1]={5,6}`, `{}`, `{"a b","",NULL,"NULL","quo\"te","back\\slash"}`,
		`{a\,b,c\ }`, `{ ab   ,c}`, `{{{{{{1}}}}}}`, `{"\\x01"}`, `{"{1,2}","{3}"}`,
	} {
		f.Add(uint8(0), s)
	}
	elems := []uint32{oidInt4, oidText, oidBytea, oidNumeric, oidTimestamptz, oidInterval, 70002}
	f.Fuzz(func(t *testing.T, which uint8, text string) {
		v := &valueCodec{types: fuzzTypes}
		elem := elems[int(which)%len(elems)]
		out, err := v.appendTextArray(nil, elem, ',', []byte(text), 0)
		if err == nil && !json.Valid(out) {
			t.Fatalf("elem %d %q: invalid JSON %s", elem, text, out)
		}
	})
}
