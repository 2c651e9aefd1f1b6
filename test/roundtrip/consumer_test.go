package roundtrip

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/record"
)

// decodeShards decodes every record once, for the consumers and checks
// below to share (a Reassembler does not modify what it is given).
func decodeShards(shards [][][]byte) (out [][]*record.Message, aggregates int, err error) {
	out = make([][]*record.Message, len(shards))
	for i, s := range shards {
		for _, kinesisData := range s {
			if record.IsKPLAggregate(kinesisData) {
				aggregates++
			}
			inner, err := record.Deaggregate(kinesisData)
			if err != nil {
				return nil, 0, fmt.Errorf("shard %d: %w", i, err)
			}
			for _, data := range inner {
				m, err := record.Decode(data)
				if err != nil {
					return nil, 0, fmt.Errorf("shard %d: %w", i, err)
				}
				out[i] = append(out[i], m)
			}
		}
	}
	return out, aggregates, nil
}

// interleave merges the shards' records in a seeded random order that
// keeps each shard's order, as a consumer reading every shard at once may
// see them.
func interleave[T any](r *rand.Rand, shards [][]T) []T {
	pos := make([]int, len(shards))
	var out []T
	for {
		var open []int
		for i, s := range shards {
			if pos[i] < len(s) {
				open = append(open, i)
			}
		}
		if len(open) == 0 {
			return out
		}
		i := pick(r, open)
		n := min(1+r.Intn(20), len(shards[i])-pos[i])
		out = append(out, shards[i][pos[i]:pos[i]+n]...)
		pos[i] += n
	}
}

// pkColumns maps "schema.table" to its key columns.
func pkColumns() map[string][]string {
	m := map[string][]string{}
	for _, t := range tables {
		m[t.name] = t.pk
	}
	return m
}

// rowID names one row of the preview consumer's state.
type rowID struct {
	schema, table string
	key           string // canonicalKey of the key columns
}

// canonicalKey is the key columns of img as one JSON object with sorted
// names and values re-encoded, so equal values give equal text however
// their JSON was escaped.
func canonicalKey(img record.RowImage, pk []string) (string, error) {
	obj := map[string]any{}
	for _, name := range pk {
		raw, ok := img.Get(name)
		if !ok {
			return "", fmt.Errorf("image has no key column %q", name)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return "", fmt.Errorf("key column %q: %w", name, err)
		}
		obj[name] = v
	}
	b, err := json.Marshal(obj) // map keys are sorted
	return string(b), err
}

// previewRow is the state the preview consumer keeps per row.
type previewRow struct {
	tsNs    int64
	deleted bool
	after   record.RowImage
}

// preview is a consumer that knows only DSQL's preview contract: "d"
// deletes the row its before image names, and any other op, whatever it
// is, upserts its after image. It keeps the last writer by source.ts_ns,
// deletes included, so that records in any order converge. It uses the
// record package only to decode and reassemble.
type preview struct {
	pk   map[string][]string
	re   *record.Reassembler
	rows map[rowID]*previewRow
	ops  map[string]int
}

func newPreview() *preview {
	return &preview{
		pk:   pkColumns(),
		re:   record.NewReassembler(record.ReassemblerConfig{MaxBytes: 1 << 30}),
		rows: map[rowID]*previewRow{},
		ops:  map[string]int{},
	}
}

// add takes one decoded Kinesis record and returns the full message it
// completed, if any.
func (p *preview) add(m *record.Message) (*record.Message, error) {
	full, err := p.re.Add(m)
	if err != nil || full == nil {
		return nil, err
	}
	s := full.Source
	pk := p.pk[s.Schema+"."+s.Table]
	if pk == nil {
		return nil, fmt.Errorf("record for table %s.%s, which the workload does not have", s.Schema, s.Table)
	}
	p.ops[full.Op]++
	img := full.After
	if full.Op == "d" {
		img = full.Before
		// docs/records.md#keys: a delete's before holds the key columns only.
		if got := sortedNames(img); strings.Join(got, ",") != strings.Join(sortedCopy(pk), ",") {
			return nil, fmt.Errorf("delete on %s.%s at ts_ns %d: before has columns %v, want the key %v", s.Schema, s.Table, s.TsNs, got, pk)
		}
	}
	key, err := canonicalKey(img, pk)
	if err != nil {
		return nil, fmt.Errorf("op %q on %s.%s at ts_ns %d: %w", full.Op, s.Schema, s.Table, s.TsNs, err)
	}
	id := rowID{s.Schema, s.Table, key}
	if cur := p.rows[id]; cur != nil && cur.tsNs >= s.TsNs {
		return full, nil // older, or a duplicate of what it holds
	}
	if full.Op == "d" {
		p.rows[id] = &previewRow{tsNs: s.TsNs, deleted: true}
	} else {
		p.rows[id] = &previewRow{tsNs: s.TsNs, after: full.After}
	}
	return full, nil
}

// live returns the rows that exist, by id.
func (p *preview) live() map[rowID]record.RowImage {
	out := map[rowID]record.RowImage{}
	for id, r := range p.rows {
		if !r.deleted {
			out[id] = r.after
		}
	}
	return out
}

func sortedNames(img record.RowImage) []string { return sortedCopy(img.Names()) }

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// recordChecks are properties (docs/records.md) of the stream as a whole, checked on
// the records of every shard.
type recordChecks struct {
	pk map[string][]string
	// versions holds, per (ts_ns, row), the first record seen: any other
	// record of the same row and transaction must be its duplicate
	// (docs/records.md#compaction: at most one record per row per transaction; docs/records.md#identity: a
	// duplicate is identical but for ts_ms, ts_ns).
	versions map[versionKey]string
	problems []string
	// chunked counts the chunked records rebuilt.
	chunked uint64
}

