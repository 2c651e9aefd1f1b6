package capture

import "time"

// snapshotTracker keeps the initial snapshot's progress where Health and
// the metrics show it while the snapshot runs, and paces its log lines:
// GetStream reads it from memory, never from the source.
type snapshotTracker struct {
	s    *Source
	prog SnapshotProgress
	last time.Time
}

// trackSnapshot starts tracking a snapshot of tables.
func (s *Source) trackSnapshot(tables []snapTable) *snapshotTracker {
	t := &snapshotTracker{s: s, prog: SnapshotProgress{Running: true, Tables: len(tables)}, last: time.Now()}
	for _, tb := range tables {
		t.prog.EstimatedRows += tb.estimate
	}
	s.setSnapshot(t.prog)
	return t
}

// table reports that reading table begins.
func (t *snapshotTracker) table(name string) {
	t.prog.Table = name
	t.s.setSnapshot(t.prog)
}

// rows reports n more rows handed on.
func (t *snapshotTracker) rows(n int) {
	t.prog.Rows += int64(n)
	t.s.met.snapshotRows.Add(float64(n))
	if t.prog.EstimatedRows > 0 {
		// reltuples is an estimate: the ratio reaches 1 only when done.
		t.s.met.snapshotProgress.Set(min(float64(t.prog.Rows)/float64(t.prog.EstimatedRows), 0.99))
	}
	t.s.setSnapshot(t.prog)
	if time.Since(t.last) >= progressEvery {
		t.last = time.Now()
		t.s.log.Info("initial snapshot progress", progressAttrs(t.prog)...)
	}
}

// tableDone reports that the current table is read in full.
func (t *snapshotTracker) tableDone() {
	t.prog.TablesDone++
	t.s.setSnapshot(t.prog)
}

// done reports that every row is delivered and the checkpoint persisted.
// The estimate becomes the count, so the numbers read as complete.
func (t *snapshotTracker) done() {
	t.prog.Running, t.prog.Done, t.prog.Table = false, true, ""
	t.prog.TablesDone, t.prog.EstimatedRows = t.prog.Tables, t.prog.Rows
	t.s.setSnapshot(t.prog)
	t.s.met.snapshotProgress.Set(1)
}
