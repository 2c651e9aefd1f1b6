package pipeline

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/cdcd-dev/cdcd/codes"
	"github.com/cdcd-dev/cdcd/state"
)

// What the daemon tells systemd through NOTIFY_SOCKET (sd_notify), and when
// (contrib/systemd/README.md):
//
//   - READY=1 once the streams have settled: no stream is CREATING, that
//     is every stream the supervisor runs has reached ACTIVE, IMPAIRED or
//     FAILED (or is being deleted). A source that is down keeps its
//     streams CREATING for as long as it is down, and a unit that never
//     becomes ready holds up boot until TimeoutStartSec kills it, so after
//     readyWait READY=1 is sent anyway, with a STATUS naming the streams
//     still CREATING.
//   - STATUS= is a one-line summary of the streams, sent when it changes
//     (each stream's Watch channel, and a rescan for streams created or
//     removed through the API), at most once per statusEvery.
//   - WATCHDOG=1 every half WATCHDOG_USEC, from the notify loop and only
//     while the daemon is live: the supervisor answers (its lock is free
//     and Streams returns, which takes the runner's lock too) and the HTTP
//     server answers /healthz on a new connection, each within
//     probeTimeout. A wedged daemon stops pinging, and systemd kills and
//     restarts it; a ping from a goroutine of its own would prove nothing.
//   - STOPPING=1 when shutdown begins.
//
// Without NOTIFY_SOCKET nothing is sent and nothing is probed.
const (
	readyWait    = 60 * time.Second
	statusEvery  = time.Second
	rescanEvery  = 5 * time.Second
	probeTimeout = 5 * time.Second
)

// nameTag is the tag that carries a configured stream's name from the file.
const nameTag = "cdcd:name"

// notifier runs the notification loop for one daemon run.
type notifier struct {
	log   *slog.Logger
	sup   *Supervisor
	probe func(context.Context) error
	send  func(string) error
	// ping is how often WATCHDOG=1 is due: half of WATCHDOG_USEC, or zero
	// without a watchdog.
	ping                                          time.Duration
	readyWait, statusEvery, rescan, probeDeadline time.Duration
	// calls lets one supervisor call at a time run past its deadline.
	calls *bounded

	ready    bool
	last     string // the last STATUS summary sent
	lastSent time.Time
	healthy  bool
}

// newNotifier returns nil when NOTIFY_SOCKET is unset: cdcd is not run by
// systemd's notify protocol, and the loop only waits for ctx.
func newNotifier(log *slog.Logger, sup *Supervisor, probe func(context.Context) error) *notifier {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	n := &notifier{log: log, sup: sup, probe: probe, send: sdNotify, readyWait: readyWait,
		statusEvery: statusEvery, rescan: rescanEvery, probeDeadline: probeTimeout, calls: newBounded(), healthy: true}
	wd, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("ignoring the systemd watchdog setting", "err", err)
	}
	if wd > 0 {
		n.ping = wd / 2
		// A probe must end before the next ping is due.
		n.probeDeadline = min(n.probeDeadline, n.ping)
	}
	return n
}

func sdNotify(msg string) error {
	_, err := daemon.SdNotify(false, msg)
	return err
}

// notify runs the notification loop for Daemon.Run until ctx ends.
func (d *Daemon) notify(ctx context.Context, sup *Supervisor, httpProbe func(context.Context) error) {
	newNotifier(d.log.With("component", "systemd"), sup, httpProbe).run(ctx)
}

// run reports to systemd until ctx ends, then sends STOPPING=1.
func (n *notifier) run(ctx context.Context) {
	if n == nil {
		<-ctx.Done()
		return
	}
	start := time.Now()
	readyTimer := time.NewTimer(n.readyWait)
	defer readyTimer.Stop()
	rescan := time.NewTicker(n.rescan)
	defer rescan.Stop()
	var ping <-chan time.Time
	if n.ping > 0 {
		t := time.NewTicker(n.ping)
		defer t.Stop()
		ping = t.C
	}
	var streams []streamState
	for {
		wctx, stopWatch := context.WithCancel(ctx)
		cur, changed, ok := n.survey(wctx)
		if ok {
			streams = cur
		}
		var due <-chan time.Time
		if wait := n.report(streams, time.Since(start) >= n.readyWait); wait > 0 {
			due = time.After(wait)
		}
		select {
		case <-ctx.Done():
			stopWatch()
			n.notify("STOPPING=1\nSTATUS=stopping: " + summary(streams))
			return
		case <-ping:
			n.watchdog(ctx)
		case <-changed:
		case <-due:
		case <-rescan.C:
		case <-readyTimer.C:
		}
		stopWatch()
	}
}