type versionKey struct {
	tsNs int64
	row  rowID
}

func (c *recordChecks) problem(format string, args ...any) {
	if len(c.problems) < 20 {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
	}
}

// check reads every shard. Fragments are all fed to a Reassembler first,
// so that each chunked main record is complete where it stands in its
// shard: the checks then see main records in shard order. With rowOrder,
// it also checks docs/records.md#ordering's ROW ordering: all records of one row are on
// one shard, in commit order.
func (c *recordChecks) check(shards [][]*record.Message, rowOrder bool) error {
	re := record.NewReassembler(record.ReassemblerConfig{MaxBytes: 1 << 30, MaxPendingChunks: 1 << 16})
	for _, s := range shards {
		for _, m := range s {
			if m.Type == record.MessageFragment {
				if _, err := re.Add(m); err != nil {
					return err
				}
			}
		}
	}
	shardOf := map[rowID]int{}
	lastTs := map[rowID]int64{}
	for i, s := range shards {
		for _, m := range s {
			if m.Type == record.MessageFragment {
				continue
			}
			full, err := re.Add(m)
			if err != nil {
				return err
			}
			if full == nil {
				continue // a redelivered chunked record, already rebuilt
			}
			src := full.Source
			img := full.After
			if full.Op == "d" {
				img = full.Before
			}
			key, err := canonicalKey(img, c.pk[src.Schema+"."+src.Table])
			if err != nil {
				return err
			}
			id := rowID{src.Schema, src.Table, key}
			sig := signature(full)
			vk := versionKey{src.TsNs, id}
			if prev, ok := c.versions[vk]; !ok {
				c.versions[vk] = sig
			} else if prev != sig {
				c.problem("two different records for row %s.%s %s in one transaction (ts_ns %d), op %s and op %s",
					src.Schema, src.Table, key, src.TsNs, prev[:1], sig[:1])
			}
			if !rowOrder {
				continue
			}
			if j, ok := shardOf[id]; ok && j != i {
				c.problem("ROW ordering: records of row %s.%s %s on shards %d and %d", src.Schema, src.Table, key, j, i)
			}
			shardOf[id] = i
			if src.TsNs < lastTs[id] {
				c.problem("ROW ordering: row %s.%s %s on shard %d: ts_ns %d after %d", src.Schema, src.Table, key, i, src.TsNs, lastTs[id])
			}
			lastTs[id] = max(lastTs[id], src.TsNs)
		}
	}
	st := re.Stats()
	if st.PendingChunks > 0 {
		c.problem("%d chunked records never completed", st.PendingChunks)
	}
	c.chunked = st.Completed
	return nil
}

// signature identifies a full message without its processing time: its
// op, then a hash of its images and source.
func signature(m *record.Message) string {
	h := sha256.New()
	for _, img := range []record.RowImage{m.Before, m.After} {
		fmt.Fprintf(h, "%d:", len(img))
		for _, c := range img {
			fmt.Fprintf(h, "%q=%d:", c.Name, len(c.Value))
			h.Write(c.Value)
		}
	}
	s := m.Source
	fmt.Fprintf(h, "%q", []any{s.Version, s.TsMs, s.TsNs, s.TxID, s.Schema, s.Table, s.DB, s.Cluster, s.LSN})
	return m.Op + " " + hex.EncodeToString(h.Sum(nil))
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("… (%d bytes)", len(s))
}

// fullApplier fills a MemStore through record.Applier, the library's own
// consumer, for comparison with the preview consumer.
func fullApplier() (*record.Applier, *record.MemStore) {
	pk := pkColumns()
	store := record.NewMemStore(0)
	return &record.Applier{Store: store, KeyColumns: func(schema, table string) []string {
		return pk[schema+"."+table]
	}}, store
}

// comparePreview lists the differences between the preview consumer's
// live rows and the MemStore's.
func comparePreview(p *preview, store *record.MemStore) ([]string, error) {
	var diffs []string
	want := p.live()
	seen := map[rowID]bool{}
	for _, r := range store.Rows() {
		key, err := canonicalKey(r.Row, p.pk[r.Key.Schema+"."+r.Key.Table])
		if err != nil {
			return nil, err
		}
		id := rowID{r.Key.Schema, r.Key.Table, key}
		seen[id] = true
		got, ok := want[id]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s.%s %s: in record.Applier's store, not in the preview consumer's", id.schema, id.table, key))
			continue
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(r.Row)
		if !bytes.Equal(a, b) {
			diffs = append(diffs, fmt.Sprintf("%s.%s %s: preview %s, applier %s", id.schema, id.table, key, cut(string(a), 300), cut(string(b), 300)))
		}
	}
	for id := range want {
		if !seen[id] {
			diffs = append(diffs, fmt.Sprintf("%s.%s %s: in the preview consumer's rows, not in record.Applier's store", id.schema, id.table, id.key))
		}
	}
	sort.Strings(diffs)
	return diffs, nil
}

// asMessages turns the preview consumer's live rows into full insert
// messages, to apply them to an empty replica with pgapply.
func asMessages(p *preview) []*record.Message {
	var out []*record.Message
	for id, row := range p.live() {
		out = append(out, &record.Message{
			Type: record.MessageFull, Op: "c", After: row,
			Source: record.SourceInfo{Version: "1.0", TsNs: p.rows[id].tsNs, Schema: id.schema, Table: id.table},
			TsNs:   time.Now().UnixNano(),
		})
	}
	return out
}
