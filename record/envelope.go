package record

import (
	"strconv"
)

// The record envelope (docs/records.md#envelope), field order fixed:
//
//	{"type":"full","op":"c","before":null,"after":{…},
//	 "source":{"version":"1.0","ts_ms":…,"ts_ns":…,"txId":"…","schema":"…",
//	           "table":"…","db":"…","cluster":"…","lsn":"16/B374D848"},
//	 "ts_ms":…,"ts_ns":…}
//
// A chunked main record adds "chunked" between "after" and "source" (see
// chunk.go). Images list columns in relation order; a d record's before
// holds only the key columns, and on tables without a key the u and d
// records' before holds the whole old row.

// appendRow encodes one compacted row as a full record, or as fragments and
// a chunked main record when it does not fit, and appends them to out.
// index is the row's position among the transaction's rows.
func (e *Encoder) appendRow(out []Record, row *compactRow, index int) ([]Record, error) {
	var before, after []byte
	var err error
	if row.before != nil {
		// A table with a key gives a delete's key columns; one without, the
		// whole old row.
		e.before, err = e.appendImage(e.before[:0], row.rel, row.before, isKeyed(row.rel))
		if err != nil {
			return out, err
		}
		before = e.before
	}
	if row.after != nil {
		e.after, err = e.appendImage(e.after[:0], row.rel, row.after, false)
		if err != nil {
			return out, err
		}
		after = e.after
	}
	var rowKey partKey
	if e.cfg.Ordering == Row {
		rowKey = e.rowPartitionKey(row)
	}
	e.rec = e.appendEnvelope(e.rec[:0], "full", row, before, after, nil)
	if len(e.rec)+partitionKeyLen <= e.cfg.MaxRecordBytes {
		return e.addRecord(out, e.partitionKey(&rowKey, len(out)), e.keep(e.rec)), nil
	}
	return e.appendChunked(out, row, index, &rowKey, before, after)
}

// appendImage appends a row image as a JSON object; keyOnly restricts it to
// the key columns (a delete's before).
func (e *Encoder) appendImage(dst []byte, rel *Relation, t Tuple, keyOnly bool) ([]byte, error) {
	names := e.relNames(rel)
	dst = append(dst, '{')
	first := true
	for i := range rel.Columns {
		col := &rel.Columns[i]
		if keyOnly && !col.Key {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, names.column(i)...)
		var err error
		if dst, err = e.vals.appendDatum(dst, col.TypeOID, t[i].Kind, t[i].Data, 0); err != nil {
			return dst, valueError(rel, col, t[i].Kind, err)
		}
	}
	return append(dst, '}'), nil
}

// relJSON is the JSON of a relation's names, escaped once rather than for
// every record: `"column":` for each column, and the source's
// `,"schema":…,"table":…`.
type relJSON struct {
	rel     *Relation
	columns []byte
	ends    []int // ends[i] is where column i's name ends in columns
	source  []byte
}

func (r *relJSON) column(i int) []byte {
	start := 0
	if i > 0 {
		start = r.ends[i-1]
	}
	return r.columns[start:r.ends[i]]
}

// maxCachedRelations bounds relNames' cache: capture makes a new Relation
// for every Relation message, so the cache would otherwise grow with every
// schema change and reconnection.
const maxCachedRelations = 256

// relNames returns rel's names as JSON. Relations do not change once made
// (capture makes a new one for each Relation message), so they are cached
// by pointer.
func (e *Encoder) relNames(rel *Relation) *relJSON {
	if e.lastRel != nil && e.lastRel.rel == rel {
		return e.lastRel
	}
	r, ok := e.relCache[rel]
	if !ok {
		if e.relCache == nil || len(e.relCache) >= maxCachedRelations {
			e.relCache = make(map[*Relation]*relJSON)
		}
		r = &relJSON{rel: rel, ends: make([]int, len(rel.Columns))}
		for i := range rel.Columns {
			r.columns = appendJSONString(r.columns, rel.Columns[i].Name)
			r.columns = append(r.columns, ':')
			r.ends[i] = len(r.columns)
		}
		r.source = append(r.source, `,"schema":`...)
		r.source = appendJSONString(r.source, rel.Schema)
		r.source = append(r.source, `,"table":`...)
		r.source = appendJSONString(r.source, rel.Table)
		e.relCache[rel] = r
	}
	e.lastRel = r
	return r
}

// appendEnvelope appends a full or chunked record. A nil image is null;
// chunked, when not nil, is the value of the "chunked" field.
func (e *Encoder) appendEnvelope(dst []byte, typ string, row *compactRow, before, after, chunked []byte) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","op":"`...)
	dst = append(dst, row.op)
	dst = append(dst, `","before":`...)
	dst = appendOrNull(dst, before)
	dst = append(dst, `,"after":`...)
	dst = appendOrNull(dst, after)
	if chunked != nil {
		dst = append(dst, `,"chunked":`...)
		dst = append(dst, chunked...)
	}
	dst = append(dst, `,"source":`...)
	dst = append(dst, e.srcHead...)
	dst = append(dst, e.relNames(row.rel).source...)
	dst = append(dst, e.srcTail...)
	return append(dst, e.procTail...)
}

func appendOrNull(dst, v []byte) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	return append(dst, v...)
}

// appendChunkRef appends {"chunk_id":"…","total_fragments":N,"crc32c":"…"}.
func appendChunkRef(dst []byte, id string, total int, crc uint32) []byte {
	dst = append(dst, `{"chunk_id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","total_fragments":`...)
	dst = strconv.AppendInt(dst, int64(total), 10)
	dst = append(dst, `,"crc32c":"`...)
	dst = strconv.AppendUint(dst, uint64(crc), 10)
	return append(dst, `"}`...)
}
