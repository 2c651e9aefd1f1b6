package record

import (
	"container/list"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
	"time"
)

// Reasons a chunked record could not be rebuilt. ChunkError wraps one of
// them, so callers test with errors.Is and read the fields with errors.As.
var (
	// ErrChunkCorrupt: the fragments do not match the main record (CRC-32C
	// mismatch, an index beyond total_fragments, or text that is not a JSON
	// image).
	ErrChunkCorrupt = errors.New("corrupt")
	// ErrChunkIncomplete: Expire found the chunk still missing fragments or
	// its main record.
	ErrChunkIncomplete = errors.New("incomplete")
	// ErrChunkEvicted: the chunk was dropped to stay within the memory
	// bounds.
	ErrChunkEvicted = errors.New("evicted")
)

// maxListedMissing caps ChunkError.Missing so an error about a chunk of a
// million fragments stays a readable line.
const maxListedMissing = 64

// ChunkError reports a chunked record that Reassembler gave up on. The
// record's change is lost to this consumer until the stream redelivers it,
// so callers must surface it, not log and continue.
type ChunkError struct {
	ChunkID string
	Reason  error
	// Main is the chunked main record, or nil if it never arrived.
	Main *Message
	// TotalFragments is 0 while the main record is unknown.
	TotalFragments int
	// Held is how many distinct fragments had arrived.
	Held int
	// Missing lists up to 64 absent indexes, ascending; MissingCount is the
	// full count. Both are zero when TotalFragments is unknown.
	Missing      []int
	MissingCount int
	// Detail says more about ErrChunkCorrupt.
	Detail string
}

func (e *ChunkError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "chunk %s", e.ChunkID)
	if e.Main != nil {
		fmt.Fprintf(&b, " (%s.%s op %q source.ts_ns %d)", e.Main.Source.Schema, e.Main.Source.Table, e.Main.Op, e.Main.Source.TsNs)
	}
	fmt.Fprintf(&b, ": %v", e.Reason)
	switch {
	case e.Detail != "":
		fmt.Fprintf(&b, ": %s", e.Detail)
	case e.TotalFragments == 0:
		fmt.Fprintf(&b, ": main record not received, %d fragments held", e.Held)
	case e.MissingCount > 0:
		fmt.Fprintf(&b, ": missing fragments %v", e.Missing)
		if e.MissingCount > len(e.Missing) {
			fmt.Fprintf(&b, " and %d more", e.MissingCount-len(e.Missing))
		}
		fmt.Fprintf(&b, " of %d", e.TotalFragments)
	}
	return b.String()
}

func (e *ChunkError) Unwrap() error { return e.Reason }

