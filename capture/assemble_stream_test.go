package capture

import (
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"

	"github.com/cdcd-dev/cdcd/record"
)

// Protocol 2 message builders: inside a stream block every message carries
// the xid of its (sub)transaction.
func sStart(xid uint32, first bool) *pglogrepl.StreamStartMessageV2 {
	m := &pglogrepl.StreamStartMessageV2{Xid: xid}
	if first {
		m.FirstSegment = 1
	}
	return m
}

func sStop() *pglogrepl.StreamStopMessageV2 { return &pglogrepl.StreamStopMessageV2{} }

func sInsert(xid, rel uint32, vals ...string) *pglogrepl.InsertMessageV2 {
	m := &pglogrepl.InsertMessageV2{InsertMessage: pglogrepl.InsertMessage{RelationID: rel, Tuple: tup(vals...)}}
	m.Xid = xid
	return m
}

func sRel(xid uint32, m *pglogrepl.RelationMessage) *pglogrepl.RelationMessageV2 {
	r := &pglogrepl.RelationMessageV2{RelationMessage: *m}
	r.Xid = xid
	return r
}

func sCommit(xid uint32, end uint64) *pglogrepl.StreamCommitMessageV2 {
	return &pglogrepl.StreamCommitMessageV2{Xid: xid, CommitLSN: pglogrepl.LSN(end - 1), TransactionEndLSN: pglogrepl.LSN(end)}
}

func sAbort(xid, sub uint32) *pglogrepl.StreamAbortMessageV2 {
	return &pglogrepl.StreamAbortMessageV2{Xid: xid, SubXid: sub}
}

// values lists the first column of each change, to compare transactions.
func values(txn *record.Txn) string {
	var out []string
	for _, c := range txn.Changes {
		out = append(out, string(c.New[0].Data))
	}
	return strings.Join(out, ",")
}

