package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RunPG runs the PostgreSQL program prog (initdb, pg_ctl) from the bin
// directory, as the postgres user when running as root: initdb and
// postgres refuse to run as root.
func RunPG(bin, prog string, args ...string) error {
	name := filepath.Join(bin, prog)
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "postgres", "--", name}, args...)
		name = "runuser"
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", prog, strings.Join(args, " "), err, out)
	}
	return nil
}

// StopPG stops the shared server with pg_ctl stop -m mode and fails when the
// shutdown has not completed within timeout (whole seconds). Every test
// shares the server, so only a test that runs alone may stop it: one that
// does not call t.Parallel (make test runs one package at a time, and a
// package's parallel tests start after its serial ones). Call RestorePG
// first.
func (e Env) StopPG(mode string, timeout time.Duration) error {
	secs := strconv.Itoa(max(int(timeout.Seconds()), 1))
	return RunPG(e.PGBin, "pg_ctl", "-D", e.PGData, "-m", mode, "-w", "-t", secs, "stop")
}

// StartPG starts the shared server again after StopPG, with its settings
// and port; it logs to postgres.log beside the data directory.
func (e Env) StartPG() error {
	log := filepath.Join(filepath.Dir(e.PGData), "postgres.log")
	return RunPG(e.PGBin, "pg_ctl", "-D", e.PGData, "-l", log, "-w", "-t", "60", "start")
}

// RestorePG makes sure the shared server runs again when the test ends, for
// the tests after it. Register it before the test starts clients of its own:
// their cleanups then run first, so a shutdown a failed test left waiting on
// one of them can finish before it is started again.
func RestorePG(t testing.TB, env Env) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			_ = env.StopPG("fast", 30*time.Second) // see a shutdown in progress through
		}
		if RunPG(env.PGBin, "pg_ctl", "-D", env.PGData, "status") == nil {
			return
		}
		if err := env.StartPG(); err != nil {
			t.Errorf("testenv: start PostgreSQL again: %v", err)
		}
	})
}
