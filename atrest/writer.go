package atrest

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// File format constants (see the package documentation).
const (
	magic       = "CDCDSPL\x01"
	fileIDLen   = 16
	headerLen   = len(magic) + fileIDLen
	blockKey    = 'K'
	blockFrame  = 'F'
	blockLast   = 'L'
	tagLen      = 16
	nonceLen    = 12
	adLen       = headerLen + 4 + 8 + 1
	maxWrapped  = 6144 // the largest KMS ciphertext blob
	filePattern = "spill-*.atrest"
)

// frameSize is the plaintext a Writer puts in each frame, and the most a
// Reader accepts: 64 KiB keeps the 21 bytes of framing per frame negligible
// and bounds what a reader buffers before authentication.
const frameSize = 64 << 10

// ErrCorrupt is matched (errors.Is) by every error that means a file was
// modified, reordered, cut short or is not a spill file at all.
var ErrCorrupt = errors.New("atrest: corrupt file")

// ErrClosed is returned by a Writer or Reader used after Close.
var ErrClosed = errors.New("atrest: file closed")

// Writer appends records to a new encrypted file. It is not safe for
// concurrent use; one goroutine owns each spill file.
type Writer struct {
	f     *os.File
	bw    *bufio.Writer
	k     *Keyring
	hdr   [headerLen]byte
	limit int // plaintext per frame; frameSize except in tests

	buf    []byte // plaintext not yet sealed, less than limit
	sealed []byte // the last frame's ciphertext, reused: a fresh one per frame was a third of a large transaction's allocations

	dk        *dataKey // the current segment's key
	serial    uint32
	segment   uint32 // index of the current segment in the file
	segFrames uint64 // frames sealed in the current segment
	frames    uint64 // frames sealed in the file

	err    error // sticky: after a failure the file is abandoned
	closed bool
}

// Create starts a new spill file in dir, which must exist and belong to
// the caller: the file is created with mode 0600 and a random name
// matching spill-*.atrest. The first data key is obtained now, so a
// cluster key that cannot be used fails Create rather than a later Write.
func Create(dir string, k *Keyring) (*Writer, error) {
	return create(dir, k, frameSize)
}

func create(dir string, k *Keyring, limit int) (*Writer, error) {
	if k == nil {
		return nil, errors.New("create spill file: nil keyring")
	}
	w := &Writer{k: k, limit: limit, buf: make([]byte, 0, limit)}
	copy(w.hdr[:], magic)
	_, _ = rand.Read(w.hdr[len(magic):]) // never fails since Go 1.24
	if err := w.rotate(); err != nil {
		return nil, fmt.Errorf("create spill file: %w", err)
	}
	f, err := os.CreateTemp(dir, filePattern) // CreateTemp uses mode 0600
	if err != nil {
		return nil, fmt.Errorf("create spill file: %w", err)
	}
	w.f, w.bw = f, bufio.NewWriterSize(f, limit+64)
	if _, err := w.bw.Write(w.hdr[:]); err != nil {
		w.abandon()
		return nil, fmt.Errorf("create spill file: %w", err)
	}
	if err := w.writeKeyBlock(); err != nil {
		w.abandon()
		return nil, fmt.Errorf("create spill file: %w", err)
	}
	return w, nil
}

// Path is the file's name, for Open.
func (w *Writer) Path() string { return w.f.Name() }

// Write appends one record. Records are buffered into frames, so a record
// is on disk only after later writes fill its frame or after Close. After
// an error the Writer is unusable: Remove it.
func (w *Writer) Write(p []byte) error {
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	w.buf = binary.AppendUvarint(w.buf, uint64(len(p)))
	for {
		// The length prefix may overfill buf by a few bytes: seal takes
		// exactly limit bytes and keeps the rest.
		for len(w.buf) >= w.limit {
			if err := w.seal(blockFrame); err != nil {
				return err
			}
		}
		if len(p) == 0 {
			return nil
		}
		n := min(len(p), w.limit-len(w.buf))
		w.buf = append(w.buf, p[:n]...)
		p = p[n:]
	}
}