func TestAssemblerStreaming(t *testing.T) {
	type want struct {
		xid    uint32
		values string
	}
	cases := []struct {
		name string
		msgs []pglogrepl.Message
		want []want
	}{
		{
			name: "segments interleaved with a regular transaction",
			msgs: []pglogrepl.Message{
				sStart(10, true), sRel(10, relMsg(1, 'd', "id")), sInsert(10, 1, "1"), sStop(),
				&pglogrepl.BeginMessage{Xid: 11}, relMsg(1, 'd', "id"), &pglogrepl.InsertMessage{RelationID: 1, Tuple: tup("r")},
				&pglogrepl.CommitMessage{TransactionEndLSN: 50},
				sStart(10, false), sInsert(10, 1, "2"), sStop(),
				sCommit(10, 60),
			},
			want: []want{{11, "r"}, {10, "1,2"}},
		},
		{
			name: "aborted transaction leaves nothing",
			msgs: []pglogrepl.Message{
				sStart(10, true), sRel(10, relMsg(1, 'd', "id")), sInsert(10, 1, "1"), sStop(),
				sStart(10, false), sInsert(10, 1, "2"), sStop(),
				sAbort(10, 10),
			},
		},
		{
			name: "subtransaction abort discards only its changes",
			msgs: []pglogrepl.Message{
				sStart(10, true), sRel(10, relMsg(1, 'd', "id")),
				sInsert(10, 1, "top1"), sInsert(12, 1, "sub12"), sInsert(13, 1, "sub13"), sInsert(10, 1, "top2"),
				sStop(),
				sAbort(10, 12),
				sStart(10, false), sInsert(14, 1, "sub14"), sStop(),
				sCommit(10, 70),
			},
			want: []want{{10, "top1,sub13,top2,sub14"}},
		},
		{
			name: "two streamed transactions commit in their own order",
			msgs: []pglogrepl.Message{
				sStart(20, true), sRel(20, relMsg(1, 'd', "id")), sInsert(20, 1, "a1"), sStop(),
				sStart(21, true), sRel(21, relMsg(1, 'd', "id")), sInsert(21, 1, "b1"), sStop(),
				sStart(20, false), sInsert(20, 1, "a2"), sStop(),
				sCommit(21, 80), sCommit(20, 90),
			},
			want: []want{{21, "b1"}, {20, "a1,a2"}},
		},
		{
			name: "abort of a transaction never received",
			msgs: []pglogrepl.Message{sAbort(30, 31)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAssembler(pkLookup("id"), nil, nil, nil)
			var got []want
			for i, m := range tc.msgs {
				txn, err := a.handle(m)
				if err != nil {
					t.Fatalf("message %d (%T): %v", i, m, err)
				}
				if txn != nil {
					got = append(got, want{txn.Xid, values(txn)})
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got transactions %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("transaction %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
			if len(a.streams) != 0 {
				t.Errorf("%d streamed transactions left open", len(a.streams))
			}
		})
	}
}

// A Relation message inside a stream describes the table as that
// transaction sees it: other transactions keep the old shape until it
// commits, and an abort forgets it.
func TestAssemblerStreamedRelationScope(t *testing.T) {
	newA := func() *assembler {
		a := newAssembler(pkLookup("id"), nil, nil, nil)
		mustHandle(t, a, &pglogrepl.BeginMessage{Xid: 1}, relMsg(1, 'd', "id"), &pglogrepl.CommitMessage{TransactionEndLSN: 10})
		return a
	}
	altered := relMsg(1, 'd', "id", "added")

	a := newA()
	mustHandle(t, a, sStart(5, true), sRel(5, altered), sInsert(5, 1, "1", "x"), sStop())
	txn := mustHandle(t, a, &pglogrepl.BeginMessage{Xid: 6}, &pglogrepl.InsertMessage{RelationID: 1, Tuple: tup("2")},
		&pglogrepl.CommitMessage{TransactionEndLSN: 20})
	if n := len(txn.Changes[0].Rel.Columns); n != 1 {
		t.Fatalf("a concurrent transaction sees %d columns, want the committed 1", n)
	}
	txn = mustHandle(t, a, sCommit(5, 30))
	if n := len(txn.Changes[0].Rel.Columns); n != 2 {
		t.Fatalf("the streamed transaction's change has %d columns, want 2", n)
	}
	if n := len(a.rels[1].Columns); n != 2 {
		t.Fatalf("after commit the shared relation has %d columns, want 2", n)
	}

	a = newA()
	mustHandle(t, a, sStart(5, true), sRel(5, altered), sInsert(5, 1, "1", "x"), sStop(), sAbort(5, 5))
	if n := len(a.rels[1].Columns); n != 1 {
		t.Fatalf("after abort the shared relation has %d columns, want 1", n)
	}
}

func TestAssemblerStreamingProtocolErrors(t *testing.T) {
	cases := []struct {
		name string
		msgs []pglogrepl.Message
		want string
	}{
		{"segment without first", []pglogrepl.Message{sStart(1, false)}, "without its first segment"},
		{"first segment twice", []pglogrepl.Message{sStart(1, true), sStop(), sStart(1, true)}, "already open"},
		{"commit never started", []pglogrepl.Message{sCommit(1, 10)}, "never started"},
		{"stop outside block", []pglogrepl.Message{sStop()}, "outside a stream block"},
		{"start inside txn", []pglogrepl.Message{&pglogrepl.BeginMessage{Xid: 2}, sStart(1, true)}, "inside open"},
		{"begin inside block", []pglogrepl.Message{sStart(1, true), &pglogrepl.BeginMessage{Xid: 2}}, "inside the stream block"},
		{"unknown relation", []pglogrepl.Message{sStart(1, true), sInsert(1, 9, "1")}, "before its Relation"},
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

// mustHandle feeds msgs and returns the last transaction completed.
func mustHandle(t *testing.T, a *assembler, msgs ...pglogrepl.Message) *record.Txn {
	t.Helper()
	var last *record.Txn
	for i, m := range msgs {
		txn, err := a.handle(m)
		if err != nil {
			t.Fatalf("message %d (%T): %v", i, m, err)
		}
		if txn != nil {
			last = txn
		}
	}
	return last
}
