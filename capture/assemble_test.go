package capture

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcd-dev/cdcd/record"
)

// relMsg is a Relation message whose first column is the primary key: as
// pgoutput does, it flags every column under REPLICA IDENTITY FULL and the
// identity's columns (here the first) otherwise.
func relMsg(id uint32, ident uint8, cols ...string) *pglogrepl.RelationMessage {
	m := &pglogrepl.RelationMessage{RelationID: id, Namespace: "public", RelationName: "t", ReplicaIdentity: ident}
	for i, c := range cols {
		var flags uint8
		if ident == 'f' || i == 0 && ident != 'n' {
			flags = 1
		}
		m.Columns = append(m.Columns, &pglogrepl.RelationMessageColumn{Name: c, DataType: 23, Flags: flags})
	}
	m.ColumnNum = uint16(len(cols))
	return m
}

// pkLookup is a KeyLookup of a table whose primary key is cols.
func pkLookup(cols ...string) KeyLookup {
	return func(uint32) (catalogRel, error) { return catalogRel{pk: cols}, nil }
}

func tup(vals ...string) *pglogrepl.TupleData {
	t := &pglogrepl.TupleData{}
	for _, v := range vals {
		switch v {
		case "<null>":
			t.Columns = append(t.Columns, &pglogrepl.TupleDataColumn{DataType: 'n'})
		case "<toast>":
			t.Columns = append(t.Columns, &pglogrepl.TupleDataColumn{DataType: 'u'})
		default:
			t.Columns = append(t.Columns, &pglogrepl.TupleDataColumn{DataType: 't', Data: []byte(v)})
		}
	}
	t.ColumnNum = uint16(len(vals))
	return t
}

func TestAssemblerBuildsCommittedTransactions(t *testing.T) {
	keys := map[uint32][]string{1: {"id"}}
	a := newAssembler(func(id uint32) (catalogRel, error) { return catalogRel{pk: keys[id]}, nil }, nil, nil, nil)
	commit := time.Date(2024, 1, 15, 12, 0, 0, 123456000, time.UTC)
	msgs := []pglogrepl.Message{
		relMsg(1, 'f', "id", "v"),
		&pglogrepl.BeginMessage{FinalLSN: 0x100, Xid: 7, CommitTime: commit},
		&pglogrepl.InsertMessage{RelationID: 1, Tuple: tup("1", "a")},
		&pglogrepl.UpdateMessage{RelationID: 1, OldTuple: tup("1", "a"), NewTuple: tup("1", "<toast>")},
		&pglogrepl.DeleteMessage{RelationID: 1, OldTuple: tup("1", "<null>")},
		&pglogrepl.TruncateMessage{RelationNum: 1, RelationIDs: []uint32{1}},
		&pglogrepl.LogicalDecodingMessage{Prefix: "p", Content: []byte("x")},
		&pglogrepl.CommitMessage{CommitLSN: 0x100, TransactionEndLSN: 0x130, CommitTime: commit},
	}
	var got *record.Txn
	for i, m := range msgs {
		txn, err := a.handle(m)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if txn != nil && i != len(msgs)-1 {
			t.Fatalf("transaction returned before commit at message %d", i)
		}
		got = txn
	}
	if got == nil {
		t.Fatal("no transaction at commit")
	}
	if got.Xid != 7 || got.CommitLSN != 0x100 || got.EndLSN != 0x130 || !got.CommitTime.Equal(commit) {
		t.Errorf("txn header = %+v", got)
	}
	kinds := ""
	for _, c := range got.Changes {
		kinds += string(c.Kind)
	}
	if kinds != "IUDT" {
		t.Fatalf("change kinds %q, want IUDT", kinds)
	}
	rel := got.Changes[0].Rel
	// REPLICA IDENTITY FULL flags every column; the catalog's primary key
	// decides which columns are the key.
	if !rel.HasKey || !rel.Columns[0].Key || rel.Columns[1].Key {
		t.Errorf("key columns wrong: %+v", rel.Columns)
	}
	if got.Changes[1].New[1].Kind != record.DatumUnchanged || string(got.Changes[1].Old[1].Data) != "a" {
		t.Errorf("update tuples wrong: %+v", got.Changes[1])
	}
	if got.Changes[2].New != nil || got.Changes[2].Old[1].Kind != record.DatumNull {
		t.Errorf("delete tuples wrong: %+v", got.Changes[2])
	}
	if n := metricValue(a.met.messages); n != 1 {
		t.Errorf("logical messages counted %v, want 1", n)
	}
}

