package capture

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pglogrepl"

	"github.com/cdcd-dev/cdcd/record"
)

// assembler turns pgoutput messages into committed record.Txn values. It owns
// the relation cache: a Relation message replaces the cached entry with a new
// pointer, so changes already assembled keep the shape they were decoded with
// and a table altered mid-stream is reflected from the next change on.
//
// Transactions are kept in memory until they commit: the open one of
// protocol 1 in txn, those streamed in progress (protocol 2) in streams.
// bytes and streamTxn.bytes count their tuple data; past the memory budget
// a transaction spills to disk (assemble_spill.go).
type assembler struct {
	keys  KeyLookup
	types typeResolver
	met   *StreamMetrics
	log   *slog.Logger
	// refuseKeyless refuses a relation without a key (keyless_tables =
	// "refuse"): its changes could not be keyed.
	refuseKeyless bool

	rels map[uint32]*record.Relation
	// skip holds the relations whose changes are not emitted
	// (relationKey).
	skip  map[*record.Relation]bool
	txn   *record.Txn
	inTxn bool
	bytes int // approximate bytes of the open transaction's tuples

	// Spilling (assemble_spill.go): store and budget are set by the
	// session (a nil store never spills); held is the estimated memory of
	// every open transaction's changes, mem the open one's share, spill
	// its spill file once it has one.
	store  record.RunStore
	budget int
	held   int
	mem    int
	spill  *record.ChangeSpill

	// inStream is set between StreamStart and StreamStop; streamXid is the
	// top-level transaction whose changes the block carries.
	inStream  bool
	streamXid uint32
	streams   map[uint32]*streamTxn
}

// typeResolver makes sure a type outside the builtin table can be looked up
// by the encoder; refresh re-reads a type the server announced again.
type typeResolver func(oid uint32, refresh bool) error