// report sends READY=1 once the streams have settled or waited is true,
// and STATUS when the summary changed, at most once per statusEvery. It
// returns how long a STATUS it holds back has to wait.
func (n *notifier) report(streams []streamState, waited bool) time.Duration {
	line := summary(streams)
	if !n.ready {
		creating := namesWith(streams, state.Creating)
		if len(creating) > 0 && !waited {
			return n.status(line)
		}
		// READY=1 carries a STATUS, so it keeps to statusEvery as well.
		if wait := n.statusEvery - time.Since(n.lastSent); wait > 0 {
			return wait
		}
		msg := line
		if len(creating) > 0 {
			msg = fmt.Sprintf("still CREATING after %v: %s", n.readyWait, line)
			n.log.Warn("telling systemd the daemon is ready while streams are still CREATING", "waited", n.readyWait, "streams", creating)
		}
		n.ready = true
		n.notify("READY=1\nSTATUS=" + msg)
		n.last, n.lastSent = line, time.Now()
		return 0
	}
	return n.status(line)
}

// status sends STATUS=line unless it is what was last sent, or returns how
// long it has to wait to keep to statusEvery.
func (n *notifier) status(line string) time.Duration {
	if line == n.last {
		return 0
	}
	if wait := n.statusEvery - time.Since(n.lastSent); wait > 0 {
		return wait
	}
	n.notify("STATUS=" + line)
	n.last, n.lastSent = line, time.Now()
	return 0
}

// watchdog pings systemd if the daemon is live, and logs when that changes.
func (n *notifier) watchdog(ctx context.Context) {
	err := n.live(ctx)
	switch {
	case err == nil:
		if !n.healthy {
			n.log.Info("daemon answers again; watchdog pings resume")
		}
		n.notify("WATCHDOG=1")
	case n.healthy:
		n.log.Error("withholding the watchdog ping: the daemon does not answer; systemd restarts it if this lasts", "err", err)
	}
	n.healthy = err == nil
}

// live checks that the supervisor and the HTTP server answer in time.
func (n *notifier) live(ctx context.Context) error {
	if !n.calls.run(n.probeDeadline, func() { _, _ = n.sup.Streams(ctx) }) {
		return fmt.Errorf("the supervisor did not list its streams within %v", n.probeDeadline)
	}
	pctx, cancel := context.WithTimeout(ctx, n.probeDeadline)
	defer cancel()
	if err := n.probe(pctx); err != nil {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

func (n *notifier) notify(msg string) {
	if err := n.send(msg); err != nil {
		n.log.Warn("systemd notification failed", "err", err, "msg", msg)
	}
}

// streamState is what STATUS and READY need of one stream.
type streamState struct {
	name   string
	status state.Status
	code   codes.Code
}

// survey lists the streams, sorted by name, and returns a channel closed
// at the next change of any of them (or when ctx ends). It fails when the
// supervisor does not answer within the probe deadline.
func (n *notifier) survey(ctx context.Context) ([]streamState, <-chan struct{}, bool) {
	var streams []streamState
	var chans []<-chan struct{}
	if !n.calls.run(n.probeDeadline, func() { streams, chans = n.watchAll(ctx) }) {
		return nil, nil, false
	}
	slices.SortFunc(streams, func(a, b streamState) int { return cmp.Compare(a.name, b.name) })
	return streams, anyClosed(ctx, chans), true
}

func (n *notifier) watchAll(ctx context.Context) ([]streamState, []<-chan struct{}) {
	views, _ := n.sup.Streams(ctx)
	streams := make([]streamState, 0, len(views))
	chans := make([]<-chan struct{}, 0, len(views))
	for _, v := range views {
		s, ok := n.sup.Stream(v.Definition.StreamID)
		if !ok {
			continue // removed in between
		}
		snap, changed := s.Watch()
		if snap.Status == state.Deleted {
			continue
		}
		st := streamState{name: cmp.Or(snap.Definition.Tags[nameTag], snap.Definition.StreamID), status: snap.Status}
		if snap.StatusReason != nil {
			st.code = snap.StatusReason.Code
		}
		streams, chans = append(streams, st), append(chans, changed)
	}
	return streams, chans
}

// anyClosed returns a channel closed once any of chans is closed or ctx
// ends.
func anyClosed(ctx context.Context, chans []<-chan struct{}) <-chan struct{} {
	cases := make([]reflect.SelectCase, 0, len(chans)+1)
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())})
	for _, c := range chans {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
	}
	out := make(chan struct{})
	go func() {
		reflect.Select(cases)
		close(out)
	}()
	return out
}

