package testenv

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The end-to-end suites check that cdcd never logs a row value or a secret
// (docs/lifecycle.md#status-reason). RunCheckingLogs gives a suite a log
// directory; Start writes the output of every process there, a file per
// process named after its test, and tests add other output (cdcd tail's
// log, status reasons) with LogFile. After the tests ScanLogs reads every
// file for the forbidden strings: the workloads' markers, the environment's
// PostgreSQL password and AWS secret key, and what the suite adds.

// Markers the workloads write into rows; no log may hold them.
const (
	// MarkerText goes into text columns, alone or inside longer values.
	MarkerText = "rowvalue-Qx7mark"
	// MarkerNumber goes into integer columns (it fits an int4).
	MarkerNumber = 1789432651
)

// logDir is the suite's log directory, set by RunCheckingLogs before the
// tests run; empty when the suite does not check its logs.
var logDir string

// minSecretLen is the shortest secret worth looking for: a shorter one
// (the old test password "cdcd") would match ordinary words.
const minSecretLen = 8

// Forbidden is a string no log may hold, and how a report names it: a
// secret is named, never repeated.
type Forbidden struct{ Text, Name string }

// Leak is a forbidden string found in a log.
type Leak struct {
	File string
	Line int
	What string // the Forbidden's Name
}

func (l Leak) String() string { return fmt.Sprintf("%s:%d: %s", l.File, l.Line, l.What) }

// RunCheckingLogs is RunWithCdcd for a suite whose logs must hold no row
// value and no secret: after the tests it scans what LogFile collected for
// the markers, the environment's secrets and extra. A hit fails the suite
// with the file and line; the directory is then kept for reading.
func RunCheckingLogs(m *testing.M, bin *string, extra ...Forbidden) int {
	dir, err := os.MkdirTemp("", "cdcd-logs-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logDir = dir
	code := RunWithCdcd(m, bin)
	forbidden, err := suiteForbidden(extra)
	var leaks []Leak
	if err == nil {
		leaks, err = ScanLogs(dir, forbidden)
	}
	for _, l := range leaks {
		fmt.Fprintf(os.Stderr, "FAIL: a log holds %s\n", l)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: scan the logs: %v\n", err)
	}
	if err != nil || len(leaks) > 0 {
		code = 1
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "the processes' logs are kept in %s\n", dir)
		return code
	}
	os.RemoveAll(dir)
	return 0
}

// suiteForbidden is extra plus the markers and the environment's secrets.
func suiteForbidden(extra []Forbidden) ([]Forbidden, error) {
	out := []Forbidden{
		{MarkerText, "the workload's text marker " + MarkerText},
		{strconv.Itoa(MarkerNumber), "the workload's number marker " + strconv.Itoa(MarkerNumber)},
		{SecretAccessKey, "the AWS secret access key"},
	}
	if v := os.Getenv("AWS_SECRET_ACCESS_KEY"); v != "" && v != SecretAccessKey {
		out = append(out, Forbidden{v, "the AWS secret access key (AWS_SECRET_ACCESS_KEY)"})
	}
	if dsn := os.Getenv(VarPGDSN); dsn != "" {
		u, err := url.Parse(dsn)
		if err != nil {
			return nil, fmt.Errorf("%s does not parse", VarPGDSN)
		}
		if pw, ok := u.User.Password(); ok {
			if len(pw) < minSecretLen {
				return nil, fmt.Errorf("the PostgreSQL password of %s is too short to look for in logs: start the servers with `make infra-up`, which sets a longer one", VarPGDSN)
			}
			out = append(out, Forbidden{pw, "the PostgreSQL password of " + VarPGDSN})
		}
	}
	out = append(out, extra...)
	for _, f := range out {
		if len(f.Text) < minSecretLen {
			return nil, fmt.Errorf("%s is too short to look for in logs: %d characters, want %d", f.Name, len(f.Text), minSecretLen)
		}
	}
	return out, nil
}

// LogFile returns a new file in the suite's log directory for the output
// of one process (what) of test t, closed when the test ends; io.Discard
// when the suite does not check its logs. Call it before registering the
// cleanup that stops the process, so the file outlives the process.
func LogFile(t testing.TB, what string) io.Writer {
	t.Helper()
	if logDir == "" {
		return io.Discard
	}
	name := fmt.Sprintf("%s.%s.%d.log", fileSafe(t.Name()), what, seq.Add(1))
	f, err := os.Create(filepath.Join(logDir, name))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func fileSafe(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator || r < ' ' {
			return '_'
		}
		return r
	}, name)
}

// ScanLogs reports every line of every file in dir that holds a forbidden
// string, in file and line order.
func ScanLogs(dir string, forbidden []Forbidden) ([]Leak, error) {
	files, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var leaks []Leak
	for _, fi := range files {
		if fi.IsDir() {
			continue
		}
		found, err := scanFile(filepath.Join(dir, fi.Name()), forbidden)
		if err != nil {
			return leaks, err
		}
		leaks = append(leaks, found...)
	}
	return leaks, nil
}

// scanFile searches the whole file for each string, so a line of any
// length is searched, and counts lines only for a hit.
func scanFile(path string, forbidden []Forbidden) ([]Leak, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var leaks []Leak
	for _, fb := range forbidden {
		for off := 0; off < len(data); {
			i := bytes.Index(data[off:], []byte(fb.Text))
			if i < 0 {
				break
			}
			at := off + i
			leaks = append(leaks, Leak{File: path, Line: bytes.Count(data[:at], []byte{'\n'}) + 1, What: fb.Name})
			end := bytes.IndexByte(data[at:], '\n')
			if end < 0 {
				break
			}
			off = at + end + 1 // one report per line and string
		}
	}
	slices.SortStableFunc(leaks, func(a, b Leak) int { return a.Line - b.Line })
	return leaks, nil
}
