package atrest

// SpillStore keeps the runs of spilled transactions (record.RunStore) in
// this package's encrypted files, whose data keys KMS wraps under the
// cluster key, or an in-memory key without a cluster key. Files are never
// synced (a crash replays their contents from the slot) and each is
// deleted once read back or abandoned; Sweep removes what a crash left.

import (
	"errors"
	"fmt"
	"os"

	"github.com/cdcd-dev/cdcd/record"
)

// SpillStore creates runs as encrypted files in Dir.
type SpillStore struct {
	dir string
	k   *Keyring
}

var _ record.RunStore = (*SpillStore)(nil)

// NewSpillStore returns a SpillStore in dir, creating the directory (mode 0700) if
// needed. A nil keyring gets an ephemeral one: the files can then be read
// only by this process.
func NewSpillStore(dir string, k *Keyring) (*SpillStore, error) {
	if dir == "" {
		return nil, errors.New("spill store: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spill store: %w", err)
	}
	if k == nil {
		k = NewEphemeral()
	}
	return &SpillStore{dir: dir, k: k}, nil
}

// Dir is where the files go.
func (s *SpillStore) Dir() string { return s.dir }

// Create implements record.RunStore.
func (s *SpillStore) Create() (record.RunWriter, error) {
	w, err := Create(s.dir, s.k)
	if err != nil {
		return nil, err
	}
	return &spillWriter{w: w, k: s.k}, nil
}

type spillWriter struct {
	w *Writer
	k *Keyring
}

func (w *spillWriter) Write(p []byte) error { return w.w.Write(p) }

func (w *spillWriter) Finish() (record.RunReader, error) {
	if err := w.w.Close(); err != nil {
		_ = w.w.Remove()
		return nil, err
	}
	r, err := Open(w.w.Path(), w.k)
	if err != nil {
		_ = w.w.Remove()
		return nil, err
	}
	return r, nil
}

func (w *spillWriter) Remove() error { return w.w.Remove() }
