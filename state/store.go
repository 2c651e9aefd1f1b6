package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/cdcd-dev/cdcd/ident"
)

// ErrNotFound is returned for a stream the store does not hold.
var ErrNotFound = errors.New("stream not found")

// ErrCheckpointRegress is returned by SaveCheckpoint for an LSN below the
// saved one. The slot's confirmed_flush_lsn never moves back, so a lower
// checkpoint means a bug in whoever tracks delivery.
var ErrCheckpointRegress = errors.New("checkpoint moves backwards")

const (
	streamsDir = "streams"
	lockFile   = "lock"
	fileSuffix = ".json"
	// tmpMarker is in every temporary file name; Open deletes such files,
	// which are what a crash between create and rename leaves behind.
	tmpMarker = ".tmp"
)

// Store keeps one JSON file per stream under <dir>/streams, each replaced
// atomically: write a temporary file, fsync it, rename it over the old one,
// fsync the directory. A crash leaves either the old or the new file, never
// a mix. The store holds an exclusive lock on <dir>/lock so that two
// daemons never share (and corrupt) one state directory.
//
// The store caches every record it has written; it is the only writer, so
// the cache is the truth, and List and Load never touch the disk.
type Store struct {
	dir    string
	log    *slog.Logger
	unlock func() error

	// mu guards recs and writers and is never held across I/O, so readers
	// never wait for an fsync.
	mu   sync.Mutex
	recs map[string]File
	// writers serialise the writes of one stream without serialising
	// different streams' fsyncs. An entry outlives its stream: dropping it
	// could let a waiter on the old mutex and a newcomer on a new one write
	// the same file at once, and a mutex per stream ever saved is cheap.
	writers map[string]*sync.Mutex
}

// Open opens (creating if needed) the state directory dir and loads every
// stream file. A file that cannot be read or decoded fails Open: dropping
// it would forget a FAILED status or resume from the start of the slot.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sdir := filepath.Join(dir, streamsDir)
	if err := os.MkdirAll(sdir, 0o700); err != nil {
		return nil, fmt.Errorf("open state dir: %w", err)
	}
	unlock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("lock state dir %s: %w", dir, err)
	}
	s := &Store{dir: sdir, log: logger, unlock: unlock, recs: map[string]File{}, writers: map[string]*sync.Mutex{}}
	if err := s.load(); err != nil {
		_ = unlock()
		return nil, err
	}
	return s, nil
}

// Close releases the directory lock.
func (s *Store) Close() error { return s.unlock() }

func (s *Store) load() error {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("read state dir: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		path := filepath.Join(s.dir, name)
		if strings.Contains(name, tmpMarker) {
			// A torn write: the rename never happened, so the stream's
			// real file (if any) is intact and this one is garbage.
			s.log.Warn("removing leftover temporary state file", "file", path)
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("remove leftover %s: %w", path, err)
			}
			continue
		}
		if !strings.HasSuffix(name, fileSuffix) || de.IsDir() {
			continue
		}
		rec, err := readFile(path)
		if err != nil {
			return fmt.Errorf("%w: restore the file from a backup, or move it out of %s: a stream of the config file then starts again from its slot's confirmed position, one created through the API is forgotten and its slot left to drop by hand", err, s.dir)
		}
		if id := strings.TrimSuffix(name, fileSuffix); rec.Definition.StreamID != id {
			return fmt.Errorf("read %s: holds stream %q", path, rec.Definition.StreamID)
		}
		s.recs[rec.Definition.StreamID] = rec
	}
	return nil
}

func readFile(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("read %s: %w", path, err)
	}
	var rec File
	dec := json.NewDecoder(bytes.NewReader(b))
	// An unknown key is a newer cdcd's data or a hand edit gone wrong;
	// ignoring it could silently change what the stream does.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return File{}, fmt.Errorf("decode %s: %w", path, err)
	}
	if err := rec.validate(); err != nil {
		return File{}, fmt.Errorf("decode %s: %w", path, err)
	}
	return rec, nil
}

// Save writes rec, creating the stream's file if needed. The checkpoint only
// moves forward: if the store holds a later one (saved by SaveCheckpoint
// while rec's owner held an older copy), that one is kept, so a status
// change can never rewind the resume position.
func (s *Store) Save(rec File) error {
	if rec.Version == 0 {
		rec.Version = FileVersion
	}
	if err := rec.validate(); err != nil {
		return fmt.Errorf("save stream: %w", err)
	}
	id := rec.Definition.StreamID
	w := s.writer(id)
	w.Lock()
	defer w.Unlock()

	rec = rec.clone()
	s.mu.Lock()
	if cur, ok := s.recs[id]; ok && cur.Checkpoint.LSN > rec.Checkpoint.LSN {
		rec.Checkpoint = cur.Checkpoint
	}
	s.mu.Unlock()
	if err := s.write(id, &rec); err != nil {
		return err
	}
	s.mu.Lock()
	s.recs[id] = rec
	s.mu.Unlock()
	return nil
}

