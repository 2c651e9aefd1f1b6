package capture

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/record"
)

// firstNormalOID is PostgreSQL's FirstNormalObjectId: types below it are
// built in, and record's own table covers the ones it encodes specially.
const firstNormalOID = 16384

// maxTypeDepth bounds how far a domain or array chain is followed, so a
// corrupt catalog cannot make resolve recurse forever.
const maxTypeDepth = 16

// typeCache implements record.Types from pg_type. The receive loop fills it
// when a Relation or Type message names a type outside the builtin range,
// before any change that uses it is handed over; the encoder reads it from
// the handler's goroutine, hence the lock.
type typeCache struct {
	mu sync.RWMutex
	m  map[uint32]record.TypeInfo
}

var _ record.Types = (*typeCache)(nil)

func newTypeCache() *typeCache { return &typeCache{m: make(map[uint32]record.TypeInfo)} }

// LookupType implements record.Types.
func (c *typeCache) LookupType(oid uint32) (record.TypeInfo, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.m[oid]
	return t, ok
}

// errTypeGone is a type that is no longer in pg_type: it was dropped after
// a change that uses it was made.
var errTypeGone = errors.New("type is not in pg_type (dropped?)")

// querier is what resolve needs of a connection or transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// resolve reads oid, and the domain base or array element types it refers
// to, from pg_type unless already cached. refresh re-reads oid itself: a
// Type message means the type may have changed (say, an enum got a label).
func (c *typeCache) resolve(ctx context.Context, q querier, oid uint32, refresh bool) error {
	for depth := 0; oid >= firstNormalOID; depth++ {
		if depth == maxTypeDepth {
			return fmt.Errorf("type %d: domain or array chain deeper than %d", oid, maxTypeDepth)
		}
		if _, ok := c.LookupType(oid); ok && !refresh {
			return nil
		}
		refresh = false
		info, err := readType(ctx, q, oid)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.m[oid] = info
		c.mu.Unlock()
		switch info.Kind {
		case record.TypeDomain:
			oid = info.BaseOID
		case record.TypeArray:
			oid = info.ElemOID
		default:
			return nil
		}
	}
	return nil
}

func readType(ctx context.Context, q querier, oid uint32) (record.TypeInfo, error) {
	var typType, category string
	var base, elem uint32
	err := q.QueryRow(ctx, `SELECT typtype::text, typcategory::text, typbasetype, typelem FROM pg_type WHERE oid = $1`, oid).
		Scan(&typType, &category, &base, &elem)
	if errors.Is(err, pgx.ErrNoRows) {
		return record.TypeInfo{}, fmt.Errorf("%w: type %d", errTypeGone, oid)
	}
	if err != nil {
		return record.TypeInfo{}, fmt.Errorf("read type %d: %w", oid, err)
	}
	info := record.TypeInfo{OID: oid, Kind: record.TypeBase}
	switch {
	case typType == "e":
		info.Kind = record.TypeEnum
	case typType == "d":
		info.Kind, info.BaseOID = record.TypeDomain, base
	case category == "A" && elem != 0:
		info.Kind, info.ElemOID = record.TypeArray, elem
	}
	return info, nil
}
