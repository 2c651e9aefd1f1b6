package testenv

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// Notifications stands in for systemd's notify socket: a unixgram socket
// whose datagrams (sd_notify messages) arrive on C.
type Notifications struct {
	// Path is the socket, for NOTIFY_SOCKET.
	Path string
	C    <-chan string
}

// NotifySocket listens on a socket in a temporary directory until the test
// ends. Datagrams that find C full are dropped, so that a test that stops
// reading never blocks the process it watches.
func NotifySocket(t testing.TB) *Notifications {
	t.Helper()
	path := filepath.Join(t.TempDir(), "n.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := make(chan string, 1000)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			select {
			case c <- string(buf[:n]):
			default:
			}
		}
	}()
	return &Notifications{Path: path, C: c}
}

// Next returns the next message for which ok holds and those that came
// before it, or fails the test naming what; the deadline only guards
// against hanging.
func (n *Notifications) Next(t testing.TB, what string, ok func(string) bool) (string, []string) {
	t.Helper()
	var seen []string
	deadline := time.After(60 * time.Second)
	for {
		select {
		case m := <-n.C:
			if ok(m) {
				return m, seen
			}
			seen = append(seen, m)
		case <-deadline:
			t.Fatalf("no %s; got %q", what, seen)
		}
	}
}

// Count counts the messages equal to msg that arrive within d.
func (n *Notifications) Count(msg string, d time.Duration) int {
	count := 0
	window := time.After(d)
	for {
		select {
		case m := <-n.C:
			if m == msg {
				count++
			}
		case <-window:
			return count
		}
	}
}
