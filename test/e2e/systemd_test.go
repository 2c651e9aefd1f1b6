package e2e

import (
	"strings"
	"testing"

	"github.com/cdcd-dev/cdcd/test/testenv"
)

// TestSystemdNotify runs the daemon as a Type=notify unit with a watchdog
// would: READY=1 once its stream is ACTIVE, WATCHDOG=1 while it runs (its
// supervisor and HTTP server answer), STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{tables: []string{"public.orders"}})
	h.exec(`CREATE TABLE orders (id int PRIMARY KEY, note text)`)
	sd := testenv.NotifySocket(t)
	d := &daemon{testenv.Start(t, binary, []string{"CDCD_E2E_PG_PASSWORD=" + h.password,
		"NOTIFY_SOCKET=" + sd.Path, "WATCHDOG_USEC=2000000", "WATCHDOG_PID="}, "run", "--config", h.config)}

	ready, seen := sd.Next(t, "READY=1", func(m string) bool { return strings.HasPrefix(m, "READY=1") })
	if want := "READY=1\nSTATUS=1 stream: 1 ACTIVE"; ready != want {
		t.Fatalf("got %q, want %q (after %q)", ready, want, seen)
	}
	sd.Next(t, "WATCHDOG=1", func(m string) bool { return m == "WATCHDOG=1" })
	d.stop(t)
	sd.Next(t, "STOPPING=1", func(m string) bool { return m == "STOPPING=1\nSTATUS=stopping: 1 stream: 1 ACTIVE" })
}
