// Package spill keeps the runs of spilled transactions (record.RunStore) in
// files encrypted under the cluster key: state/atrest's AES-256-GCM files,
// whose data keys KMS wraps, or an in-memory key without a cluster key.
// Files are never synced (a crash replays their contents from the slot)
// and each is deleted once read back or abandoned; Sweep removes what a
// crash left.
package spill

import (
	"errors"
	"fmt"
	"os"

	"github.com/cdcd-dev/cdcd/record"
	"github.com/cdcd-dev/cdcd/state/atrest"
)

// Store creates runs as encrypted files in Dir.
type Store struct {
	dir string
	k   *atrest.Keyring
}

var _ record.RunStore = (*Store)(nil)

// New returns a Store in dir, creating the directory (mode 0700) if
// needed. A nil keyring gets an ephemeral one: the files can then be read
// only by this process.
func New(dir string, k *atrest.Keyring) (*Store, error) {
	if dir == "" {
		return nil, errors.New("spill: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spill: %w", err)
	}
	if k == nil {
		k = atrest.NewEphemeral()
	}
	return &Store{dir: dir, k: k}, nil
}

// Dir is where the files go.
func (s *Store) Dir() string { return s.dir }

// Sweep deletes the spill files an earlier process left in dir; run it
// before the first Store in dir is used.
func Sweep(dir string) (int, error) { return atrest.Sweep(dir) }

// Create implements record.RunStore.
func (s *Store) Create() (record.RunWriter, error) {
	w, err := atrest.Create(s.dir, s.k)
	if err != nil {
		return nil, err
	}
	return &writer{w: w, k: s.k}, nil
}

type writer struct {
	w *atrest.Writer
	k *atrest.Keyring
}

func (w *writer) Write(p []byte) error { return w.w.Write(p) }

func (w *writer) Finish() (record.RunReader, error) {
	if err := w.w.Close(); err != nil {
		_ = w.w.Remove()
		return nil, err
	}
	r, err := atrest.Open(w.w.Path(), w.k)
	if err != nil {
		_ = w.w.Remove()
		return nil, err
	}
	return r, nil
}

func (w *writer) Remove() error { return w.w.Remove() }
