package atrest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// writeFile writes recs to a new file with limit plaintext bytes per frame.
func writeFile(t testing.TB, dir string, k *Keyring, limit int, recs [][]byte) string {
	t.Helper()
	w, err := create(dir, k, limit)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range recs {
		if err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.Path()
}

// readFile reads every record of path; Close removes the file.
func readFile(path string, k *Keyring) ([][]byte, error) {
	r, err := Open(path, k)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var recs [][]byte
	for {
		p, err := r.Next()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		recs = append(recs, p)
	}
}

func readAll(t testing.TB, path string, k *Keyring) [][]byte {
	t.Helper()
	recs, err := readFile(path, k)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// block is one block of a file as the format lays it out, found without
// any key: what an attacker with the file can see.
type block struct {
	typ        byte
	start, end int
}

func parseBlocks(t testing.TB, raw []byte) []block {
	t.Helper()
	var out []block
	for off := headerLen; off < len(raw); {
		b := block{typ: raw[off], start: off}
		switch b.typ {
		case blockKey:
			b.end = off + 7 + int(binary.BigEndian.Uint16(raw[off+5:]))
		case blockFrame, blockLast:
			b.end = off + 5 + int(binary.BigEndian.Uint32(raw[off+1:]))
		default:
			t.Fatalf("unknown block %q at %d", b.typ, off)
		}
		out = append(out, b)
		off = b.end
	}
	return out
}

// randomRecords returns up to n records of sizes that cross frame limits.
func randomRecords(rng *rand.Rand, n, limit int) [][]byte {
	recs := make([][]byte, rng.IntN(n+1))
	for i := range recs {
		size := 0
		switch rng.IntN(4) {
		case 0: // empty
		case 1:
			size = rng.IntN(limit)
		case 2:
			size = limit + rng.IntN(limit)
		case 3:
			size = rng.IntN(5 * limit)
		}
		recs[i] = make([]byte, size)
		for j := range recs[i] {
			recs[i][j] = byte(rng.Uint32())
		}
	}
	return recs
}

func TestRoundTripProperty(t *testing.T) {
	dir := t.TempDir()
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 42))
		limit := 1 + rng.IntN(300)
		var k *Keyring
		if seed%2 == 0 {
			k = NewEphemeral()
		} else {
			// Small rotation limits give files of many segments.
			k, _ = newTestKeyring(t, Options{RotateBytes: int64(1 + rng.IntN(2000))})
		}
		recs := randomRecords(rng, 40, limit)
		path := writeFile(t, dir, k, limit, recs)
		got, err := readFile(path, k)
		if err != nil {
			t.Fatalf("seed %d: read: %v", seed, err)
		}
		if len(got) != len(recs) {
			t.Fatalf("seed %d: read %d records, wrote %d", seed, len(got), len(recs))
		}
		for i := range recs {
			if !bytes.Equal(got[i], recs[i]) {
				t.Fatalf("seed %d: record %d differs", seed, i)
			}
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("seed %d: Reader.Close left the file: %v", seed, err)
		}
	}
}

// sampleFile is a small file of several segments and frames.
func sampleFile(t *testing.T) ([]byte, *Keyring) {
	t.Helper()
	k, _ := newTestKeyring(t, Options{RotateBytes: 100})
	rng := rand.New(rand.NewPCG(7, 7))
	recs := randomRecords(rng, 12, 40)
	recs = append(recs, []byte("tail"))
	path := writeFile(t, t.TempDir(), k, 40, recs)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks := parseBlocks(t, raw)
	var keys, frames int
	for _, b := range blocks {
		if b.typ == blockKey {
			keys++
		} else {
			frames++
		}
	}
	if keys < 3 || frames < 6 {
		t.Fatalf("sample file has %d segments and %d frames: too few to test with", keys, frames)
	}
	return raw, k
}

// mustNotRead asserts that raw, as a file, does not read back cleanly.
func mustNotRead(t *testing.T, k *Keyring, raw []byte, what string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spill-tampered.atrest")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := readFile(path, k)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: read err = %v, want ErrCorrupt", what, err)
	}
}

func TestTamperDetected(t *testing.T) {
	raw, k := sampleFile(t)
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 1 << (i % 8)
		mustNotRead(t, k, bad, fmt.Sprintf("bit flipped at byte %d", i))
	}
}

func TestTruncationDetected(t *testing.T) {
	raw, k := sampleFile(t)
	for n := range len(raw) {
		mustNotRead(t, k, raw[:n], fmt.Sprintf("cut to %d of %d bytes", n, len(raw)))
	}
}

func TestReorderDetected(t *testing.T) {
	raw, k := sampleFile(t)
	blocks := parseBlocks(t, raw)
	rebuild := func(order []block) []byte {
		out := bytes.Clone(raw[:headerLen])
		for _, b := range order {
			out = append(out, raw[b.start:b.end]...)
		}
		return out
	}
	for i := range blocks {
		dropped := slices.Delete(slices.Clone(blocks), i, i+1)
		mustNotRead(t, k, rebuild(dropped), fmt.Sprintf("block %d dropped", i))

		if blocks[i].typ != blockKey {
			dup := slices.Insert(slices.Clone(blocks), i, blocks[i])
			mustNotRead(t, k, rebuild(dup), fmt.Sprintf("frame %d duplicated", i))
		}
		if i+1 < len(blocks) {
			swapped := slices.Clone(blocks)
			swapped[i], swapped[i+1] = swapped[i+1], swapped[i]
			mustNotRead(t, k, rebuild(swapped), fmt.Sprintf("blocks %d and %d swapped", i, i+1))
		}
	}
	mustNotRead(t, k, append(bytes.Clone(raw), raw[blocks[1].start:blocks[1].end]...), "frame appended after the end")
	mustNotRead(t, k, append(bytes.Clone(raw), 0), "byte appended after the end")
}