func newAssembler(keys KeyLookup, types typeResolver, met *StreamMetrics, log *slog.Logger) *assembler {
	if types == nil {
		types = func(uint32, bool) error { return nil }
	}
	if met == nil {
		met = unregistered()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &assembler{keys: keys, types: types, met: met, log: log,
		rels: make(map[uint32]*record.Relation), skip: make(map[*record.Relation]bool), streams: make(map[uint32]*streamTxn)}
}

// handle consumes one pgoutput message. It returns a transaction when msg is
// the Commit (or Stream Commit) that completes it.
func (a *assembler) handle(msg pglogrepl.Message) (*record.Txn, error) {
	if a.inStream {
		return nil, a.inStreamMessage(msg)
	}
	switch m := unwrap(msg).(type) {
	case *pglogrepl.BeginMessage:
		if a.inTxn {
			return nil, fmt.Errorf("begin of xid %d inside open xid %d", m.Xid, a.txn.Xid)
		}
		a.inTxn = true
		a.bytes, a.mem = 0, 0
		a.txn = &record.Txn{Xid: m.Xid, CommitLSN: uint64(m.FinalLSN), CommitTime: m.CommitTime}
	case *pglogrepl.CommitMessage:
		if !a.inTxn {
			return nil, fmt.Errorf("commit at %s without begin", m.CommitLSN)
		}
		t := a.txn
		t.CommitLSN = uint64(m.CommitLSN)
		t.EndLSN = uint64(m.TransactionEndLSN)
		t.CommitTime = m.CommitTime
		if err := a.finishOpen(t); err != nil {
			return nil, err
		}
		a.held -= a.mem
		a.txn, a.inTxn, a.bytes, a.mem = nil, false, 0, 0
		return t, nil
	case *pglogrepl.RelationMessage:
		rel, err := a.relation(m)
		if err != nil {
			return nil, err
		}
		a.rels[m.RelationID] = rel
	case *changeMessage, *pglogrepl.InsertMessage, *pglogrepl.UpdateMessage, *pglogrepl.DeleteMessage, *pglogrepl.TruncateMessage:
		if !a.inTxn {
			return nil, fmt.Errorf("%s outside a transaction", msg.Type())
		}
		n, err := a.changes(m, a.shared, func(c record.Change) {
			a.txn.Changes = append(a.txn.Changes, c)
			cm := changeMem(&c)
			a.mem += cm
			a.held += cm
		})
		a.bytes += n
		if err != nil {
			return nil, err
		}
		return nil, a.spillOpen()
	case *pglogrepl.TypeMessage:
		return nil, a.typeMessage(m)
	case *pglogrepl.OriginMessage:
		// The transaction was replayed here from another node; its rows
		// are this database's rows all the same.
		a.log.Debug("transaction from replication origin", "origin", m.Name)
	case *pglogrepl.LogicalDecodingMessage:
		// pg_logical_emit_message content is not row data; it is counted
		// so that operators can see it arrived.
		a.message(m)
	case *pglogrepl.StreamStartMessageV2:
		return nil, a.streamStart(m)
	case *pglogrepl.StreamCommitMessageV2:
		return a.streamCommit(m)
	case *pglogrepl.StreamAbortMessageV2:
		return nil, a.streamAbort(m)
	case *pglogrepl.StreamStopMessageV2:
		return nil, fmt.Errorf("stream stop outside a stream block")
	default:
		return nil, fmt.Errorf("unexpected pgoutput message %T", msg)
	}
	return nil, nil
}

// unwrap returns the protocol 1 message that a protocol 2 message embeds; its
// extra field, the xid, matters only inside stream blocks.
func unwrap(msg pglogrepl.Message) pglogrepl.Message {
	switch m := msg.(type) {
	case *pglogrepl.RelationMessageV2:
		return &m.RelationMessage
	case *pglogrepl.TypeMessageV2:
		return &m.TypeMessage
	case *pglogrepl.InsertMessageV2:
		return &m.InsertMessage
	case *pglogrepl.UpdateMessageV2:
		return &m.UpdateMessage
	case *pglogrepl.DeleteMessageV2:
		return &m.DeleteMessage
	case *pglogrepl.TruncateMessageV2:
		return &m.TruncateMessage
	case *pglogrepl.LogicalDecodingMessageV2:
		return &m.LogicalDecodingMessage
	}
	return msg
}

func (a *assembler) message(m *pglogrepl.LogicalDecodingMessage) {
	a.met.messages.Inc()
	a.log.Debug("logical decoding message", "prefix", m.Prefix, "transactional", m.Transactional, "bytes", len(m.Content))
}

func (a *assembler) typeMessage(m *pglogrepl.TypeMessage) error {
	err := a.types(m.DataType, true)
	if errors.Is(err, errTypeGone) {
		// Its columns say so when their Relation message comes.
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up type %s.%s: %w", m.Namespace, m.Name, err)
	}
	return nil
}

func (a *assembler) relation(m *pglogrepl.RelationMessage) (*record.Relation, error) {
	rel := &record.Relation{
		ID:              m.RelationID,
		Schema:          m.Namespace,
		Table:           m.RelationName,
		ReplicaIdentity: m.ReplicaIdentity,
		Columns:         make([]record.Column, len(m.Columns)),
	}
	cat, err := a.keys(m.RelationID)
	if err != nil {
		return nil, fmt.Errorf("look up primary key of %s.%s: %w", m.Namespace, m.RelationName, err)
	}
	// The key is the primary key, never the replica identity columns
	// that pgoutput flags (docs/records.md#keys), as of the change
	// (docs/records.md#schema-changes).
	key, skip, err := relationKey(m, cat)
	if err != nil {
		return nil, err
	}
	if skip {
		a.log.Warn("changes of a table that was dropped and that the stream no longer lists are not emitted",
			"table", relName(m), "relation_id", m.RelationID)
		a.skip[rel] = true
		return rel, nil
	}
	for i, c := range m.Columns {
		rel.Columns[i] = record.Column{Name: c.Name, TypeOID: c.DataType, TypMod: c.TypeModifier, Key: key[i]}
		rel.HasKey = rel.HasKey || key[i]
		if err := a.resolveType(m, c); err != nil {
			return nil, err
		}
	}
	if !rel.HasKey && a.refuseKeyless {
		return nil, keylessRefused(m)
	}
	return rel, nil
}

// keylessRefused is the error for changes of a table without a primary key
// on a stream that refuses such tables: its primary key was dropped while
// the stream had changes of it to deliver.
func keylessRefused(m *pglogrepl.RelationMessage) error {
	name := relName(m)
	fix := "delete the stream and create it again once the table has a primary key"
	if m.ReplicaIdentity != 'd' {
		// Under any other replica identity the key comes from today's
		// catalog, so restoring the primary key keys these changes too.
		fix = "run ALTER TABLE " + name + " ADD PRIMARY KEY (…)"
	}
	return tableChanged(name, "table %s has no primary key in changes cdcd has yet to deliver (was it dropped?), and the stream refuses tables without one, so they could not be keyed: %s, or set keyless_tables = \"full\" on the stream to stream them without a key under REPLICA IDENTITY FULL", name, fix)
}

// resolveType looks up the type of column c of m. A type that was dropped
// since the change (say, an enum after ALTER COLUMN … TYPE text) can no
// longer be looked up: its values are encoded as their text output
// (docs/records.md#schema-changes), which for an enum is its label.
func (a *assembler) resolveType(m *pglogrepl.RelationMessage, c *pglogrepl.RelationMessageColumn) error {
	err := a.types(c.DataType, false)
	if errors.Is(err, errTypeGone) {
		a.log.Warn("the type of a column was dropped before cdcd decoded changes that use it: its values are encoded as their text output",
			"table", relName(m), "column", c.Name, "type_oid", c.DataType)
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up type of %s.%s.%s: %w", m.Namespace, m.RelationName, c.Name, err)
	}
	return nil
}

// shared looks a relation up in the cache shared by all transactions.
func (a *assembler) shared(id uint32) (*record.Relation, bool) {
	r, ok := a.rels[id]
	return r, ok
}

// relLookup finds the relation a change refers to.
type relLookup func(relID uint32) (*record.Relation, bool)

// changes converts one Insert, Update, Delete or Truncate message into
// changes passed to add, resolving relations with rels, and returns the
// bytes of tuple data they hold.
func (a *assembler) changes(msg pglogrepl.Message, rels relLookup, add func(record.Change)) (int, error) {
	switch m := msg.(type) {
	case *changeMessage:
		// The old tuple is present only when the key changed ('K') or
		// under REPLICA IDENTITY FULL ('O'); record handles both.
		return m.bytes, a.change(m.kind, m.relID, rels, m.old, m.new, add)
	case *pglogrepl.InsertMessage, *pglogrepl.UpdateMessage, *pglogrepl.DeleteMessage:
		return a.changes(fromPglogrepl(m), rels, add)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			if err := a.change(record.Truncate, id, rels, nil, nil, add); err != nil {
				return 0, err
			}
		}
		return 0, nil
	}
	return 0, fmt.Errorf("unexpected change message %T", msg)
}

