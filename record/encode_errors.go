package record

import (
	"errors"
	"fmt"
	"strconv"
)

// Errors the producer side returns. Callers test them with errors.Is and
// errors.As; every one of them means the transaction was not encoded and must
// not be confirmed to the slot.
var (
	// ErrInvalidConfig wraps every NewEncoder validation failure.
	ErrInvalidConfig = errors.New("invalid encoder config")
	// ErrMalformedChange marks a Txn or Change that capture should never
	// have produced (a delete without its old key, a tuple whose width is
	// not the relation's).
	ErrMalformedChange = errors.New("malformed change")
	// ErrMalformedValue marks a column value whose bytes do not parse as
	// the type's text or binary format.
	ErrMalformedValue = errors.New("malformed value")
	// ErrBinaryUnsupported marks a value that arrived in the binary format
	// for a type the encoder cannot render from it: only PostgreSQL's output
	// function can. The fix is to publish in the text format.
	ErrBinaryUnsupported = errors.New("type cannot be encoded from the binary format; use the text format (pgoutput binary off)")
	// ErrValueOutOfRange marks a value that is valid in PostgreSQL but has
	// no representation in the record format (a timestamp past year 294246
	// in microseconds since 1970 overflows int64).
	ErrValueOutOfRange = errors.New("value out of range")
	// ErrRecordTooLarge marks a record that cannot be made to fit the
	// target's record size even after chunking.
	ErrRecordTooLarge = errors.New("record too large")
)

// PartialRowError reports an update whose new row lacks an unchanged TOASTed
// value that neither the old row nor an earlier change in the transaction
// supplies. Emitting the row without it would be a partial row (docs/records.md#values),
// so the transaction is refused.
type PartialRowError struct {
	Schema, Table, Column string
}

func (e *PartialRowError) Error() string {
	t := quoteIdent(e.Schema) + "." + quoteIdent(e.Table)
	return "table " + t + " column " + strconv.Quote(e.Column) +
		": the update does not carry the unchanged TOASTed value and no earlier image of the row holds it;" +
		" run ALTER TABLE " + t + " REPLICA IDENTITY FULL so updates carry the whole old row"
}

// OldRowError reports an update or delete whose old row lacks what its
// record needs: a primary key column (Column) of a table with a key, or the
// whole old row of a table without one (Column empty). The table's replica
// identity no longer logs it (docs/records.md#keys); emitting the change
// would mis-key or half-describe the row, so the transaction is refused.
type OldRowError struct {
	Schema, Table, Column string
}

func (e *OldRowError) Error() string {
	t := quoteIdent(e.Schema) + "." + quoteIdent(e.Table)
	what := "the change does not carry the whole old row of a table without a primary key"
	if e.Column != "" {
		what = "the change does not carry primary key column " + strconv.Quote(e.Column) + " of the old row"
	}
	return "table " + t + ": " + what + "; run ALTER TABLE " + t + " REPLICA IDENTITY FULL so updates and deletes carry the whole old row"
}

// ValueError reports a column value that could not be encoded. Err is one of
// ErrMalformedValue, ErrBinaryUnsupported or ErrValueOutOfRange, wrapped with
// detail.
type ValueError struct {
	Schema, Table, Column string
	TypeOID               uint32
	// Format is DatumText or DatumBinary.
	Format DatumKind
	Err    error
}

// Error names the table, column and type, never the value: it reaches the
// log and the status reason (docs/lifecycle.md#status-reason), and the
// pipeline adds the transaction's LSN.
func (e *ValueError) Error() string {
	format := "text"
	if e.Format == DatumBinary {
		format = "binary"
	}
	typ := fmt.Sprintf("type OID %d", e.TypeOID)
	if name := builtinTypeName(e.TypeOID); name != "" {
		typ = "type " + name + ", OID " + strconv.FormatUint(uint64(e.TypeOID), 10)
	}
	return fmt.Sprintf("encode %s.%s column %q (%s, %s format): %v",
		quoteIdent(e.Schema), quoteIdent(e.Table), e.Column, typ, format, e.Err)
}

func (e *ValueError) Unwrap() error { return e.Err }

// quoteIdent quotes an identifier as PostgreSQL would need it in the
// suggested ALTER TABLE, always, which is never wrong.
func quoteIdent(s string) string {
	out := make([]byte, 0, len(s)+2)
	out = append(out, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			out = append(out, '"')
		}
		out = append(out, s[i])
	}
	return string(append(out, '"'))
}

// badValue is a decoder's refusal of a value: what is wrong with it and its
// length, never its bytes (see ValueError).
func badValue(sentinel error, what string, data []byte) error {
	return fmt.Errorf("%w: %s (a value of %d bytes)", sentinel, what, len(data))
}

// builtinTypeName names the builtin types whose encoding can fail, for
// errors; other types are named by OID only.
func builtinTypeName(oid uint32) string {
	switch oid {
	case oidBool:
		return "boolean"
	case oidBytea:
		return "bytea"
	case oidChar:
		return `"char"`
	case oidInt8:
		return "bigint"
	case oidInt2:
		return "smallint"
	case oidInt4:
		return "integer"
	case oidOID:
		return "oid"
	case oidFloat4:
		return "real"
	case oidFloat8:
		return "double precision"
	case oidDate:
		return "date"
	case oidTime:
		return "time"
	case oidTimestamp:
		return "timestamp"
	case oidTimestamptz:
		return "timestamptz"
	case oidInterval:
		return "interval"
	case oidTimetz:
		return "timetz"
	case oidNumeric:
		return "numeric"
	case oidJSONB:
		return "jsonb"
	}
	return ""
}
