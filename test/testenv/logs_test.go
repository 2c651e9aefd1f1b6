package testenv

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestScanLogs: every line holding a forbidden string is reported with its
// file and line, including a last line without a newline and a line longer
// than any scanner buffer; the report names a secret without repeating it.
func TestScanLogs(t *testing.T) {
	dir := t.TempDir()
	const pw = "hunter2-SECRET"
	long := strings.Repeat("x", 1<<18) + strconv.Itoa(MarkerNumber)
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.log", "level=INFO msg=ok\nlevel=ERROR err=\"bad value "+MarkerText+"\"\nlevel=INFO msg=fine\n")
	write("b.log", long+"\nclean\ndsn=postgres://u:"+pw+"@h/db")
	write("c.log", "nothing to see\n")
	forbidden := []Forbidden{
		{MarkerText, "the text marker"},
		{strconv.Itoa(MarkerNumber), "the number marker"},
		{pw, "the password"},
	}
	leaks, err := ScanLogs(dir, forbidden)
	if err != nil {
		t.Fatal(err)
	}
	want := []Leak{
		{filepath.Join(dir, "a.log"), 2, "the text marker"},
		{filepath.Join(dir, "b.log"), 1, "the number marker"},
		{filepath.Join(dir, "b.log"), 3, "the password"},
	}
	if !reflect.DeepEqual(leaks, want) {
		t.Errorf("ScanLogs = %v, want %v", leaks, want)
	}
	for _, l := range leaks {
		if strings.Contains(l.String(), pw) {
			t.Errorf("the report repeats the password: %s", l)
		}
	}
}

// TestLogFileCollectsProcessOutput: what a process started with Start
// writes lands in a file of the suite's log directory that the scan reads.
func TestLogFileCollectsProcessOutput(t *testing.T) {
	old := logDir
	logDir = t.TempDir()
	t.Cleanup(func() { logDir = old })
	p := Start(t, "/bin/sh", nil, "-c", "echo starting; echo >&2 oops "+MarkerText)
	for exited, _ := p.Exited(); !exited; exited, _ = p.Exited() {
		time.Sleep(10 * time.Millisecond)
	}
	leaks, err := ScanLogs(logDir, []Forbidden{{MarkerText, "the marker"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(leaks) != 1 || leaks[0].Line != 2 || !strings.Contains(leaks[0].File, "TestLogFileCollectsProcessOutput.sh.") {
		t.Errorf("leaks = %v, want line 2 of this test's sh log", leaks)
	}
}

// TestSuiteForbiddenRefusesShortSecrets: a password too short to look for
// fails the scan rather than flagging every line or being skipped.
func TestSuiteForbiddenRefusesShortSecrets(t *testing.T) {
	t.Setenv(VarPGDSN, "postgres://cdcd:cdcd@127.0.0.1:5432/cdcd")
	if _, err := suiteForbidden(nil); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Errorf("suiteForbidden with the password cdcd: %v, want an error", err)
	}
	t.Setenv(VarPGDSN, "postgres://cdcd:long-enough-pw@127.0.0.1:5432/cdcd")
	got, err := suiteForbidden([]Forbidden{{"first-secret", "a rotated password"}})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, f := range got {
		texts = append(texts, f.Text)
	}
	for _, want := range []string{"long-enough-pw", "first-secret", MarkerText, SecretAccessKey} {
		if !strings.Contains(strings.Join(texts, "\n"), want) {
			t.Errorf("forbidden strings %q lack %q", texts, want)
		}
	}
}