// summary is the STATUS line, such as "3 streams: 2 ACTIVE, 1 IMPAIRED
// (orders: KINESIS_THROUGHPUT_EXCEEDED)": every status but ACTIVE names its
// streams, with their reason codes.
func summary(streams []streamState) string {
	if len(streams) == 0 {
		return "no streams"
	}
	var parts []string
	for _, st := range []state.Status{state.Creating, state.Active, state.Impaired, state.Failed, state.Deleting} {
		names := namesWith(streams, st)
		if len(names) == 0 {
			continue
		}
		part := fmt.Sprintf("%d %s", len(names), st)
		if st != state.Active {
			part += " (" + shortList(names, 3) + ")"
		}
		parts = append(parts, part)
	}
	noun := "streams"
	if len(streams) == 1 {
		noun = "stream"
	}
	return fmt.Sprintf("%d %s: %s", len(streams), noun, strings.Join(parts, ", "))
}

// namesWith names the streams in status st, with their reason codes.
func namesWith(streams []streamState, st state.Status) []string {
	var names []string
	for _, s := range streams {
		if s.status != st {
			continue
		}
		if s.code != "" {
			names = append(names, s.name+": "+string(s.code))
		} else {
			names = append(names, s.name)
		}
	}
	return names
}

// shortList joins up to max names and counts the rest, so that STATUS stays
// one readable line with any number of streams.
func shortList(names []string, max int) string {
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s, +%d more", strings.Join(names[:max], ", "), len(names)-max)
}

// bounded runs calls that may hang (a wedged supervisor) under a deadline.
// A call that overruns is left to finish on its own, and until it does
// every further call fails at once: a wedged daemon costs one goroutine,
// not one per tick.
type bounded struct{ free chan struct{} }

func newBounded() *bounded {
	b := &bounded{free: make(chan struct{}, 1)}
	b.free <- struct{}{}
	return b
}

// run reports whether f returned within d; only then may the caller use
// what f wrote.
func (b *bounded) run(d time.Duration, f func()) bool {
	select {
	case <-b.free:
	default:
		return false
	}
	done := make(chan struct{})
	go func() {
		f()
		close(done)
		b.free <- struct{}{}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// httpProbe returns a check that GETs /healthz from the daemon's own
// listener on a new connection, so that it proves the server still accepts.
func httpProbe(addr net.Addr, overTLS bool) func(context.Context) error {
	url := "http://" + loopback(addr) + "/healthz"
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if overTLS {
		// The daemon asks its own listener, on loopback, which the
		// certificate need not name; it sends nothing and believes
		// nothing of the answer but its status.
		url = "https://" + loopback(addr) + "/healthz"
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	client := &http.Client{Transport: tr}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return errors.New("/healthz answered " + resp.Status)
		}
		return nil
	}
}

// loopback is a dialable form of a listener's address: a wildcard listener
// is reached on loopback.
func loopback(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	ip := tcp.IP
	switch {
	case ip == nil || ip.IsUnspecified() && ip.To4() != nil:
		ip = net.IPv4(127, 0, 0, 1)
	case ip.IsUnspecified():
		ip = net.IPv6loopback
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
}
