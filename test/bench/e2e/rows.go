package main

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"sync"
	"time"
)

// rowCheck marks the row id of each record the fake Kinesis accepts, so a
// lost or duplicated row shows. It keeps one bit a row, not the records:
// the benchmark's transactions are larger than it should hold.
type rowCheck struct {
	rows int64

	buf []byte // onRaw's

	mu   sync.Mutex
	seen []uint64 // bitset of row ids received
	dups int64
	bad  int64
}

func newRowCheck(rows int64) *rowCheck {
	return &rowCheck{rows: rows, seen: make([]uint64, rows/64+1)}
}

var idField = []byte(`"after":{"id":`)

// check marks the row id of one record.
func (c *rowCheck) check(data []byte) {
	i := bytes.Index(data, idField)
	if i < 0 {
		c.mu.Lock()
		c.bad++
		c.mu.Unlock()
		return
	}
	rest := data[i+len(idField):]
	end := bytes.IndexByte(rest, ',')
	id, err := strconv.ParseInt(string(rest[:max(end, 0)]), 10, 64)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil || id < 1 || id > c.rows {
		c.bad++
		return
	}
	word, bit := (id-1)/64, uint64(1)<<((id-1)%64)
	if c.seen[word]&bit != 0 {
		c.dups++
	}
	c.seen[word] |= bit
}

// missing counts row ids never received, and reports duplicates and records
// that were not one of the rows.
func (c *rowCheck) missing() (missing, dups, bad int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := int64(0); id < c.rows; id++ {
		if c.seen[id/64]&(1<<(id%64)) == 0 {
			missing++
		}
	}
	return missing, c.dups, c.bad
}

// onRaw is the fake's OnRaw hook: it decodes each record and checks it.
// The fake serialises its hooks, so one buffer serves.
func (c *rowCheck) onRaw(_ time.Time, b64 []byte) {
	var err error
	if c.buf, err = base64.StdEncoding.AppendDecode(c.buf[:0], b64); err != nil {
		c.mu.Lock()
		c.bad++
		c.mu.Unlock()
		return
	}
	c.check(c.buf)
}
