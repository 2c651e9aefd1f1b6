package api

import (
	"log/slog"
	"os"
	"sync"
)

// watched is what parse makes of some files, made again whenever one of
// them changes (its size, its modification time, or the file itself, as
// when a mounted secret's symlink is swapped), so that a rotated
// certificate or token takes effect without a restart. While a file cannot
// be read or parsed, get returns the error: a guard fails closed.
type watched[T any] struct {
	what  string // "token", "certificate": for the log
	paths []string
	parse func(contents [][]byte) (T, error)
	log   *slog.Logger

	mu   sync.Mutex
	seen []os.FileInfo // nil until the files have been read
	val  T
	err  error
	// worked is set once the files gave a value: before, an error is the
	// caller's to report (cdcd does not start).
	worked bool
}

func newWatched[T any](what string, log *slog.Logger, parse func([][]byte) (T, error), paths ...string) *watched[T] {
	return &watched[T]{what: what, paths: paths, parse: parse, log: log}
}

// get returns the files' current value. It costs one stat per file when
// nothing changed.
func (w *watched[T]) get() (T, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	infos := make([]os.FileInfo, len(w.paths))
	changed := w.seen == nil
	for i, p := range w.paths {
		fi, err := os.Stat(p)
		if err != nil {
			w.seen = nil
			w.settle(*new(T), err)
			return w.val, w.err
		}
		infos[i] = fi
		changed = changed || !sameVersion(w.seen[i], fi)
	}
	if changed {
		w.seen = infos
		w.settle(w.read())
	}
	return w.val, w.err
}

func (w *watched[T]) read() (T, error) {
	contents := make([][]byte, len(w.paths))
	for i, p := range w.paths {
		var err error
		if contents[i], err = os.ReadFile(p); err != nil {
			return *new(T), err
		}
	}
	return w.parse(contents)
}

// settle keeps a newly read value and logs the changes from working to not
// working and back, once each, so that a broken file does not flood the
// log with one line per request.
func (w *watched[T]) settle(v T, err error) {
	switch {
	case !w.worked:
	case err != nil && w.err == nil:
		w.log.Error("cannot use the control plane's "+w.what+"; refusing the requests that need it until the file is fixed",
			"files", w.paths, "error", err)
	case err == nil && w.err != nil:
		w.log.Info("control plane's "+w.what+" is usable again", "files", w.paths)
	}
	w.val, w.err = v, err
	w.worked = w.worked || err == nil
}

func sameVersion(a, b os.FileInfo) bool {
	return a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && os.SameFile(a, b)
}
