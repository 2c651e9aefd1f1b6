package record

import (
	"bytes"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestNewEncoderValidates(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string // substring; "" for success
		wantMax int
	}{
		{name: "defaults", mod: func(*Config) {}, wantMax: DefaultMaxRecordBytes},
		{name: "explicit limit", mod: func(c *Config) { c.MaxRecordBytes = 10 << 20 }, wantMax: 10 << 20},
		{name: "unordered", mod: func(c *Config) { c.Ordering = Unordered }, wantMax: DefaultMaxRecordBytes},
		{name: "no system id", mod: func(c *Config) { c.SystemID = 0 }, wantErr: "SystemID"},
		{name: "short cluster", mod: func(c *Config) { c.Cluster = "abc" }, wantErr: "Cluster"},
		{name: "uppercase cluster", mod: func(c *Config) { c.Cluster = strings.ToUpper(testCluster) }, wantErr: "Cluster"},
		{name: "no database", mod: func(c *Config) { c.Database = "" }, wantErr: "Database"},
		{name: "unknown ordering", mod: func(c *Config) { c.Ordering = "ordered" }, wantErr: "Ordering"},
		{name: "empty ordering", mod: func(c *Config) { c.Ordering = "" }, wantErr: "Ordering"},
		{name: "tiny limit", mod: func(c *Config) { c.MaxRecordBytes = 100 }, wantErr: "MaxRecordBytes"},
		{name: "negative limit", mod: func(c *Config) { c.MaxRecordBytes = -1 }, wantErr: "MaxRecordBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{SystemID: testSystemID, Cluster: testCluster, Database: "shop", Ordering: Row}
			tt.mod(&cfg)
			e, err := NewEncoder(cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if e.MaxRecordBytes() != tt.wantMax {
					t.Errorf("MaxRecordBytes() = %d, want %d", e.MaxRecordBytes(), tt.wantMax)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want ErrInvalidConfig naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestTxID(t *testing.T) {
	std := base32.StdEncoding.WithPadding(base32.NoPadding)
	valid := regexp.MustCompile(`^[a-z2-7]{26}$`)
	tests := []struct {
		name     string
		sys, lsn uint64
	}{
		{"zero", 0, 0},
		{"typical", 7318862524375434271, 0x16B374D848},
		{"max", ^uint64(0), ^uint64(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TxID(tt.sys, tt.lsn)
			raw := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, tt.sys), tt.lsn)
			if want := strings.ToLower(std.EncodeToString(raw)); got != want {
				t.Errorf("TxID = %s, want %s", got, want)
			}
			if !valid.MatchString(got) {
				t.Errorf("TxID %q is not 26 characters of lowercase base32", got)
			}
		})
	}
	if TxID(1, 2) == TxID(1, 3) || TxID(1, 2) == TxID(2, 2) {
		t.Error("TxID does not depend on both inputs")
	}
}

func TestSourceTsNs(t *testing.T) {
	commit := time.Date(2024, 1, 15, 11, 30, 0, 123456000, time.UTC)
	base := commit.UnixMicro() * 1000
	tests := []struct {
		name   string
		commit time.Time
		prev   int64
		want   int64
	}{
		{"first transaction", commit, 0, base},
		{"later commit", commit, base - 5000, base},
		{"nanoseconds below a microsecond are dropped", commit.Add(999), 0, base},
		{"equal commit time is raised", commit, base, base + 1},
		{"raised twice in a row", commit, base + 1, base + 2},
		{"backwards commit time is raised", commit.Add(-time.Second), base, base + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SourceTsNs(tt.commit, tt.prev); got != tt.want {
				t.Errorf("SourceTsNs = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestEncodeTimestamps checks that source.ts_ns follows SourceTsNs, that
// source.ts_ms is always ts_ns/10⁶ (also when ts_ns was raised), and that
// the processing time comes from now.
func TestEncodeTimestamps(t *testing.T) {
	e := newTestEncoder(t, nil)
	txn := testTxn(insertOf(itemsRel(), tup("1", "a", "1")))
	first, err := e.Encode(txn, 0, testNow)
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.Encode(txn, first.TsNs, testNow.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if second.TsNs != first.TsNs+1 {
		t.Errorf("replayed commit time: TsNs %d, want %d", second.TsNs, first.TsNs+1)
	}
	for _, enc := range []Encoded{first, second} {
		w := parseRecords(t, enc.Records)[0]
		if w.Source.TsNs != enc.TsNs || w.Source.TsMs != enc.TsNs/1_000_000 {
			t.Errorf("source ts_ms %d ts_ns %d, want %d and %d", w.Source.TsMs, w.Source.TsNs, enc.TsNs/1_000_000, enc.TsNs)
		}
	}
	w := parseRecords(t, second.Records)[0]
	now := testNow.Add(time.Second)
	if w.TsNs != now.UnixNano() || w.TsMs != now.UnixMilli() {
		t.Errorf("ts_ms %d ts_ns %d, want %d and %d", w.TsMs, w.TsNs, now.UnixMilli(), now.UnixNano())
	}
}

func TestAppendLSN(t *testing.T) {
	tests := []struct {
		lsn  uint64
		want string
	}{
		{0, "0/0"},
		{0x16B374D848, "16/B374D848"},
		{0x1000000A, "0/1000000A"},
		{^uint64(0), "FFFFFFFF/FFFFFFFF"},
	}
	for _, tt := range tests {
		if got := string(appendLSN(nil, tt.lsn)); got != tt.want {
			t.Errorf("appendLSN(%#x) = %s, want %s", tt.lsn, got, tt.want)
		}
	}
}

// TestEncodeIsPure checks that record is pure: two encoders given the same transaction
// produce identical records except for the processing-time fields.
func TestEncodeIsPure(t *testing.T) {
	for _, ordering := range []Ordering{Row, Unordered} {
		t.Run(string(ordering), func(t *testing.T) {
			mod := func(c *Config) { c.Ordering = ordering; c.MaxRecordBytes = MinMaxRecordBytes }
			txn := testTxn(insertOf(itemsRel(), tup("1", strings.Repeat("é", 2000), "1")), insertOf(itemsRel(), tup("2", "b", "2")))
			a, err := newTestEncoder(t, mod).Encode(txn, 0, testNow)
			if err != nil {
				t.Fatal(err)
			}
			b, err := newTestEncoder(t, mod).Encode(txn, 0, testNow.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Records) != len(b.Records) || len(a.Records) < 3 {
				t.Fatalf("%d and %d records", len(a.Records), len(b.Records))
			}
			stamp := regexp.MustCompile(`,"ts_ms":\d+,"ts_ns":\d+}$`)
			for i := range a.Records {
				if a.Records[i].PartitionKey != b.Records[i].PartitionKey {
					t.Errorf("record %d: partition keys %s and %s", i, a.Records[i].PartitionKey, b.Records[i].PartitionKey)
				}
				x, y := stamp.ReplaceAll(a.Records[i].Data, nil), stamp.ReplaceAll(b.Records[i].Data, nil)
				if !bytes.Equal(x, y) {
					t.Errorf("record %d differs beyond processing time:\n%s\n%s", i, a.Records[i].Data, b.Records[i].Data)
				}
			}
		})
	}
}

// TestEncodeDataDoesNotAlias checks that returned records survive later
// Encode calls on the same Encoder.
func TestEncodeDataDoesNotAlias(t *testing.T) {
	e := newTestEncoder(t, nil)
	first := mustEncode(t, e, testTxn(insertOf(itemsRel(), tup("1", "a", "1"))))
	keep := string(first.Records[0].Data)
	mustEncode(t, e, testTxn(insertOf(itemsRel(), tup("2", "zzzzzzzzzzzzzzzzz", "2"))))
	if string(first.Records[0].Data) != keep {
		t.Error("a later Encode overwrote an earlier record's Data")
	}
}

// TestEncodeDataCapped: records of one transaction share a block of
// memory, each capped at its length, so that appending to one record's
// Data (as a caller may) cannot overwrite the next.
func TestEncodeDataCapped(t *testing.T) {
	e := newTestEncoder(t, nil)
	enc := mustEncode(t, e, testTxn(insertOf(itemsRel(), tup("1", "a", "1")), insertOf(itemsRel(), tup("2", "b", "2"))))
	second := string(enc.Records[1].Data)
	for _, r := range enc.Records {
		if cap(r.Data) != len(r.Data) {
			t.Fatalf("record Data of length %d has capacity %d", len(r.Data), cap(r.Data))
		}
	}
	_ = append(enc.Records[0].Data, "overwrite"...)
	if string(enc.Records[1].Data) != second {
		t.Error("appending to a record's Data overwrote the next record")
	}
}

func TestPartitionKeys(t *testing.T) {
	items, log := itemsRel(), logRel()
	txn := testTxn(
		insertOf(items, tup("1", "a", nil)), insertOf(items, tup("2", "b", nil)),
		insertOf(log, tup("x", "1")), insertOf(log, tup("y", "2")),
	)
	valid := regexp.MustCompile(`^[0-9a-f]{32}$`)

	row := mustEncode(t, newTestEncoder(t, nil), txn).Records
	again := mustEncode(t, newTestEncoder(t, nil), txMoved(txn)).Records
	for i, r := range row {
		if !valid.MatchString(r.PartitionKey) {
			t.Errorf("ROW record %d: partition key %q", i, r.PartitionKey)
		}
		if r.PartitionKey != again[i].PartitionKey {
			t.Errorf("ROW record %d: key depends on the transaction", i)
		}
	}
	if row[0].PartitionKey == row[1].PartitionKey {
		t.Error("ROW: two rows of a keyed table share a key")
	}
	if row[2].PartitionKey != row[3].PartitionKey {
		t.Error("ROW: rows of a table without a key do not share the table's key")
	}

	spread := mustEncode(t, newTestEncoder(t, func(c *Config) { c.Ordering = Unordered }), txn).Records
	moved := mustEncode(t, newTestEncoder(t, func(c *Config) { c.Ordering = Unordered }), txMoved(txn)).Records
	seen := map[string]bool{}
	for i, r := range spread {
		if !valid.MatchString(r.PartitionKey) || seen[r.PartitionKey] {
			t.Errorf("UNORDERED record %d: partition key %q invalid or repeated", i, r.PartitionKey)
		}
		seen[r.PartitionKey] = true
		if r.PartitionKey == moved[i].PartitionKey {
			t.Errorf("UNORDERED record %d: key does not depend on the transaction", i)
		}
	}
}

// txMoved is txn committed at another LSN.
func txMoved(txn *Txn) *Txn {
	c := *txn
	c.CommitLSN += 0x1000
	return &c
}

// TestUnorderedSpread checks that UNORDERED keys spread evenly: over 64
// buckets by the key's first byte, no bucket is far from the mean.
func TestUnorderedSpread(t *testing.T) {
	e := newTestEncoder(t, func(c *Config) { c.Ordering = Unordered })
	const perTxn, txns = 100, 100
	buckets := make([]int, 64)
	for n := range txns {
		changes := make([]Change, perTxn)
		for i := range changes {
			changes[i] = insertOf(itemsRel(), tup(fmt.Sprint(i), "x", nil))
		}
		for _, r := range mustEncode(t, e, txnAt(uint64(n)<<20, changes...)).Records {
			var b byte
			fmt.Sscanf(r.PartitionKey[:2], "%x", &b)
			buckets[b%64]++
		}
	}
	mean := perTxn * txns / 64
	for i, n := range buckets {
		if n < mean*7/10 || n > mean*13/10 {
			t.Errorf("bucket %d holds %d keys, mean %d", i, n, mean)
		}
	}
}

func TestTruncateRecord(t *testing.T) {
	e := newTestEncoder(t, func(c *Config) { c.EmitTruncate = true })
	enc := mustEncode(t, e, testTxn(truncateOf(itemsRel())))
	if len(enc.Records) != 1 || enc.SkippedTruncates != nil {
		t.Fatalf("%d records, skipped %v", len(enc.Records), enc.SkippedTruncates)
	}
	want := `{"type":"full","op":"t","before":null,"after":null,"source":{"version":"1.0",`
	if !bytes.HasPrefix(enc.Records[0].Data, []byte(want)) {
		t.Errorf("truncate record %s", enc.Records[0].Data)
	}

	rel := itemsRel()
	skip := mustEncode(t, newTestEncoder(t, nil), testTxn(truncateOf(rel)))
	if len(skip.Records) != 0 || len(skip.SkippedTruncates) != 1 || skip.SkippedTruncates[0] != rel {
		t.Errorf("without EmitTruncate: %d records, skipped %v", len(skip.Records), skip.SkippedTruncates)
	}
}

func TestEncodeMalformedTxn(t *testing.T) {
	e := newTestEncoder(t, nil)
	if _, err := e.Encode(nil, 0, testNow); !errors.Is(err, ErrMalformedChange) {
		t.Errorf("Encode(nil) error %v", err)
	}
	if _, err := e.Encode(&Txn{CommitLSN: 1}, 0, testNow); !errors.Is(err, ErrMalformedChange) {
		t.Errorf("Encode without a commit time: error %v", err)
	}
}

// TestGoldenEnvelope pins whole records: the envelope's field order, the
// source block, the images, partition keys and a chunked record.
func TestGoldenEnvelope(t *testing.T) {
	items, log := itemsRel(), logRel()
	items.Schema, items.Table = "app", `odd "name"`
	binItems := itemsRel()
	binItems.Table = "items_binary"
	be32 := func(v uint32) Datum { return Datum{Kind: DatumBinary, Data: binary.BigEndian.AppendUint32(nil, v)} }
	txn := testTxn(
		insertOf(items, tup("1", "héllo\n\"world\"", "3")),
		updateOf(items, nil, tup("2", nil, "4")),
		deleteOf(items, tup("3", nil, nil)),
		truncateOf(log),
		insertOf(log, tup("x", "1")),
		deleteOf(log, tup("x", "1")),
		insertOf(binItems, tup(be32(7), Datum{Kind: DatumBinary, Data: []byte("bin")}, be32(0xFFFFFFFF))),
	)
	big := testTxn(insertOf(itemsRel(), tup("9", strings.Repeat("0123456789\"☃", 120), "1")))
	var out bytes.Buffer
	for _, c := range []struct {
		name string
		mod  func(*Config)
		txn  *Txn
	}{
		{"ROW", func(c *Config) { c.EmitTruncate = true }, txn},
		{"UNORDERED", func(c *Config) { c.Ordering = Unordered; c.EmitTruncate = true }, txn},
		{"ROW chunked", func(c *Config) { c.MaxRecordBytes = MinMaxRecordBytes }, big},
		{"UNORDERED chunked", func(c *Config) { c.MaxRecordBytes = MinMaxRecordBytes; c.Ordering = Unordered }, big},
	} {
		enc := mustEncode(t, newTestEncoder(t, c.mod), c.txn)
		parseRecords(t, enc.Records)
		fmt.Fprintf(&out, "# %s: source.ts_ns %d\n", c.name, enc.TsNs)
		for _, r := range enc.Records {
			fmt.Fprintf(&out, "%s %s\n", r.PartitionKey, r.Data)
		}
	}
	checkGolden(t, "envelope.golden", out.Bytes())
}

func TestCheckBinary(t *testing.T) {
	types := goldenTypes{
		80001: {OID: 80001, Kind: TypeEnum},
		80002: {OID: 80002, Kind: TypeArray, ElemOID: 600}, // point[]
		80003: {OID: 80003, Kind: TypeDomain, BaseOID: 1007},
	}
	e := newTestEncoder(t, func(c *Config) { c.Types = types })
	tests := []struct {
		name string
		oids []uint32
		bad  string
	}{
		{"builtins", []uint32{oidInt4, oidText, 1007, oidJSONB, oidNumeric}, ""},
		{"enum and domain over an array", []uint32{80001, 80003}, ""},
		{"point", []uint32{oidInt4, 600}, "c1"},
		{"array of points", []uint32{80002}, "c0"},
		{"unknown type", []uint32{99999}, "c0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rel := &Relation{Schema: "public", Table: "t"}
			for i, oid := range tt.oids {
				rel.Columns = append(rel.Columns, Column{Name: fmt.Sprintf("c%d", i), TypeOID: oid})
			}
			err := e.CheckBinary(rel)
			var ve *ValueError
			switch {
			case tt.bad == "" && err != nil:
				t.Errorf("CheckBinary: %v", err)
			case tt.bad != "" && (!errors.As(err, &ve) || ve.Column != tt.bad || !errors.Is(err, ErrBinaryUnsupported)):
				t.Errorf("CheckBinary: %v, want ErrBinaryUnsupported for %s", err, tt.bad)
			}
		})
	}
}

// TestEncoderReleasesScratch checks that one huge transaction does not pin
// its memory in the Encoder afterwards.
func TestEncoderReleasesScratch(t *testing.T) {
	e := newTestEncoder(t, nil)
	changes := make([]Change, maxRetainedRows+1)
	for i := range changes {
		changes[i] = insertOf(itemsRel(), tup(fmt.Sprint(i), "x", nil))
	}
	changes[0] = insertOf(itemsRel(), tup("-1", strings.Repeat("x", maxRetainedScratch+1), nil))
	mustEncode(t, e, testTxn(changes...))
	if e.compact.entries != nil || e.compact.index != nil || cap(e.after) > maxRetainedScratch || cap(e.rec) > maxRetainedScratch {
		t.Error("scratch retained after a huge transaction")
	}
	if enc := mustEncode(t, e, testTxn(insertOf(itemsRel(), tup("1", "a", nil)))); len(enc.Records) != 1 {
		t.Errorf("%d records after release", len(enc.Records))
	}
}

// TestRelationNames: each record names its own relation's columns, schema
// and table, across more relations than the Encoder caches the names of.
func TestRelationNames(t *testing.T) {
	e := newTestEncoder(t, nil)
	for round := range 2 {
		for i := range maxCachedRelations + 10 {
			rel := &Relation{ID: uint32(i), Schema: fmt.Sprintf("s%d", i), Table: fmt.Sprintf("t\"%d", i), ReplicaIdentity: 'd', HasKey: true,
				Columns: []Column{{Name: fmt.Sprintf("id%d", i), TypeOID: oidInt4, Key: true}}}
			enc := mustEncode(t, e, testTxn(insertOf(rel, tup(fmt.Sprint(round)))))
			var rec struct {
				After  map[string]int
				Source struct{ Schema, Table string }
			}
			if err := json.Unmarshal(enc.Records[0].Data, &rec); err != nil {
				t.Fatal(err)
			}
			if rec.After[rel.Columns[0].Name] != round || len(rec.After) != 1 || rec.Source.Schema != rel.Schema || rec.Source.Table != rel.Table {
				t.Fatalf("relation %d: record %s", i, enc.Records[0].Data)
			}
		}
	}
}
