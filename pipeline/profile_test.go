package pipeline

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestStartProfiles: both profiles are written at stop as gzipped pprof
// data, none without paths, and a path that cannot be created fails the
// start.
func TestStartProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, heap := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "heap.pprof")
	stop, err := StartProfiles(cpu, heap)
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{cpu, heap} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: not gzipped: %v", filepath.Base(path), err)
		}
		if body, err := io.ReadAll(zr); err != nil || len(body) == 0 {
			t.Errorf("%s: %d bytes of profile, err %v", filepath.Base(path), len(body), err)
		}
	}

	stop, err = StartProfiles("", "")
	if err != nil || stop() != nil {
		t.Fatalf("no profiles: %v", err)
	}
	if _, err := StartProfiles(filepath.Join(dir, "missing", "cpu.pprof"), ""); err == nil {
		t.Error("a CPU profile in a missing directory started")
	}
	// The failed start stopped the CPU profile it had started.
	if _, err := StartProfiles(cpu, filepath.Join(dir, "missing", "heap.pprof")); err == nil {
		t.Error("a heap profile in a missing directory started")
	}
	stop, err = StartProfiles(cpu, "")
	if err != nil {
		t.Fatalf("after a failed start: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