func (a *assembler) change(kind record.ChangeKind, relID uint32, rels relLookup, oldT, newT record.Tuple, add func(record.Change)) error {
	rel, ok := rels(relID)
	if !ok {
		return fmt.Errorf("change to relation %d before its Relation message", relID)
	}
	if a.skip[rel] {
		return nil
	}
	if kind == record.Delete && oldT == nil {
		return fmt.Errorf("delete from %s.%s without an old tuple", rel.Schema, rel.Table)
	}
	if (oldT != nil && len(oldT) != len(rel.Columns)) || (newT != nil && len(newT) != len(rel.Columns)) {
		return fmt.Errorf("tuple of %s.%s has a different column count than its relation", rel.Schema, rel.Table)
	}
	add(record.Change{Kind: kind, Rel: rel, Old: oldT, New: newT})
	return nil
}

// fromPglogrepl converts an Insert, Update or Delete message as pglogrepl
// decodes it (tests build them) into a changeMessage.
func fromPglogrepl(msg pglogrepl.Message) *changeMessage {
	var m *changeMessage
	switch msg := msg.(type) {
	case *pglogrepl.InsertMessage:
		m = &changeMessage{kind: record.Insert, relID: msg.RelationID, new: tuple(msg.Tuple)}
	case *pglogrepl.UpdateMessage:
		m = &changeMessage{kind: record.Update, relID: msg.RelationID, old: tuple(msg.OldTuple), new: tuple(msg.NewTuple)}
	case *pglogrepl.DeleteMessage:
		m = &changeMessage{kind: record.Delete, relID: msg.RelationID, old: tuple(msg.OldTuple)}
	}
	m.count()
	return m
}

// tuple converts pglogrepl tuple data.
func tuple(t *pglogrepl.TupleData) record.Tuple {
	if t == nil {
		return nil
	}
	out := make(record.Tuple, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = record.Datum{Kind: record.DatumKind(c.DataType), Data: c.Data}
	}
	return out
}
