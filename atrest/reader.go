package atrest

import (
	"bufio"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Reader reads back the records of a file that a Writer closed. It is not
// safe for concurrent use.
type Reader struct {
	f   *os.File
	br  *bufio.Reader
	k   *Keyring
	hdr [headerLen]byte

	aead      cipher.AEAD // nil before the first key block
	serial    uint32
	segments  uint64 // key blocks read
	segFrames uint64
	frames    uint64
	last      bool // the 'L' frame was read and authenticated

	ct    []byte // frame buffer, reused
	plain []byte // authenticated plaintext not yet consumed, in ct
	off   int
	err   error // sticky
}

// Open opens a spill file for reading. Close removes it: a spill file is
// read back once.
func Open(path string, k *Keyring) (*Reader, error) {
	if k == nil {
		return nil, errors.New("open spill file: nil keyring")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open spill file: %w", err)
	}
	r := &Reader{f: f, br: bufio.NewReaderSize(f, frameSize+64), k: k}
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("open spill file %s: %w: header: %v", path, ErrCorrupt, err)
	}
	if string(r.hdr[:len(magic)]) != magic {
		_ = f.Close()
		return nil, fmt.Errorf("open spill file %s: %w: not a spill file", path, ErrCorrupt)
	}
	return r, nil
}

// Next returns the next record, or io.EOF after the last one. Errors
// matching ErrCorrupt mean the file was tampered with or cut short; other
// errors come from the cluster key. The returned slice is the caller's.
func (r *Reader) Next() ([]byte, error) { return r.NextInto(nil) }

// NextInto is Next reading into buf's array when it has room, so that a
// caller done with each record before the next saves an allocation per
// record; the result then lives only until buf is used again.
func (r *Reader) NextInto(buf []byte) ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	n, err := binary.ReadUvarint((*plainStream)(r))
	if err == io.EOF {
		// Only a clean end: ReadByte reports io.EOF only after the last
		// frame authenticated and nothing followed it.
		r.err = io.EOF
		return nil, io.EOF
	}
	if err != nil {
		return nil, r.fail(err)
	}
	if n > math.MaxInt {
		return nil, r.fail(fmt.Errorf("%w: record length %d", ErrCorrupt, n))
	}
	// n was authenticated, so allocating it up front is safe.
	p := slices.Grow(buf[:0], int(n))[:n]
	if _, err := io.ReadFull((*plainStream)(r), p); err != nil {
		return nil, r.fail(err)
	}
	return p, nil
}

// Close closes and removes the file.
func (r *Reader) Close() error {
	if errors.Is(r.err, ErrClosed) {
		return nil
	}
	r.err = ErrClosed
	r.plain = nil
	cerr := r.f.Close()
	if err := os.Remove(r.f.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove spill file: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("close spill file: %w", cerr)
	}
	return nil
}

// plainStream is a Reader seen as the authenticated plaintext stream, frame
// after frame, for the record parser; its methods stay off Reader's API.
// It returns io.EOF only at a clean end of the file.
type plainStream Reader

func (s *plainStream) ReadByte() (byte, error) {
	r := (*Reader)(s)
	if err := r.fill(); err != nil {
		return 0, err
	}
	b := r.plain[r.off]
	r.off++
	return b, nil
}

func (s *plainStream) Read(p []byte) (int, error) {
	r := (*Reader)(s)
	if err := r.fill(); err != nil {
		return 0, err
	}
	n := copy(p, r.plain[r.off:])
	r.off += n
	return n, nil
}

// fill makes plaintext available, reading blocks until a frame has some.
func (r *Reader) fill() error {
	for r.off == len(r.plain) {
		if r.last {
			if _, err := r.br.ReadByte(); err != io.EOF {
				return fmt.Errorf("%w: data after the last frame", ErrCorrupt)
			}
			return io.EOF
		}
		if err := r.block(); err != nil {
			return err
		}
	}
	return nil
}

// block reads one key block or frame.
func (r *Reader) block() error {
	typ, err := r.br.ReadByte()
	if err != nil {
		return r.truncated(err, "block type")
	}
	switch typ {
	case blockKey:
		return r.keyBlock()
	case blockFrame, blockLast:
		return r.frame(typ)
	}
	return fmt.Errorf("%w: unknown block type %#x after frame %d", ErrCorrupt, typ, r.frames)
}

func (r *Reader) keyBlock() error {
	var head [6]byte
	if _, err := io.ReadFull(r.br, head[:]); err != nil {
		return r.truncated(err, "key block")
	}
	n := int(binary.BigEndian.Uint16(head[4:]))
	if n == 0 || n > maxWrapped {
		return fmt.Errorf("%w: wrapped key of %d bytes", ErrCorrupt, n)
	}
	wrapped := make([]byte, n)
	if _, err := io.ReadFull(r.br, wrapped); err != nil {
		return r.truncated(err, "wrapped key")
	}
	if r.segments > math.MaxUint32 {
		return fmt.Errorf("%w: too many segments", ErrCorrupt)
	}
	aead, err := r.k.open(wrapped)
	if err != nil {
		return err
	}
	r.aead, r.serial = aead, binary.BigEndian.Uint32(head[:4])
	r.segments++
	r.segFrames = 0
	return nil
}

func (r *Reader) frame(typ byte) error {
	if r.aead == nil {
		return fmt.Errorf("%w: frame before any key block", ErrCorrupt)
	}
	var head [4]byte
	if _, err := io.ReadFull(r.br, head[:]); err != nil {
		return r.truncated(err, "frame length")
	}
	n := int(binary.BigEndian.Uint32(head[:]))
	if n < tagLen || n > frameSize+tagLen {
		return fmt.Errorf("%w: frame %d of %d bytes", ErrCorrupt, r.frames, n)
	}
	// The buffer is reused: fill reads the next frame only after the
	// plaintext of this one, which aliases it, has been consumed.
	r.ct = slices.Grow(r.ct[:0], n)[:n]
	ct := r.ct
	if _, err := io.ReadFull(r.br, ct); err != nil {
		return r.truncated(err, "frame")
	}
	var nonce [nonceLen]byte
	var ad [adLen]byte
	frameNonce(&nonce, r.serial, r.segFrames)
	frameAD(&ad, &r.hdr, uint32(r.segments-1), r.frames, typ)
	plain, err := r.aead.Open(ct[:0], nonce[:], ct, ad[:])
	if err != nil {
		return fmt.Errorf("%w: frame %d does not authenticate (modified, moved or from another file)", ErrCorrupt, r.frames)
	}
	r.plain, r.off = plain, 0
	r.segFrames++
	r.frames++
	r.last = typ == blockLast
	return nil
}

func (r *Reader) truncated(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: truncated in %s after frame %d", ErrCorrupt, what, r.frames)
	}
	return fmt.Errorf("read spill file: %w", err)
}

// fail makes a Next error sticky. An io.EOF inside a record means the
// authenticated stream ended mid-record, which only a writer bug produces.
func (r *Reader) fail(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = fmt.Errorf("%w: stream ends inside a record", ErrCorrupt)
	}
	r.err = err
	return err
}

// Sweep deletes the spill files in dir that an earlier process left, and
// reports how many it removed. Run it at startup, before any Writer: after
// a crash the slot replays what they held. A missing dir holds none.
func Sweep(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sweep spill files: %w", err)
	}
	prefix, suffix, _ := strings.Cut(filePattern, "*")
	var n int
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("sweep spill files: %w", err)
	}
	return n, nil
}
