package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/ident"
	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/state/api"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// notifySocket stands in for systemd and names it in NOTIFY_SOCKET. The
// watchdog variables are cleared, as a test may itself run under systemd.
func notifySocket(t *testing.T) *testenv.Notifications {
	t.Helper()
	n := testenv.NotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", n.Path)
	t.Setenv("WATCHDOG_USEC", "")
	t.Setenv("WATCHDOG_PID", "")
	return n
}

func msgIs(want string) func(string) bool { return func(m string) bool { return m == want } }

func msgPrefix(p string) func(string) bool {
	return func(m string) bool { return strings.HasPrefix(m, p) }
}

// gatedRunner keeps its streams CREATING until release is closed.
type gatedRunner struct {
	funcRunner
	release chan struct{}
}

func (g gatedRunner) RunStream(ctx context.Context, s *state.Stream) error {
	select {
	case <-ctx.Done():
		return nil
	case <-g.release:
	}
	return IdleRunner{}.RunStream(ctx, s)
}

// adopt registers a configured stream named name.
func adopt(t *testing.T, sup *Supervisor, name string) *state.Stream {
	t.Helper()
	s, err := sup.Adopt(state.Definition{
		ClusterID: cluster, StreamID: ident.DeriveID(cluster, name), Format: "JSON", Ordering: "ROW",
		Target: state.Target{StreamARN: kinesisA, RoleARN: roleA}, ConfigFile: "/etc/cdcd/config.toml",
		Tags: map[string]string{nameTag: name},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startNotifier runs a notifier with short periods over f's supervisor and
// HTTP server; the returned function cancels it and waits for it.
func startNotifier(t *testing.T, f *fixture, mod func(*notifier)) func() {
	t.Helper()
	ln := f.srv.Listener
	n := newNotifier(slog.New(slog.DiscardHandler), f.reg, httpProbe(ln.Addr(), false))
	if n == nil {
		t.Fatal("no notifier with NOTIFY_SOCKET set")
	}
	n.statusEvery, n.rescan, n.readyWait = 10*time.Millisecond, 20*time.Millisecond, time.Minute
	if mod != nil {
		mod(n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.run(ctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

func TestNotifyReadyOnceStreamsSettle(t *testing.T) {
	msgs := notifySocket(t)
	release := make(chan struct{})
	f := newFixture(t, func(c *SupervisorConfig) { c.Runner = gatedRunner{release: release} })
	adopt(t, f.reg, "orders")
	adopt(t, f.reg, "items")
	startNotifier(t, f, nil)

	_, seen := msgs.Next(t, "STATUS with both streams CREATING", msgIs("STATUS=2 streams: 2 CREATING (items, orders)"))
	if len(seen) > 0 {
		t.Fatalf("before the first STATUS: %q", seen)
	}
	close(release)
	ready, seen := msgs.Next(t, "READY=1", msgPrefix("READY=1"))
	for _, m := range seen {
		if !strings.HasPrefix(m, "STATUS=2 streams: 1 CREATING") {
			t.Errorf("before READY=1: %q", m)
		}
	}
	if want := "READY=1\nSTATUS=2 streams: 2 ACTIVE"; ready != want {
		t.Fatalf("got %q, want %q", ready, want)
	}
}

func TestNotifyReadyAfterBoundedWait(t *testing.T) {
	msgs := notifySocket(t)
	f := newFixture(t, func(c *SupervisorConfig) { c.Runner = gatedRunner{release: make(chan struct{})} })
	adopt(t, f.reg, "orders")
	startNotifier(t, f, func(n *notifier) { n.readyWait = 50 * time.Millisecond })

	msgs.Next(t, "READY=1 while CREATING", msgIs("READY=1\nSTATUS=still CREATING after 50ms: 1 stream: 1 CREATING (orders)"))
}

func TestNotifyStatusFollowsStreams(t *testing.T) {
	msgs := notifySocket(t)
	f := newFixture(t, func(c *SupervisorConfig) { c.Runner = IdleRunner{} })
	orders := adopt(t, f.reg, "orders")
	startNotifier(t, f, nil)
	msgs.Next(t, "READY=1", msgIs("READY=1\nSTATUS=1 stream: 1 ACTIVE"))

	if err := orders.Fault(codes.KinesisThroughputExceeded, errors.New("slow down")); err != nil {
		t.Fatal(err)
	}
	msgs.Next(t, "IMPAIRED", msgIs("STATUS=1 stream: 1 IMPAIRED (orders: KINESIS_THROUGHPUT_EXCEEDED)"))
	if err := orders.Recover(codes.OwnerSink); err != nil {
		t.Fatal(err)
	}
	msgs.Next(t, "recovered", msgIs("STATUS=1 stream: 1 ACTIVE"))
	// A stream added after start has no Watch channel yet: the rescan finds it.
	adopt(t, f.reg, "items")
	msgs.Next(t, "the new stream", msgIs("STATUS=2 streams: 2 ACTIVE"))
}

func TestNotifyStatusAtMostOncePerPeriod(t *testing.T) {
	msgs := notifySocket(t)
	f := newFixture(t, func(c *SupervisorConfig) { c.Runner = IdleRunner{} })
	orders := adopt(t, f.reg, "orders")
	const period = 200 * time.Millisecond
	start := time.Now()
	startNotifier(t, f, func(n *notifier) { n.statusEvery = period })
	msgs.Next(t, "READY=1", msgPrefix("READY=1"))

	for range 10 {
		if err := orders.Fault(codes.KinesisThroughputExceeded, nil); err != nil {
			t.Fatal(err)
		}
		if err := orders.Recover(codes.OwnerSink); err != nil {
			t.Fatal(err)
		}
	}
	if err := orders.Fault(codes.InternalError, nil); err != nil {
		t.Fatal(err)
	}
	_, seen := msgs.Next(t, "the last change", msgIs("STATUS=1 stream: 1 IMPAIRED (orders: INTERNAL_ERROR)"))
	// READY=1 and the STATUS lines in between, and the last one: each
	// STATUS went out at least one period after the one before.
	sent := len(seen) + 2
	if limit := int(time.Since(start)/period) + 1; sent > limit {
		t.Fatalf("%d STATUS updates in %v, at most %d at one per %v: %q", sent, time.Since(start), limit, period, seen)
	}
}

func TestNotifyWatchdogOnlyWhileLive(t *testing.T) {
	msgs := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "100000")
	var wedged atomic.Bool
	unwedge := make(chan struct{})
	f := newFixture(t, func(c *SupervisorConfig) {
		// A runner whose lock is stuck: Describe never returns.
		c.Runner = funcRunner{describe: func(*state.Stream) (*api.SourceInfo, *api.TargetInfo) {
			if wedged.Load() {
				<-unwedge
			}
			return nil, nil
		}}
	})
	adopt(t, f.reg, "orders")
	startNotifier(t, f, func(n *notifier) {
		if n.ping != 50*time.Millisecond {
			t.Errorf("ping every %v with WATCHDOG_USEC=100000", n.ping)
		}
	})
	msgs.Next(t, "WATCHDOG=1", msgIs("WATCHDOG=1"))

	wedged.Store(true)
	// One ping may be on its way from a check that passed just before.
	if n := msgs.Count("WATCHDOG=1", 20*50*time.Millisecond); n > 1 {
		t.Fatalf("%d watchdog pings while the supervisor does not answer", n)
	}
	close(unwedge)
	wedged.Store(false)
	msgs.Next(t, "WATCHDOG=1 once the supervisor answers", msgIs("WATCHDOG=1"))
}

func TestNotifyWatchdogNeedsHTTP(t *testing.T) {
	msgs := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "100000")
	f := newFixture(t, nil)
	startNotifier(t, f, nil)
	msgs.Next(t, "WATCHDOG=1", msgIs("WATCHDOG=1"))

	f.srv.Close()
	if n := msgs.Count("WATCHDOG=1", 20*50*time.Millisecond); n > 1 {
		t.Fatalf("%d watchdog pings with the HTTP server closed", n)
	}
}

func TestNotifyStoppingOnCancel(t *testing.T) {
	msgs := notifySocket(t)
	f := newFixture(t, func(c *SupervisorConfig) { c.Runner = IdleRunner{} })
	adopt(t, f.reg, "orders")
	stop := startNotifier(t, f, nil)
	msgs.Next(t, "READY=1", msgPrefix("READY=1"))

	stop()
	msgs.Next(t, "STOPPING=1", msgIs("STOPPING=1\nSTATUS=stopping: 1 stream: 1 ACTIVE"))
}

func TestNotifyNothingWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	f := newFixture(t, nil)
	n := newNotifier(slog.New(slog.DiscardHandler), f.reg, func(context.Context) error { return nil })
	if n != nil {
		t.Fatalf("notifier without NOTIFY_SOCKET: %+v", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.run(ctx) // waits for ctx only
}

func TestSummary(t *testing.T) {
	for _, tc := range []struct {
		streams []streamState
		want    string
	}{
		{nil, "no streams"},
		{[]streamState{{name: "orders", status: state.Active}}, "1 stream: 1 ACTIVE"},
		{[]streamState{
			{name: "a", status: state.Active},
			{name: "b", status: state.Impaired, code: codes.KinesisThroughputExceeded},
			{name: "c", status: state.Active},
		}, "3 streams: 2 ACTIVE, 1 IMPAIRED (b: KINESIS_THROUGHPUT_EXCEEDED)"},
		{[]streamState{
			{name: "a", status: state.Failed, code: codes.SourceSlotLost},
			{name: "b", status: state.Deleting},
			{name: "c", status: state.Creating},
			{name: "d", status: state.Creating},
			{name: "e", status: state.Creating},
			{name: "f", status: state.Creating},
			{name: "g", status: state.Creating},
		}, "7 streams: 5 CREATING (c, d, e, +2 more), 1 FAILED (a: SOURCE_SLOT_LOST), 1 DELETING (b)"},
	} {
		if got := summary(tc.streams); got != tc.want {
			t.Errorf("summary = %q, want %q", got, tc.want)
		}
	}
}

func TestLoopback(t *testing.T) {
	for _, tc := range []struct{ listen, want string }{
		{"0.0.0.0:9180", "127.0.0.1:9180"},
		{"[::]:9180", "[::1]:9180"},
		{"127.0.0.2:9180", "127.0.0.2:9180"},
		{"[::1]:9180", "[::1]:9180"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tc.listen)
		if err != nil {
			t.Fatal(err)
		}
		if got := loopback(addr); got != tc.want {
			t.Errorf("loopback(%s) = %s, want %s", tc.listen, got, tc.want)
		}
	}
}
