package soak

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// daemons runs cdcd, one process at a time, across the run's restarts.
type daemons struct {
	s    *soak
	cmd  string
	args []string

	// op serialises starting, killing and noticing a crash, so that a kill
	// is never taken for a crash.
	op sync.Mutex

	mu      sync.Mutex
	cur     *testenv.Process
	runs    []*daemonRun
	peakKiB int64 // the largest VmHWM of any process
}

// daemonRun is one process and when it ran.
type daemonRun struct {
	p        *testenv.Process
	from, to time.Time // to is zero while it runs
}

func newDaemons(s *soak) *daemons {
	d := &daemons{s: s, cmd: binary, args: []string{"run", "--config", s.config}}
	if s.spill != nil {
		d.cmd, d.args = s.spill.wrap(binary, d.args)
	}
	return d
}

// start runs a new daemon process.
func (d *daemons) start() {
	d.op.Lock()
	defer d.op.Unlock()
	d.startLocked()
}

func (d *daemons) startLocked() {
	if d.current() != nil {
		// Two daemons would fight over the state directory's lock.
		d.s.t.Errorf("soak: a daemon was to start while one runs")
		return
	}
	p := testenv.Start(d.s.t, d.cmd, []string{"CDCD_SOAK_PG_PASSWORD=" + d.s.password}, d.args...)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cur = p
	d.runs = append(d.runs, &daemonRun{p: p, from: time.Now()})
}

// current is the running process, or nil.
func (d *daemons) current() *testenv.Process {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur
}

// kill ends the running process with SIGKILL, after a last look at its
// peak memory.
func (d *daemons) kill() {
	d.op.Lock()
	defer d.op.Unlock()
	if p := d.current(); p != nil {
		d.sample()
		p.Kill()
		d.ended(p)
	}
}

// stop ends the running process with SIGTERM; the test fails unless it
// exits cleanly.
func (d *daemons) stop() {
	d.op.Lock()
	defer d.op.Unlock()
	p := d.current()
	if p == nil {
		return
	}
	d.sample()
	p.Stop(d.s.t)
	d.ended(p)
}

// ended records that p is gone.
func (d *daemons) ended(p *testenv.Process) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == p {
		d.cur = nil
	}
	for _, r := range d.runs {
		if r.p == p && r.to.IsZero() {
			r.to = time.Now()
		}
	}
}

// sample reads the running process's peak resident size (VmHWM).
func (d *daemons) sample() {
	p := d.current()
	if p == nil {
		return
	}
	kib, err := vmHWM(p.Pid())
	if err != nil {
		return // it just exited
	}
	d.mu.Lock()
	d.peakKiB = max(d.peakKiB, kib)
	d.mu.Unlock()
}

// checkAlive notices a daemon that exited by itself: a crash the run
// reports, and restarts so that the run goes on. Once ctx has ended the
// test is stopping it.
func (d *daemons) checkAlive(ctx context.Context) {
	d.op.Lock()
	defer d.op.Unlock()
	p := d.current()
	if p == nil {
		return
	}
	if exited, err := p.Exited(); exited && ctx.Err() == nil {
		d.ended(p)
		d.s.t.Errorf("the daemon exited by itself: %v", err)
		d.s.log.event("restart", "the daemon after it exited by itself")
		d.startLocked()
		d.s.afterStart()
	}
}

// longestAlive is the longest time one daemon ran unbroken within [from,
// to], counting each from settle after its start, when it can report
// anything.
func (d *daemons) longestAlive(from, to time.Time, settle time.Duration) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	var longest time.Duration
	for _, r := range d.runs {
		a, b := r.from.Add(settle), r.to
		if b.IsZero() {
			b = to
		}
		a, b = later(a, from), earlier(b, to)
		longest = max(longest, b.Sub(a))
	}
	return longest
}

// startedWithin reports whether a daemon started within [from, to].
func (d *daemons) startedWithin(from, to time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.ContainsFunc(d.runs, func(r *daemonRun) bool { return !r.from.Before(from) && !r.from.After(to) })
}

// logs writes every process's output under dir, one file each, and
// returns the outputs.
func (d *daemons) logs(dir string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for i, r := range d.runs {
		l := r.p.Logs()
		out = append(out, l)
		if dir != "" {
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("daemon-%02d.log", i+1)), []byte(l), 0o644)
		}
	}
	return out
}

// vmHWM reads a process's peak resident set size in KiB.
func vmHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM")
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// spillFS is a size-limited spill directory: the daemon runs in a mount
// namespace of its own (unshare -Urm, which needs no privileges where
// user namespaces are allowed) with a tmpfs over state_dir/spill. The
// fault fills that tmpfs from outside, through /proc/<pid>/root, until
// writes fail with ENOSPC; removing the filler frees it. Running as root
// does not help against a full filesystem the way it does against chmod.
type spillFS struct {
	root string // state_dir/spill as the daemon sees it
}

// spillFSSize is the tmpfs's size: room for the workload's largest spilled
// transactions of both streams at once.
const spillFSSize = "48m"

// probeSpillFS checks that a tmpfs can be mounted in a new user and mount
// namespace here; nil when it cannot, with the reason logged.
func probeSpillFS(t *testing.T) *spillFS {
	t.Helper()
	out, err := exec.Command("unshare", "-Urm", "sh", "-c", `mount -t tmpfs -o size=64k tmpfs "$1"`, "sh", t.TempDir()).CombinedOutput()
	if err != nil {
		t.Logf("soak: spill_full is not injectable here: unshare -Urm with a tmpfs mount: %v: %s", err, strings.TrimSpace(string(out)))
		return nil
	}
	return &spillFS{}
}

// wrap returns the command that runs bin with args in its own mount
// namespace, with the tmpfs mounted over the spill directory.
func (f *spillFS) wrap(bin string, args []string) (string, []string) {
	script := `mount -t tmpfs -o size=` + spillFSSize + `,mode=0700 tmpfs "$1" && shift && exec "$@"`
	return "unshare", append([]string{"-Urm", "sh", "-c", script, "sh", f.root, bin}, args...)
}

// filler is the file that fills the tmpfs of process pid.
func (f *spillFS) filler(pid int) string {
	return filepath.Join(fmt.Sprintf("/proc/%d/root", pid), f.root, ".soak-filler")
}

// fill writes zeros to the tmpfs of process pid until it is full. It waits
// for the mount (a process that just started may not have made it yet).
func (f *spillFS) fill(pid int) (int64, error) {
	dir := filepath.Dir(f.filler(pid))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		mounted, err := sameFS(dir, f.root)
		if err != nil {
			return 0, err
		}
		if !mounted {
			break
		}
		if time.Now().After(deadline) {
			return 0, errors.New("the daemon's spill tmpfs is not mounted")
		}
	}
	file, err := os.OpenFile(f.filler(pid), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer file.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		w, err := file.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// sameFS reports whether a and b are on the same filesystem: the view
// through /proc/<pid>/root is the host's until the tmpfs is mounted.
func sameFS(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return sa.Sys().(*syscall.Stat_t).Dev == sb.Sys().(*syscall.Stat_t).Dev, nil
}

// free removes the filler of process pid, if any.
func (f *spillFS) free(pid int) error {
	err := os.Remove(f.filler(pid))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
