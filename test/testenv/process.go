package testenv

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildCdcd builds the cdcd binary with the race detector, so a data race
// in the daemon fails the end-to-end tests too, and returns its path and a
// function that removes it. Call it from TestMain.
func BuildCdcd() (string, func(), error) {
	dir, err := os.MkdirTemp("", "cdcd-bin")
	if err != nil {
		return "", nil, err
	}
	bin := filepath.Join(dir, "cdcd")
	build := exec.Command("go", "build", "-race", "-o", bin, "github.com/cdcd-dev/cdcd/cmd/cdcd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build cdcd: %w", err)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// RunWithCdcd builds cdcd into *bin, runs the package's tests and removes
// the binary; TestMain hands its result to os.Exit.
func RunWithCdcd(m *testing.M, bin *string) int {
	path, cleanup, err := BuildCdcd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	*bin = path
	return m.Run()
}

// Process is a running cdcd (or other) process whose output the test reads.
type Process struct {
	cmd  *exec.Cmd
	logs SyncBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

// Start runs bin with args and extra environment variables. Its output also
// goes to a LogFile. Cleanup stops it with SIGTERM and prints its output if
// the test failed.
func Start(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	// One writer for both, so exec copies with one goroutine.
	out := io.MultiWriter(&p.logs, LogFile(t, filepath.Base(bin)))
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop(t)
		if t.Failed() {
			out := p.Logs()
			if len(out) > 20000 {
				out = "…" + out[len(out)-20000:]
			}
			t.Logf("%s log:\n%s", filepath.Base(bin), out)
		}
	})
	return p
}

// Pid is the process's id, for /proc.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Logs is everything the process wrote so far.
func (p *Process) Logs() string { return p.logs.String() }

// Exited reports whether the process has exited, and its status if so.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM and waits for a clean exit; it fails the test if the
// process exits with an error or takes longer than 30 s. Stopping a process
// that already exited does nothing.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	if done, _ := p.Exited(); done {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("%s exited with %v after SIGTERM", filepath.Base(p.cmd.Path), p.err)
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not stop within 30s of SIGTERM", filepath.Base(p.cmd.Path))
	}
}

// Kill ends the process with SIGKILL: no drain, no final checkpoint.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// SyncBuffer collects a process's output while the test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