func TestFrameFromAnotherFileDetected(t *testing.T) {
	// Two files under the same data key, same layout: only the file id
	// and the segment serial tell their frames apart.
	k, _ := newTestKeyring(t, Options{})
	dir := t.TempDir()
	recs := [][]byte{bytes.Repeat([]byte("a"), 100), []byte("b")}
	rawA, _ := os.ReadFile(writeFile(t, dir, k, 32, recs))
	rawB, _ := os.ReadFile(writeFile(t, dir, k, 32, recs))
	a, b := parseBlocks(t, rawA), parseBlocks(t, rawB)
	if len(a) != len(b) {
		t.Fatal("files differ in layout")
	}
	for i := range a {
		mixed := bytes.Clone(rawA[:a[i].start])
		mixed = append(mixed, rawB[b[i].start:b[i].end]...)
		mixed = append(mixed, rawA[a[i].end:]...)
		if bytes.Equal(mixed, rawA) {
			t.Fatalf("block %d is identical in both files", i)
		}
		mustNotRead(t, k, mixed, fmt.Sprintf("block %d from another file", i))
	}
}

func TestNoPlaintextOnDisk(t *testing.T) {
	marker := []byte("MARKER-4f1c2b-row-value")
	for name, k := range map[string]*Keyring{"ephemeral": NewEphemeral(), "kms": must(newTestKeyring(t, Options{}))} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := Create(dir, k)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 1000 {
				rec := fmt.Appendf(nil, `{"id":%d,"v":"%s"}`, i, marker)
				if err := w.Write(rec); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Write(bytes.Repeat(marker, 10000)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(w.Path())
			if err != nil {
				t.Fatal(err)
			}
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("file mode %v, want 0600", perm)
			}
			raw, _ := os.ReadFile(w.Path())
			for _, probe := range [][]byte{marker, marker[:8], []byte(`{"id":`)} {
				if bytes.Contains(raw, probe) {
					t.Fatalf("plaintext %q found in the file", probe)
				}
			}
			recs := readAll(t, w.Path(), k)
			if len(recs) != 1001 || !bytes.Contains(recs[0], marker) {
				t.Fatalf("read back %d records", len(recs))
			}
		})
	}
}

func must[T any](v T, _ ...any) T { return v }

func TestConcurrentWritersNeverShareANonce(t *testing.T) {
	k, m := newTestKeyring(t, Options{RotateBytes: 4000})
	dir := t.TempDir()
	paths := make([]string, 8)
	var wg sync.WaitGroup
	for i := range paths {
		wg.Go(func() {
			w, err := create(dir, k, 64)
			if err != nil {
				t.Error(err)
				return
			}
			for j := range 200 {
				if err := w.Write(fmt.Appendf(nil, "writer %d record %d", i, j)); err != nil {
					t.Error(err)
					return
				}
			}
			if err := w.Close(); err != nil {
				t.Error(err)
			}
			paths[i] = w.Path()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// A (data key, serial) pair names a nonce sequence: it must be unique.
	seen := map[string]bool{}
	for _, p := range paths {
		raw, _ := os.ReadFile(p)
		for _, b := range parseBlocks(t, raw) {
			if b.typ != blockKey {
				continue
			}
			id := string(raw[b.start+1 : b.end]) // serial and wrapped key
			id = id[:4] + id[6:]
			if seen[id] {
				t.Fatal("two segments share a data key and serial")
			}
			seen[id] = true
		}
		if recs := readAll(t, p, k); len(recs) != 200 {
			t.Errorf("%s: %d records, want 200", p, len(recs))
		}
	}
	if m.generated.Load() < 2 {
		t.Error("no rotation happened: the test proves less than it claims")
	}
}

func TestWriterAndReaderLifecycle(t *testing.T) {
	dir := t.TempDir()
	k := NewEphemeral()

	w, err := Create(dir, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := w.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(w.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Writer.Remove left the file: %v", err)
	}
	if err := w.Write([]byte("y")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Remove: err = %v, want ErrClosed", err)
	}

	w, err = Create(dir, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.Write(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: err = %v, want ErrClosed", err)
	}

	r, err := Open(w.Path(), k)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("Next on an empty file: err = %v, want io.EOF", err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: err = %v, want ErrClosed", err)
	}

	if _, err := Create(filepath.Join(dir, "missing"), k); err == nil {
		t.Error("Create in a missing directory succeeded")
	}
}

func TestSweep(t *testing.T) {
	dir := t.TempDir()
	k := NewEphemeral()
	for range 2 {
		w, err := Create(dir, k)
		if err != nil {
			t.Fatal(err)
		}
		_ = w.Write([]byte("left behind by a crash"))
	}
	keep := []string{"checkpoint.json", "spill-notes.txt"}
	for _, name := range keep {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "spill-dir.atrest"), 0o700); err != nil {
		t.Fatal(err)
	}
	n, err := Sweep(dir)
	if err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want 2, nil", n, err)
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := append(keep, "spill-dir.atrest"); !slices.Equal(left, slices.Sorted(slices.Values(want))) {
		t.Errorf("left %v, want %v", left, want)
	}
	if n, err := Sweep(filepath.Join(dir, "missing")); n != 0 || err != nil {
		t.Errorf("Sweep of a missing dir = %d, %v; want 0, nil", n, err)
	}
}
