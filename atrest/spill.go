package atrest

// SpillStore keeps the runs of spilled transactions (record.RunStore) in
// this package's encrypted files, whose data keys KMS wraps under the
// cluster key, or an in-memory key without a cluster key. Files are never
// synced (a crash replays their contents from the slot) and each is
// deleted once read back or abandoned; Sweep removes what a crash left.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/record"
)

// SpillOptions bound a SpillStore.
type SpillOptions struct {
	// MaxBytes caps the data held in the store's files at once: the
	// entries written, before the framing and encryption that add about
	// 0.03% (docs/delivery.md#spill-cap). Zero means no cap but the
	// filesystem's free space.
	MaxBytes int64
	// Reporter, when set, receives codes.SpillFull each time a write is
	// refused for want of space (the cap, or a full filesystem), and the
	// recovery of codes.OwnerSpill once a run is finished after that:
	// the store had room for a whole run again.
	Reporter Reporter
}

// SpillStore creates runs as encrypted files in Dir. Writes that find no
// room fail with an error matching record.ErrSpillFull: past MaxBytes
// before anything is written, so the run stays usable, and on a full
// filesystem (ENOSPC, EDQUOT) after, so the run must be removed.
type SpillStore struct {
	dir  string
	k    *Keyring
	opts SpillOptions

	mu   sync.Mutex
	used int64 // bytes held by live runs
	full bool  // a refusal is outstanding
}

var _ record.RunStore = (*SpillStore)(nil)

// NewSpillStore returns a SpillStore in dir, creating the directory (mode 0700) if
// needed. A nil keyring gets an ephemeral one: the files can then be read
// only by this process.
func NewSpillStore(dir string, k *Keyring, opts SpillOptions) (*SpillStore, error) {
	if dir == "" {
		return nil, errors.New("spill store: empty directory")
	}
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("spill store: negative cap %d", opts.MaxBytes)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spill store: %w", err)
	}
	if k == nil {
		k = NewEphemeral()
	}
	return &SpillStore{dir: dir, k: k, opts: opts}, nil
}

// Dir is where the files go.
func (s *SpillStore) Dir() string { return s.dir }

// Create implements record.RunStore.
func (s *SpillStore) Create() (record.RunWriter, error) {
	w, err := Create(s.dir, s.k)
	if err != nil {
		return nil, s.noSpace(err)
	}
	return &spillWriter{w: w, s: s}, nil
}

// Used is how many bytes of entries the store's live runs hold.
func (s *SpillStore) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// reserve counts n more bytes, or refuses them past the cap.
func (s *SpillStore) reserve(n int64) error {
	s.mu.Lock()
	used, limit := s.used, s.opts.MaxBytes
	ok := limit == 0 || used+n <= limit
	if ok {
		s.used += n
	}
	s.mu.Unlock()
	if ok {
		return nil
	}
	return s.refuse(fmt.Errorf("%w: spill directory %s holds %d bytes and is at its cap, spill_max_bytes = %d; "+
		"transactions larger than memory_budget wait until it has room: raise spill_max_bytes, or free what holds it (a Kinesis outage keeps spilled transactions)",
		record.ErrSpillFull, s.dir, used, limit))
}

func (s *SpillStore) release(n int64) {
	s.mu.Lock()
	s.used -= n
	s.mu.Unlock()
}

// noSpace turns a write error of a full filesystem into a refusal.
func (s *SpillStore) noSpace(err error) error {
	if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EDQUOT) {
		return err
	}
	return s.refuse(fmt.Errorf("%w: spill directory %s: its filesystem is full (%w); free space there, or set spill_max_bytes below the space it has",
		record.ErrSpillFull, s.dir, err))
}

// refuse reports a refusal and returns it.
func (s *SpillStore) refuse(err error) error {
	s.mu.Lock()
	s.full = true
	s.mu.Unlock()
	if s.opts.Reporter != nil {
		_ = s.opts.Reporter.Fault(codes.SpillFull, err)
	}
	return err
}

// finished reports the recovery from a refusal once a whole run fits.
func (s *SpillStore) finished() {
	s.mu.Lock()
	was := s.full
	s.full = false
	s.mu.Unlock()
	if was && s.opts.Reporter != nil {
		_ = s.opts.Reporter.Recover(codes.OwnerSpill)
	}
}

// spillWriter counts what it writes against the store's cap until the run
// is removed or, once read back, closed.
type spillWriter struct {
	w *Writer
	s *SpillStore
	n int64 // bytes reserved
}

// Write implements record.RunWriter. An entry costs its bytes and its
// length prefix.
func (w *spillWriter) Write(p []byte) error {
	n := int64(len(p) + binary.MaxVarintLen32)
	if err := w.s.reserve(n); err != nil {
		return err
	}
	w.n += n
	if err := w.w.Write(p); err != nil {
		return w.s.noSpace(err)
	}
	return nil
}

func (w *spillWriter) Finish() (record.RunReader, error) {
	if err := w.w.Close(); err != nil {
		_ = w.Remove()
		return nil, w.s.noSpace(err)
	}
	r, err := Open(w.w.Path(), w.s.k)
	if err != nil {
		_ = w.Remove()
		return nil, err
	}
	w.s.finished()
	return &spillReader{Reader: r, s: w.s, n: w.n}, nil
}

func (w *spillWriter) Remove() error {
	w.s.release(w.n)
	w.n = 0
	return w.w.Remove()
}

// spillReader releases its run's bytes when closed, which deletes it.
type spillReader struct {
	*Reader
	s *SpillStore
	n int64
}

func (r *spillReader) Close() error {
	r.s.release(r.n)
	r.n = 0
	return r.Reader.Close()
}