func TestAssemblerRelationChangeMidStream(t *testing.T) {
	a := newAssembler(pkLookup("id"), nil, nil, nil)
	steps := []pglogrepl.Message{
		relMsg(1, 'd', "id"),
		&pglogrepl.BeginMessage{Xid: 1},
		&pglogrepl.InsertMessage{RelationID: 1, Tuple: tup("1")},
		relMsg(1, 'd', "id", "added"),
		&pglogrepl.InsertMessage{RelationID: 1, Tuple: tup("2", "x")},
	}
	for _, m := range steps {
		if _, err := a.handle(m); err != nil {
			t.Fatal(err)
		}
	}
	txn, err := a.handle(&pglogrepl.CommitMessage{TransactionEndLSN: 9})
	if err != nil {
		t.Fatal(err)
	}
	if n0, n1 := len(txn.Changes[0].Rel.Columns), len(txn.Changes[1].Rel.Columns); n0 != 1 || n1 != 2 {
		t.Fatalf("each change must keep the relation it was decoded with: %d, %d columns", n0, n1)
	}
}

func TestAssemblerNoKeyTable(t *testing.T) {
	a := newAssembler(pkLookup(), nil, nil, nil)
	if _, err := a.handle(relMsg(1, 'f', "a", "b")); err != nil {
		t.Fatal(err)
	}
	if a.rels[1].HasKey {
		t.Fatal("a FULL-identity table without a primary key must not be compacted by key")
	}
	a2 := newAssembler(pkLookup(), nil, nil, nil)
	m := relMsg(1, 'i', "a", "b")
	m.Columns[1].Flags = 0
	if _, err := a2.handle(m); err != nil {
		t.Fatal(err)
	}
	if a2.rels[1].HasKey || a2.rels[1].Columns[0].Key {
		t.Fatalf("the key is the primary key, never the replica identity index pgoutput flags: %+v", a2.rels[1].Columns)
	}
	// With a primary key, pgoutput's flags (here on b, the replica
	// identity index) do not move the key off it.
	a3 := newAssembler(pkLookup("a"), nil, nil, nil)
	m = relMsg(1, 'i', "a", "b")
	m.Columns[0].Flags, m.Columns[1].Flags = 0, 1
	if _, err := a3.handle(m); err != nil {
		t.Fatal(err)
	}
	if !a3.rels[1].HasKey || !a3.rels[1].Columns[0].Key || a3.rels[1].Columns[1].Key {
		t.Fatalf("key columns %+v, want the primary key a", a3.rels[1].Columns)
	}
}

func TestAssemblerProtocolErrors(t *testing.T) {
	cases := []struct {
		name string
		msgs []pglogrepl.Message
		want string
	}{
		{"change outside txn", []pglogrepl.Message{relMsg(1, 'd', "id"), &pglogrepl.InsertMessage{RelationID: 1, Tuple: tup("1")}}, "outside a transaction"},
		{"unknown relation", []pglogrepl.Message{&pglogrepl.BeginMessage{}, &pglogrepl.InsertMessage{RelationID: 5, Tuple: tup("1")}}, "before its Relation"},
		{"commit without begin", []pglogrepl.Message{&pglogrepl.CommitMessage{}}, "without begin"},
		{"nested begin", []pglogrepl.Message{&pglogrepl.BeginMessage{Xid: 1}, &pglogrepl.BeginMessage{Xid: 2}}, "inside open"},
		{"column count", []pglogrepl.Message{relMsg(1, 'd', "id"), &pglogrepl.BeginMessage{}, &pglogrepl.InsertMessage{RelationID: 1, Tuple: tup("1", "2")}}, "column count"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAssembler(pkLookup("id"), nil, nil, nil)
			var err error
			for _, m := range tc.msgs {
				if _, err = a.handle(m); err != nil {
					break
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}
