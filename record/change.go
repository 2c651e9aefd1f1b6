package record

import "time"

// This file is the seam between capture and record: capture assembles a
// committed transaction from pgoutput messages into these types, and record
// turns it into CDC records without touching the network or the clock.

// DatumKind says how pgoutput delivered one column of a tuple.
type DatumKind byte

const (
	// DatumNull is SQL NULL.
	DatumNull DatumKind = 'n'
	// DatumUnchanged is a TOASTed value the update did not touch; the WAL
	// does not carry it (pgoutput 'u').
	DatumUnchanged DatumKind = 'u'
	// DatumText is PostgreSQL's text output of the value.
	DatumText DatumKind = 't'
	// DatumBinary is the type's binary send format (publication option binary).
	DatumBinary DatumKind = 'b'
)

// Datum is one column value of a tuple. Data aliases the decoder's buffer
// only until the transaction is handed over; capture copies it.
type Datum struct {
	Kind DatumKind
	Data []byte
}

// Tuple is a row image in relation column order.
type Tuple []Datum

// Column describes one column of a relation as pgoutput's Relation message
// announces it.
type Column struct {
	Name    string
	TypeOID uint32
	TypMod  int32
	// Key marks membership in the table's primary key (read from the
	// catalog: pgoutput's own flags mark the replica identity instead).
	Key bool
}

// Relation is a published table as of the transaction that uses it.
type Relation struct {
	ID     uint32
	Schema string
	Table  string
	// ReplicaIdentity is pgoutput's setting: 'd' default (primary key),
	// 'n' nothing, 'f' full, 'i' index.
	ReplicaIdentity byte
	Columns         []Column
	// HasKey reports whether the Key columns identify a row (the table has
	// a primary key), so changes can be compacted. Tables without one emit
	// every change, with the whole old row in before (docs/records.md#keys).
	HasKey bool
}

// ChangeKind is the kind of one row change inside a transaction.
type ChangeKind byte

const (
	Insert   ChangeKind = 'I'
	Update   ChangeKind = 'U'
	Delete   ChangeKind = 'D'
	Truncate ChangeKind = 'T'
	// Read is a row read by an initial snapshot (op "r", an upsert for any
	// consumer): New holds the whole row as of the slot's consistent point
	// and Old is nil.
	Read ChangeKind = 'R'
)

// Change is one row change. For Update, Old is nil unless the key changed
// or the replica identity is FULL; for Delete, Old holds the replica
// identity's columns (the whole row under REPLICA IDENTITY FULL), with the
// other columns DatumNull.
// For Truncate, Rel is the truncated table and Old and New are nil.
type Change struct {
	Kind ChangeKind
	Rel  *Relation
	Old  Tuple
	New  Tuple
}

// Txn is one committed transaction in commit order.
type Txn struct {
	Xid uint32
	// CommitLSN is the LSN of the commit record; it names the transaction
	// (source.txId, source.lsn).
	CommitLSN uint64
	// EndLSN is the end of the commit record: the position confirmed to the
	// slot once everything in the transaction is delivered.
	EndLSN uint64
	// CommitTime has microsecond resolution, as PostgreSQL records it.
	CommitTime time.Time
	Changes    []Change
	// Spilled, when not nil, yields the changes instead of Changes (which
	// is then nil): capture moved a transaction past its memory budget to
	// disk. Encode refuses such a transaction; EncodeSpilled reads it in
	// bounded memory and closes it. Whoever drops the Txn without
	// EncodeSpilled must Close it, which deletes the spill.
	Spilled ChangeReader
}

// TypeKind classifies a non-builtin type for encoding.
type TypeKind byte

const (
	TypeBase   TypeKind = 'b'
	TypeEnum   TypeKind = 'e'
	TypeDomain TypeKind = 'd'
	TypeArray  TypeKind = 'a'
)

// TypeInfo describes a type that is not in the builtin table: enums encode as
// their label, domains as their base type, arrays as arrays of their element.
type TypeInfo struct {
	OID  uint32
	Kind TypeKind
	// BaseOID is the base type of a domain.
	BaseOID uint32
	// ElemOID is the element type of an array.
	ElemOID uint32
}

// Types resolves type OIDs that the builtin table does not know. Capture
// implements it from pg_type; a nil Types encodes unknown types as text.
type Types interface {
	LookupType(oid uint32) (TypeInfo, bool)
}