// Close seals the last frame and closes the file, which stays for Open.
// After a failed Write it only closes the file and returns that failure:
// the file is incomplete, and Remove deletes it.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		_ = w.f.Close() // already failed; the first error is the one to report
		return w.err
	}
	// Write leaves less than limit bytes buffered: they fit the last frame.
	err := w.seal(blockLast)
	if err == nil {
		if ferr := w.bw.Flush(); ferr != nil {
			err = w.fail(fmt.Errorf("close spill file: %w", ferr))
		}
	}
	// No fsync: a spill file is only an extension of memory, and after
	// a crash the slot replays everything it held.
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = w.fail(fmt.Errorf("close spill file: %w", cerr))
	}
	w.buf = nil
	return err
}

// Remove closes the file, if open, and deletes it: for abandoning a spill
// that failed or is no longer needed.
func (w *Writer) Remove() error {
	if !w.closed {
		_ = w.f.Close() // the file is going away; its close error is moot
		w.closed = true
	}
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove spill file: %w", err)
	}
	return nil
}

// seal encrypts the first min(len(buf), limit) buffered bytes as a frame of
// type typ, starting a new segment first when the data key is stale.
func (w *Writer) seal(typ byte) error {
	if w.k.stale(w.dk) {
		if err := w.rotate(); err != nil {
			return w.fail(fmt.Errorf("rotate data key: %w", err))
		}
		if err := w.writeKeyBlock(); err != nil {
			return w.fail(err)
		}
	}
	n := min(len(w.buf), w.limit)
	var nonce [nonceLen]byte
	var ad [adLen]byte
	frameNonce(&nonce, w.serial, w.segFrames)
	frameAD(&ad, &w.hdr, w.segment, w.frames, typ)
	var head [5]byte
	head[0] = typ
	binary.BigEndian.PutUint32(head[1:], uint32(n+tagLen))
	w.sealed = w.dk.aead.Seal(w.sealed[:0], nonce[:], w.buf[:n], ad[:])
	if _, err := w.bw.Write(head[:]); err != nil {
		return w.fail(fmt.Errorf("write spill file: %w", err))
	}
	if _, err := w.bw.Write(w.sealed); err != nil {
		return w.fail(fmt.Errorf("write spill file: %w", err))
	}
	w.dk.used.Add(int64(n))
	w.segFrames++
	w.frames++
	w.buf = append(w.buf[:0], w.buf[n:]...)
	return nil
}

// rotate leases a data key and a serial for a new segment.
func (w *Writer) rotate() error {
	dk, serial, err := w.k.lease()
	if err != nil {
		return err
	}
	if w.dk != nil {
		w.segment++
	}
	w.dk, w.serial, w.segFrames = dk, serial, 0
	return nil
}

func (w *Writer) writeKeyBlock() error {
	b := make([]byte, 0, 7+len(w.dk.wrapped))
	b = append(b, blockKey)
	b = binary.BigEndian.AppendUint32(b, w.serial)
	b = binary.BigEndian.AppendUint16(b, uint16(len(w.dk.wrapped)))
	b = append(b, w.dk.wrapped...)
	if _, err := w.bw.Write(b); err != nil {
		return fmt.Errorf("write spill file: %w", err)
	}
	return nil
}

// fail makes err sticky and returns it.
func (w *Writer) fail(err error) error {
	w.err = err
	return err
}

func (w *Writer) abandon() {
	_ = w.f.Close()
	_ = os.Remove(w.f.Name())
}

// frameNonce is the segment serial and the frame's index in the segment.
func frameNonce(nonce *[nonceLen]byte, serial uint32, segFrame uint64) {
	binary.BigEndian.PutUint32(nonce[:4], serial)
	binary.BigEndian.PutUint64(nonce[4:], segFrame)
}

// frameAD binds a frame to its file, segment, position and type.
func frameAD(ad *[adLen]byte, hdr *[headerLen]byte, segment uint32, frame uint64, typ byte) {
	copy(ad[:], hdr[:])
	binary.BigEndian.PutUint32(ad[headerLen:], segment)
	binary.BigEndian.PutUint64(ad[headerLen+4:], frame)
	ad[headerLen+12] = typ
}
