package pipeline

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cdcd-dev/cdcd/atrest"
	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/state"
)

// spillConfig is where a stream's large transactions go past its memory
// budget: capture's spill of a transaction's changes and the pipeline's
// sorted runs share one directory and one keyring.
type spillConfig struct {
	dir   string
	ring  *atrest.Keyring
	store *atrest.SpillStore
}

// spillDir is <state_dir>/spill/<stream id>.
func (d *Daemon) spillDir(streamID string) string {
	return filepath.Join(d.cfg.StateDir, "spill", streamID)
}

// spill prepares the stream's spill directory. Files an earlier run left
// (a crash) are deleted first: the slot replays what they held, and
// without a cluster key nothing could read them anyway. The store reports
// SPILL_FULL to st while it has no room (docs/delivery.md#spill-cap); a
// refusal from an earlier run is cleared, since the directory starts
// empty, and reported again by the first write that meets it.
func (d *Daemon) spill(ring *atrest.Keyring, st *state.Stream, maxBytes int, log *slog.Logger) (*spillConfig, error) {
	dir := d.spillDir(st.ID())
	n, err := atrest.Sweep(dir)
	if err != nil {
		return nil, fmt.Errorf("spill directory: %w", err)
	}
	if n > 0 {
		log.Info("removed spill files left by an earlier run", "dir", dir, "files", n)
	}
	store, err := atrest.NewSpillStore(dir, ring, atrest.SpillOptions{MaxBytes: int64(maxBytes), Reporter: st})
	if err != nil {
		return nil, err
	}
	_ = st.Recover(codes.OwnerSpill)
	return &spillConfig{dir: dir, ring: ring, store: store}, nil
}

// removeSpillDir deletes a deleted stream's spill directory.
func (d *Daemon) removeSpillDir(streamID string) error {
	if err := os.RemoveAll(d.spillDir(streamID)); err != nil {
		return fmt.Errorf("remove spill directory: %w", err)
	}
	return nil
}
