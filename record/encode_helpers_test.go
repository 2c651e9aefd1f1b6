package record

import (
	"encoding/json"
	"testing"
	"time"
)

// Helpers shared by the producer's tests.

const (
	testSystemID = 0x0123456789ABCDEF
	testCluster  = "kmabugltfmjdaj2siqr2qbxgju"
)

// testNow is the processing time of every test Encode.
var testNow = time.Date(2024, 1, 15, 12, 30, 0, 125483291, time.UTC)

func newTestEncoder(t testing.TB, mod func(*Config)) *Encoder {
	t.Helper()
	cfg := Config{SystemID: testSystemID, Cluster: testCluster, Database: "shop", Ordering: Row}
	if mod != nil {
		mod(&cfg)
	}
	e, err := NewEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// itemsRel is public.items(id int4 key, body text, qty int4).
func itemsRel() *Relation {
	return &Relation{ID: 16500, Schema: "public", Table: "items", ReplicaIdentity: 'd', HasKey: true,
		Columns: []Column{{Name: "id", TypeOID: oidInt4, Key: true}, {Name: "body", TypeOID: oidText}, {Name: "qty", TypeOID: oidInt4}}}
}

// logRel is public.log(msg text, n int4) without a key, REPLICA IDENTITY
// FULL (so all its columns are marked as identity by pgoutput, but HasKey
// is false).
func logRel() *Relation { return keylessRel('f') }

// keylessRel is a table without a key with replica identity ident.
func keylessRel(ident byte) *Relation {
	return &Relation{ID: 16600, Schema: "public", Table: "log", ReplicaIdentity: ident,
		Columns: []Column{{Name: "msg", TypeOID: oidText, Key: true}, {Name: "n", TypeOID: oidInt4, Key: true}}}
}

// tup builds a text-format tuple; nil is NULL and "\x00u" is an unchanged
// TOASTed value.
func tup(vals ...any) Tuple {
	t := make(Tuple, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
			t[i] = Datum{Kind: DatumNull}
		case string:
			if v == toast {
				t[i] = Datum{Kind: DatumUnchanged}
			} else {
				t[i] = Datum{Kind: DatumText, Data: []byte(v)}
			}
		case Datum:
			t[i] = v
		default:
			panic("tup: unsupported value")
		}
	}
	return t
}

// toast marks an unchanged TOASTed value in tup.
const toast = "\x00u"

func insertOf(rel *Relation, n Tuple) Change { return Change{Kind: Insert, Rel: rel, New: n} }
func updateOf(rel *Relation, o, n Tuple) Change {
	return Change{Kind: Update, Rel: rel, Old: o, New: n}
}
func deleteOf(rel *Relation, o Tuple) Change { return Change{Kind: Delete, Rel: rel, Old: o} }
func truncateOf(rel *Relation) Change        { return Change{Kind: Truncate, Rel: rel} }
func testTxn(changes ...Change) *Txn         { return txnAt(0x16B374D848, changes...) }
func txnAt(lsn uint64, changes ...Change) *Txn {
	return &Txn{Xid: 700, CommitLSN: lsn, EndLSN: lsn + 0x30, CommitTime: time.Date(2024, 1, 15, 11, 30, 0, 123456000, time.UTC), Changes: changes}
}

// wireRecord is a record parsed back generically for assertions.
type wireRecord struct {
	Type    string                     `json:"type"`
	Op      string                     `json:"op"`
	Before  map[string]json.RawMessage `json:"before"`
	After   map[string]json.RawMessage `json:"after"`
	Chunked map[string]struct {
		ChunkID        string `json:"chunk_id"`
		TotalFragments int    `json:"total_fragments"`
		CRC32C         string `json:"crc32c"`
	} `json:"chunked"`
	Source struct {
		Version string `json:"version"`
		TsMs    int64  `json:"ts_ms"`
		TsNs    int64  `json:"ts_ns"`
		TxID    string `json:"txId"`
		Schema  string `json:"schema"`
		Table   string `json:"table"`
		DB      string `json:"db"`
		Cluster string `json:"cluster"`
		LSN     string `json:"lsn"`
	} `json:"source"`
	TsMs    int64  `json:"ts_ms"`
	TsNs    int64  `json:"ts_ns"`
	ChunkID string `json:"chunk_id"`
	Index   int    `json:"index"`
	Data    string `json:"data"`
}

func parseRecords(t testing.TB, recs []Record) []wireRecord {
	t.Helper()
	out := make([]wireRecord, len(recs))
	for i, r := range recs {
		if !json.Valid(r.Data) {
			t.Fatalf("record %d is not valid JSON: %s", i, r.Data)
		}
		if err := json.Unmarshal(r.Data, &out[i]); err != nil {
			t.Fatalf("record %d: %v: %s", i, err, r.Data)
		}
	}
	return out
}

func mustEncode(t testing.TB, e *Encoder, txn *Txn) Encoded {
	t.Helper()
	enc, err := e.Encode(txn, 0, testNow)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return enc
}
