package atrest

import (
	"bufio"
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cdcd-dev/cdcd/record"
)

// TestSpillCap: a write that would take the store past MaxBytes is refused
// before anything is written, with an error matching record.ErrSpillFull
// that names the cap, and reported as SPILL_FULL; the run stays usable and
// reads back what it holds. Once runs are closed or removed their bytes
// are free again, and the first run finished after the refusal reports
// the recovery.
func TestSpillCap(t *testing.T) {
	rep := &recorder{}
	const limit = 64 << 10
	st, err := NewSpillStore(t.TempDir(), nil, SpillOptions{MaxBytes: limit, Reporter: rep})
	if err != nil {
		t.Fatal(err)
	}
	entry := []byte(strings.Repeat("x", 1000))
	w, err := st.Create()
	if err != nil {
		t.Fatal(err)
	}
	written := 0
	for ; written < 1000; written++ {
		if err = w.Write(entry); err != nil {
			break
		}
	}
	if !errors.Is(err, record.ErrSpillFull) || !strings.Contains(err.Error(), "spill_max_bytes = 65536") {
		t.Fatalf("write past the cap: %v, want a refusal naming spill_max_bytes", err)
	}
	if written == 0 || st.Used() > limit {
		t.Fatalf("%d entries written, %d bytes used, cap %d", written, st.Used(), limit)
	}
	if got := rep.take(); !slices.Equal(got, []string{"fault SPILL_FULL"}) {
		t.Fatalf("reports %v, want one SPILL_FULL", got)
	}
	// A second run is refused too while the first holds the room.
	w2, err := st.Create()
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Write(entry); !errors.Is(err, record.ErrSpillFull) {
		t.Fatalf("write while full: %v", err)
	}
	if err := w2.Remove(); err != nil {
		t.Fatal(err)
	}
	r, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for ; ; read++ {
		if _, err := r.Next(); err != nil {
			break
		}
	}
	if read != written {
		t.Fatalf("read back %d entries, wrote %d", read, written)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := rep.take(); !slices.Equal(got, []string{"fault SPILL_FULL", "recover spill"}) {
		t.Fatalf("reports %v, want the second refusal, then recovery at Finish", got)
	}
	if st.Used() != 0 {
		t.Fatalf("%d bytes still counted after every run is gone", st.Used())
	}
	w3, err := st.Create()
	if err != nil {
		t.Fatal(err)
	}
	for range written {
		if err := w3.Write(entry); err != nil {
			t.Fatalf("the room freed is not usable again: %v", err)
		}
	}
	if _, err := w3.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := rep.take(); len(got) != 0 {
		t.Fatalf("reports %v without a refusal", got)
	}
}

// TestSpillDiskFull: a filesystem that has no room (ENOSPC from the kernel,
// here /dev/full under the run's file) fails the write with an error that
// matches record.ErrSpillFull and keeps the ENOSPC, and reports SPILL_FULL.
func TestSpillDiskFull(t *testing.T) {
	rep := &recorder{}
	st, err := NewSpillStore(t.TempDir(), nil, SpillOptions{Reporter: rep})
	if err != nil {
		t.Fatal(err)
	}
	rw, err := st.Create()
	if err != nil {
		t.Fatal(err)
	}
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	w := rw.(*spillWriter)
	w.w.bw = bufio.NewWriterSize(full, 512)
	entry := []byte(strings.Repeat("x", 1000))
	for range 2 * frameSize / len(entry) {
		if err = w.Write(entry); err != nil {
			break
		}
	}
	if !errors.Is(err, record.ErrSpillFull) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), st.Dir()) {
		t.Fatalf("write to a full filesystem: %v, want a refusal naming the directory", err)
	}
	if got := rep.take(); !slices.Equal(got, []string{"fault SPILL_FULL"}) {
		t.Fatalf("reports %v, want one SPILL_FULL", got)
	}
	if err := w.Remove(); err != nil {
		t.Fatal(err)
	}
	if st.Used() != 0 {
		t.Fatalf("%d bytes counted after the run was removed", st.Used())
	}
}
