package capture

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"
)

// cols builds catalog columns of type int4 (23) unless a name ends in
// ":text" (25).
func cols(names ...string) []catalogCol {
	var out []catalogCol
	for _, n := range names {
		typ := uint32(23)
		if name, ok := strings.CutSuffix(n, ":text"); ok {
			n, typ = name, 25
		}
		out = append(out, catalogCol{n, typ})
	}
	return out
}

// unflagged clears m's replica identity flags: a table without a primary
// key under REPLICA IDENTITY DEFAULT.
func unflagged(m *pglogrepl.RelationMessage) *pglogrepl.RelationMessage {
	for _, c := range m.Columns {
		c.Flags = 0
	}
	return m
}

// TestRelationKey: the key of a change decoded after a schema change is
// the primary key as of the change (docs/records.md#schema-changes).
func TestRelationKey(t *testing.T) {
	full := func(names ...string) *pglogrepl.RelationMessage { return relMsg(1, 'f', names...) }
	withText := func(m *pglogrepl.RelationMessage, i int) *pglogrepl.RelationMessage {
		m.Columns[i].DataType = 25
		return m
	}
	cases := []struct {
		name string
		msg  *pglogrepl.RelationMessage
		cat  catalogRel
		want string // the key columns, "skip", or "error"
	}{
		{"FULL: today's primary key", full("id", "v"), catalogRel{pk: []string{"id"}, cols: cols("id", "v")}, "id"},
		{"FULL: no primary key", full("id", "v"), catalogRel{cols: cols("id", "v")}, ""},
		{"FULL: column added since", full("id", "v"), catalogRel{pk: []string{"id"}, cols: cols("id", "v", "w")}, "id"},
		{"FULL: key column renamed since", withText(full("id", "v"), 1), catalogRel{pk: []string{"ident"}, cols: cols("ident", "v:text")}, "id"},
		{"FULL: key column renamed and another added since", full("id", "v"), catalogRel{pk: []string{"ident"}, cols: cols("ident", "v", "w")}, "error"},
		{"FULL: key column renamed and a type changed since", full("id", "v"), catalogRel{pk: []string{"ident"}, cols: cols("ident", "v:text")}, "error"},
		{"FULL: dropped while listed", full("id", "v"), catalogRel{gone: true, configured: true, configuredPK: []string{"id"}}, "id"},
		{"FULL: dropped and no longer listed", full("id", "v"), catalogRel{gone: true}, "skip"},
		{"DEFAULT: the WAL's key, primary key dropped since", relMsg(1, 'd', "id", "v"), catalogRel{cols: cols("id", "v")}, "id"},
		{"DEFAULT: the WAL's key, another primary key since", relMsg(1, 'd', "id", "v"), catalogRel{pk: []string{"v"}, cols: cols("id", "v")}, "id"},
		{"DEFAULT: no key in the WAL, primary key added since", unflagged(relMsg(1, 'd', "id", "v")), catalogRel{pk: []string{"id"}, cols: cols("id", "v")}, ""},
		{"NOTHING: today's primary key", relMsg(1, 'n', "id", "v"), catalogRel{pk: []string{"id"}, cols: cols("id", "v")}, "id"},
		{"DEFAULT: dropped while listed", relMsg(1, 'd', "id", "v"), catalogRel{gone: true, configured: true}, "id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key, skip, err := relationKey(tc.msg, tc.cat)
			var got string
			var tce *TableChangedError
			switch {
			case errors.As(err, &tce):
				got = "error"
				if tce.Table != `"public"."t"` || !strings.Contains(err.Error(), "delete the stream") {
					t.Errorf("error %q does not name the table and the fix", err)
				}
			case err != nil:
				t.Fatal(err)
			case skip:
				got = "skip"
			default:
				var names []string
				for i, k := range key {
					if k {
						names = append(names, tc.msg.Columns[i].Name)
					}
				}
				got = strings.Join(names, ",")
			}
			if got != tc.want {
				t.Errorf("key %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAssemblerRefusesKeylessChanges: on a stream that refuses tables
// without a primary key, a relation that has none (its primary key was
// dropped) is refused with an error naming the table and the fix, never
// emitted without a key; with the opt-in it streams without one.
func TestAssemblerRefusesKeylessChanges(t *testing.T) {
	for _, ident := range []uint8{'d', 'f'} {
		t.Run(string(ident), func(t *testing.T) {
			m := relMsg(1, ident, "id", "v")
			if ident == 'd' {
				unflagged(m)
			}
			a := newAssembler(pkLookup(), nil, nil, nil)
			a.refuseKeyless = true
			_, err := a.handle(m)
			var tce *TableChangedError
			if !errors.As(err, &tce) || !strings.Contains(err.Error(), `keyless_tables = "full"`) {
				t.Fatalf("got %v, want a TableChangedError naming the opt-in", err)
			}
			if fix := "ADD PRIMARY KEY"; (ident == 'f') != strings.Contains(err.Error(), fix) {
				t.Errorf("error %q: %q is the fix only where the key comes from today's catalog", err, fix)
			}
			a.refuseKeyless = false
			if _, err := a.handle(m); err != nil || a.rels[1].HasKey {
				t.Fatalf("with the opt-in: %v, HasKey %v", err, a.rels[1] != nil && a.rels[1].HasKey)
			}
		})
	}
}

// TestAssemblerSkipsDroppedUnlistedTable: changes of a table that was
// dropped and that the stream no longer lists are not emitted, in
// transactions received whole and streamed alike; other tables' changes
// in the same transactions are.
func TestAssemblerSkipsDroppedUnlistedTable(t *testing.T) {
	lookup := func(id uint32) (catalogRel, error) {
		if id == 2 {
			return catalogRel{gone: true}, nil
		}
		return catalogRel{pk: []string{"id"}}, nil
	}
	a := newAssembler(lookup, nil, nil, nil)
	txn := mustHandle(t, a, &pglogrepl.BeginMessage{Xid: 1}, relMsg(1, 'f', "id"), relMsg(2, 'f', "id"),
		&pglogrepl.InsertMessage{RelationID: 2, Tuple: tup("1")},
		&pglogrepl.InsertMessage{RelationID: 1, Tuple: tup("2")},
		&pglogrepl.DeleteMessage{RelationID: 2, OldTuple: tup("1")},
		&pglogrepl.TruncateMessage{RelationNum: 1, RelationIDs: []uint32{2}},
		&pglogrepl.CommitMessage{TransactionEndLSN: 10})
	if len(txn.Changes) != 1 || txn.Changes[0].Rel.ID != 1 {
		t.Fatalf("changes %+v, want the insert into relation 1 only", txn.Changes)
	}
	txn = mustHandle(t, a, sStart(20, true), sRel(20, relMsg(2, 'f', "id")), sInsert(20, 2, "3"), sStop(),
		&pglogrepl.StreamCommitMessageV2{Xid: 20, TransactionEndLSN: 30})
	if len(txn.Changes) != 0 {
		t.Fatalf("streamed changes %+v, want none", txn.Changes)
	}
}

// TestAssemblerDroppedType: a column whose type was dropped before its
// changes were decoded (an enum after ALTER COLUMN … TYPE text and DROP
// TYPE) does not stop the stream: the type stays unresolved and its values
// encode as their text output. Any other lookup failure still does.
func TestAssemblerDroppedType(t *testing.T) {
	var fail error
	types := func(oid uint32, refresh bool) error {
		if oid == 90000 {
			return fail
		}
		return nil
	}
	m := relMsg(1, 'f', "id", "mood")
	m.Columns[1].DataType = 90000
	for _, tc := range []struct {
		err  error
		want bool
	}{{fmt.Errorf("%w: type 90000", errTypeGone), true}, {errors.New("connection reset"), false}} {
		fail = tc.err
		a := newAssembler(pkLookup("id"), types, nil, nil)
		_, err := a.handle(m)
		if ok := err == nil; ok != tc.want {
			t.Errorf("lookup failing with %v: handle returned %v", tc.err, err)
		}
		if _, err := a.handle(&pglogrepl.TypeMessage{DataType: 90000, Namespace: "public", Name: "mood"}); (err == nil) != tc.want {
			t.Errorf("type message, lookup failing with %v: handle returned %v", tc.err, err)
		}
	}
}