// ChunkErrors flattens an error from Reassembler.Add into its ChunkErrors.
func ChunkErrors(err error) []*ChunkError {
	var out []*ChunkError
	var walk func(error)
	walk = func(err error) {
		if ce, ok := err.(*ChunkError); ok {
			out = append(out, ce)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}

// ReassemblerConfig bounds a Reassembler. Zero fields take the defaults.
type ReassemblerConfig struct {
	// MaxBytes bounds the fragment data and pending main records held
	// (default 64 MiB). Set it above the largest record you expect, or that
	// record can never be rebuilt.
	MaxBytes int64
	// MaxPendingChunks bounds the chunk ids held at once (default 1024).
	MaxPendingChunks int
	// MaxRemembered is how many completed chunk ids are remembered so that
	// redelivered fragments and main records of an already emitted record
	// are dropped instead of waiting forever (default 4096).
	MaxRemembered int
	// Now stamps arrivals for Expire (default time.Now).
	Now func() time.Time
}

// Reassembler rebuilds chunked records (docs/records.md#chunking) from a main record and
// fragments that arrive in any order, on any shard, interleaved with other
// chunks and duplicated. It is safe for concurrent use.
//
// Memory is bounded: past MaxBytes or MaxPendingChunks the oldest pending
// chunk is evicted and reported. Fragments whose main record is lost, or a
// main record whose fragments are, stay until Expire reports them.
type Reassembler struct {
	mu      sync.Mutex
	cfg     ReassemblerConfig
	chunks  map[string]*pendingChunk
	order   *list.List // *pendingChunk by first arrival, oldest first
	bytes   int64
	done    map[string]*list.Element
	doneLRU *list.List // chunk ids, most recently completed last
	stats   ReassemblerStats
}

// ReassemblerStats counts what a Reassembler did, for metrics.
type ReassemblerStats struct {
	PendingChunks int
	PendingBytes  int64
	Completed     uint64
	Duplicates    uint64
	Corrupt       uint64
	Evicted       uint64
	Expired       uint64
}

type pendingChunk struct {
	id      string
	arrived time.Time
	elem    *list.Element
	total   int // 0 until the main record arrives
	crc     uint32
	frags   map[int]string
	size    int64
	main    *pendingMain
}

type pendingMain struct {
	msg    *Message
	size   int64
	chunks []*pendingChunk // the message's before then after chunk
}

// Rough per-entry overheads so that many tiny fragments still count
// against MaxBytes.
const (
	chunkOverhead    = 128
	fragmentOverhead = 48
	mainOverhead     = 256
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewReassembler returns an empty Reassembler.
func NewReassembler(cfg ReassemblerConfig) *Reassembler {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 64 << 20
	}
	if cfg.MaxPendingChunks <= 0 {
		cfg.MaxPendingChunks = 1024
	}
	if cfg.MaxRemembered <= 0 {
		cfg.MaxRemembered = 4096
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reassembler{
		cfg:     cfg,
		chunks:  make(map[string]*pendingChunk),
		order:   list.New(),
		done:    make(map[string]*list.Element),
		doneLRU: list.New(),
	}
}

// Add feeds one decoded message. It returns a MessageFull when m completes
// a record (a full message completes itself and is returned unchanged), nil
// while more pieces are needed or when m is a duplicate of a record already
// returned. A non-nil error is a *ChunkError, or several joined (see
// ChunkErrors): the record it names was dropped. Add never returns a
// message and an error together.
func (r *Reassembler) Add(m *Message) (*Message, error) {
	if m == nil {
		return nil, errors.New("reassemble: nil message")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out *Message
	var errs []error
	switch m.Type {
	case MessageFull:
		return m, nil
	case MessageChunked:
		out, errs = r.addMain(m)
	case MessageFragment:
		out, errs = r.addFragment(m)
	default:
		return nil, fmt.Errorf("reassemble: message type %q", m.Type)
	}
	errs = append(errs, r.enforceBounds()...)
	return out, errors.Join(errs...)
}

func (r *Reassembler) addMain(m *Message) (*Message, []error) {
	refs := chunkRefs(m)
	for _, ref := range refs {
		if _, ok := r.done[ref.ChunkID]; ok {
			r.stats.Duplicates++
			return nil, nil
		}
		if c := r.chunks[ref.ChunkID]; c != nil && c.main != nil {
			// Redelivered main record, or another record claiming the same
			// chunk id; chunk ids are stable per image, so keep the first.
			r.stats.Duplicates++
			return nil, nil
		}
	}
	pm := &pendingMain{msg: m, size: mainSize(m)}
	r.bytes += pm.size
	for _, ref := range refs {
		c := r.chunk(ref.ChunkID)
		c.total, c.crc, c.main = ref.TotalFragments, ref.CRC32C, pm
		pm.chunks = append(pm.chunks, c)
	}
	for _, c := range pm.chunks {
		for idx := range c.frags {
			if idx >= c.total {
				return nil, []error{r.fail(c, ErrChunkCorrupt, fmt.Sprintf("fragment index %d beyond total_fragments %d", idx, c.total))}
			}
		}
	}
	return r.tryComplete(pm)
}

func (r *Reassembler) addFragment(m *Message) (*Message, []error) {
	if _, ok := r.done[m.ChunkID]; ok {
		r.stats.Duplicates++
		return nil, nil
	}
	c := r.chunk(m.ChunkID)
	if c.total > 0 && m.Index >= c.total {
		return nil, []error{r.fail(c, ErrChunkCorrupt, fmt.Sprintf("fragment index %d beyond total_fragments %d", m.Index, c.total))}
	}
	if _, dup := c.frags[m.Index]; dup {
		// At-least-once delivery; the CRC check catches a differing copy
		// when it was the one kept.
		r.stats.Duplicates++
		return nil, nil
	}
	c.frags[m.Index] = m.Data
	size := int64(len(m.Data) + fragmentOverhead)
	c.size += size
	r.bytes += size
	if c.main == nil {
		return nil, nil
	}
	return r.tryComplete(c.main)
}

// chunk returns the pending chunk with this id, creating it.
func (r *Reassembler) chunk(id string) *pendingChunk {
	if c := r.chunks[id]; c != nil {
		return c
	}
	c := &pendingChunk{id: id, arrived: r.cfg.Now(), frags: make(map[int]string), size: int64(chunkOverhead + len(id))}
	c.elem = r.order.PushBack(c)
	r.chunks[id] = c
	r.bytes += c.size
	return c
}

func (r *Reassembler) tryComplete(pm *pendingMain) (*Message, []error) {
	for _, c := range pm.chunks {
		if len(c.frags) < c.total {
			return nil, nil
		}
	}
	full := *pm.msg
	full.Type = MessageFull
	full.ChunkedBefore, full.ChunkedAfter = nil, nil
	for _, c := range pm.chunks {
		img, detail := c.image()
		if detail != "" {
			return nil, []error{r.fail(c, ErrChunkCorrupt, detail)}
		}
		if pm.msg.ChunkedBefore != nil && c.id == pm.msg.ChunkedBefore.ChunkID {
			full.Before = img
		} else {
			full.After = img
		}
	}
	if err := checkImages(&full); err != nil {
		return nil, []error{r.fail(pm.chunks[0], ErrChunkCorrupt, err.Error())}
	}
	for _, c := range pm.chunks {
		r.remember(c.id)
	}
	r.drop(pm.chunks[0])
	r.stats.Completed++
	return &full, nil
}

// image joins, checks and parses a complete chunk. A non-empty detail says
// why the text is not the image the main record promised.
func (c *pendingChunk) image() (RowImage, string) {
	var b strings.Builder
	for i := 0; i < c.total; i++ {
		b.WriteString(c.frags[i])
	}
	text := b.String()
	if got := crc32.Checksum([]byte(text), castagnoli); got != c.crc {
		return nil, fmt.Sprintf("crc32c of %d reassembled bytes is %d, main record says %d", len(text), got, c.crc)
	}
	img, err := parseImage([]byte(text))
	if err != nil {
		return nil, fmt.Sprintf("reassembled text is not an image: %v", err)
	}
	return img, ""
}

// fail drops c's whole record and describes why. Failed ids are not
// remembered: a replay of the record must be able to rebuild it.
func (r *Reassembler) fail(c *pendingChunk, reason error, detail string) *ChunkError {
	e := c.describe(reason)
	e.Detail = detail
	switch reason {
	case ErrChunkCorrupt:
		r.stats.Corrupt++
	case ErrChunkEvicted:
		r.stats.Evicted++
	case ErrChunkIncomplete:
		r.stats.Expired++
	}
	r.drop(c)
	return e
}

func (c *pendingChunk) describe(reason error) *ChunkError {
	e := &ChunkError{ChunkID: c.id, Reason: reason, TotalFragments: c.total, Held: len(c.frags)}
	if c.main != nil {
		e.Main = c.main.msg
	}
	for i := 0; i < c.total; i++ {
		if _, ok := c.frags[i]; ok {
			continue
		}
		e.MissingCount++
		if len(e.Missing) < maxListedMissing {
			e.Missing = append(e.Missing, i)
		}
	}
	return e
}

// drop forgets c and, if its main record arrived, the whole record.
func (r *Reassembler) drop(c *pendingChunk) {
	group := []*pendingChunk{c}
	if c.main != nil {
		group = c.main.chunks
		r.bytes -= c.main.size
	}
	for _, g := range group {
		if r.chunks[g.id] != g {
			continue
		}
		delete(r.chunks, g.id)
		r.order.Remove(g.elem)
		r.bytes -= g.size
	}
}

func (r *Reassembler) remember(id string) {
	if e, ok := r.done[id]; ok {
		r.doneLRU.MoveToBack(e)
		return
	}
	r.done[id] = r.doneLRU.PushBack(id)
	for r.doneLRU.Len() > r.cfg.MaxRemembered {
		oldest := r.doneLRU.Front()
		delete(r.done, oldest.Value.(string))
		r.doneLRU.Remove(oldest)
	}
}

func (r *Reassembler) enforceBounds() []error {
	var errs []error
	for r.order.Len() > 0 && (r.bytes > r.cfg.MaxBytes || len(r.chunks) > r.cfg.MaxPendingChunks) {
		oldest := r.order.Front().Value.(*pendingChunk)
		errs = append(errs, r.fail(oldest, ErrChunkEvicted,
			fmt.Sprintf("over the bound of %d bytes or %d pending chunks", r.cfg.MaxBytes, r.cfg.MaxPendingChunks)))
	}
	return errs
}

// Expire drops every pending chunk whose first piece arrived before cutoff
// and reports each one, with the fragment indexes still missing. Call it
// periodically with now minus the longest delay you tolerate between a
// record's pieces.
func (r *Reassembler) Expire(cutoff time.Time) []*ChunkError {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*ChunkError
	for r.order.Len() > 0 {
		oldest := r.order.Front().Value.(*pendingChunk)
		if !oldest.arrived.Before(cutoff) {
			break
		}
		out = append(out, r.fail(oldest, ErrChunkIncomplete, ""))
	}
	return out
}

// Stats reports current occupancy and lifetime counts.
func (r *Reassembler) Stats() ReassemblerStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.PendingChunks, s.PendingBytes = len(r.chunks), r.bytes
	return s
}

func chunkRefs(m *Message) []*ChunkedImage {
	var refs []*ChunkedImage
	if m.ChunkedBefore != nil {
		refs = append(refs, m.ChunkedBefore)
	}
	if m.ChunkedAfter != nil {
		refs = append(refs, m.ChunkedAfter)
	}
	return refs
}

func mainSize(m *Message) int64 {
	n := int64(mainOverhead)
	for _, img := range []RowImage{m.Before, m.After} {
		for _, c := range img {
			n += int64(len(c.Name) + len(c.Value) + 48)
		}
	}
	return n
}