// SaveCheckpoint records the resume position of a saved stream. It is a
// no-op (no write, no fsync) when cp equals the saved checkpoint, so the
// daemon can call it on every flush tick; otherwise it costs one file write
// and two fsyncs.
func (s *Store) SaveCheckpoint(streamID string, cp Checkpoint) error {
	if !ident.ValidID(streamID) {
		return fmt.Errorf("save checkpoint %q: %w", streamID, ErrNotFound)
	}
	w := s.writer(streamID)
	w.Lock()
	defer w.Unlock()

	s.mu.Lock()
	rec, ok := s.recs[streamID]
	s.mu.Unlock()
	switch {
	case !ok:
		return fmt.Errorf("save checkpoint %s: %w", streamID, ErrNotFound)
	case cp == rec.Checkpoint:
		return nil
	case cp.LSN < rec.Checkpoint.LSN:
		return fmt.Errorf("save checkpoint %s: %s after %s: %w", streamID, cp, rec.Checkpoint, ErrCheckpointRegress)
	}
	// rec shares Tags and StatusReason with the cached record; both are
	// only read here, and cached records are replaced, never mutated.
	rec.Checkpoint = cp
	if err := s.write(streamID, &rec); err != nil {
		return err
	}
	s.mu.Lock()
	s.recs[streamID] = rec
	s.mu.Unlock()
	return nil
}

// Load returns the saved record of a stream, or ErrNotFound.
func (s *Store) Load(streamID string) (File, error) {
	s.mu.Lock()
	rec, ok := s.recs[streamID]
	s.mu.Unlock()
	if !ok {
		return File{}, fmt.Errorf("load %s: %w", streamID, ErrNotFound)
	}
	return rec.clone(), nil
}

// List returns every saved stream, oldest first (ties by identifier), the
// order ListStreams pages through.
func (s *Store) List() []File {
	s.mu.Lock()
	recs := make([]File, 0, len(s.recs))
	for _, rec := range s.recs {
		recs = append(recs, rec.clone())
	}
	s.mu.Unlock()
	sort.Slice(recs, func(i, j int) bool { return Less(recs[i].Definition, recs[j].Definition) })
	return recs
}

// Less orders definitions by creation time, then identifier: a stable order
// for pagination that new streams only extend.
func Less(a, b Definition) bool {
	if !a.CreationTime.Equal(b.CreationTime) {
		return a.CreationTime.Before(b.CreationTime)
	}
	return a.StreamID < b.StreamID
}

// Delete removes a stream's file, or returns ErrNotFound.
func (s *Store) Delete(streamID string) error {
	if !ident.ValidID(streamID) {
		return fmt.Errorf("delete %q: %w", streamID, ErrNotFound)
	}
	w := s.writer(streamID)
	w.Lock()
	defer w.Unlock()

	s.mu.Lock()
	_, ok := s.recs[streamID]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("delete %s: %w", streamID, ErrNotFound)
	}
	if err := os.Remove(s.path(streamID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", streamID, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("delete %s: %w", streamID, err)
	}
	s.mu.Lock()
	delete(s.recs, streamID)
	s.mu.Unlock()
	return nil
}

func (s *Store) writer(streamID string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.writers[streamID]
	if !ok {
		w = &sync.Mutex{}
		s.writers[streamID] = w
	}
	return w
}

func (s *Store) path(streamID string) string {
	return filepath.Join(s.dir, streamID+fileSuffix)
}

// write replaces the stream's file atomically and durably.
func (s *Store) write(streamID string, rec *File) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode stream %s: %w", streamID, err)
	}
	b = append(b, '\n')
	f, err := os.CreateTemp(s.dir, streamID+fileSuffix+tmpMarker+"*")
	if err != nil {
		return fmt.Errorf("write stream %s: %w", streamID, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		// Without this fsync the rename can reach the disk before the
		// data, and a power loss leaves an empty file under the real name.
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path(streamID))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write stream %s: %w", streamID, err)
	}
	// The rename lives in the directory; until the directory is synced a
	// power loss can bring the old file back.
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("write stream %s: %w", streamID, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	return nil
}
