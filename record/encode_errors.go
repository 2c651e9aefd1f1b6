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

func (e *ValueError) Error() string {
	format := "text"
	if e.Format == DatumBinary {
		format = "binary"
	}
	return fmt.Sprintf("encode %s.%s column %q (type OID %d, %s format): %v",
		quoteIdent(e.Schema), quoteIdent(e.Table), e.Column, e.TypeOID, format, e.Err)
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
