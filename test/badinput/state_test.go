package badinput

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestStateDirUnwritable: a state_dir cdcd cannot make a directory of, or
// write, stops the start with the fix.
func TestStateDirUnwritable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{noKinesis: true})
	// A file where the directory should be: root, which the tests may run
	// as, writes any directory whatever its mode.
	if err := os.WriteFile(f.stateDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := f.run()
	want := fmt.Sprintf("state_dir %s is not a directory cdcd can write: mkdir %s: not a directory: create it, owned by the user cdcd runs as, mode 0700 (the systemd unit's StateDirectory= does), or set state_dir to one", f.stateDir, f.stateDir)
	if err == nil || err.Error() != want {
		t.Errorf("error:\n  got  %v\n  want %s", err, want)
	}
}

// TestCorruptStateFile: a state file that does not decode stops the start,
// naming it; moved aside as the message says, the stream starts again
// from its slot and delivers what was committed while cdcd was down.
func TestCorruptStateFile(t *testing.T) {
	t.Parallel()
	f := newFixture(t, options{})
	d := f.streaming(1)
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	f.insert(2)
	path := filepath.Join(f.stateDir, "streams", f.stream+".json")
	if err := os.WriteFile(path, []byte(`{"version": 1, "status": "ACT`), 0o600); err != nil {
		t.Fatal(err)
	}
	d = f.start()
	err := d.exited()
	want := fmt.Sprintf("open state_dir %s: decode %s: unexpected EOF: restore the file from a backup, or move it out of %s: a stream of the config file then starts again from its slot's confirmed position, one created through the API is forgotten and its slot left to drop by hand", f.stateDir, path, filepath.Dir(path))
	if err == nil || err.Error() != want {
		t.Errorf("error:\n  got  %v\n  want %s", err, want)
	}
	if err := os.Rename(path, filepath.Join(f.stateDir, "corrupt.json")); err != nil {
		t.Fatal(err)
	}
	f.start()
	f.waitStatus("ACTIVE")
	f.insert(3)
	recs := f.waitRecords(3)
	wantIDs(t, recs, "c", "1", "2", "3")
}
