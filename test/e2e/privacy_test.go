package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/test/stsstub"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// Passwords of roles the tests create; with the markers, no log may hold them.
const (
	firstPassword  = "first-secret"
	secondPassword = "second-secret"
	checkPassword  = "check-role-pw"
)

// farTimestamp is valid in PostgreSQL but past what the record format can
// carry (docs/records.md#values), so a transaction holding it cannot be
// encoded: the value the errors must not quote.
const farTimestamp = "294270-03-14 15:09:26"

// lsnIn matches a message naming an LSN (" at 3/9F0882F0").
var lsnIn = regexp.MustCompile(` at [0-9A-F]{1,8}/[0-9A-F]{1,8}\b`)

// logForbidden is what this suite's logs must not hold besides the
// markers and the environment's secrets (testenv.RunCheckingLogs).
var logForbidden = []testenv.Forbidden{
	{Text: firstPassword, Name: "a role password (" + firstPassword + ")"},
	{Text: secondPassword, Name: "a role password (" + secondPassword + ")"},
	{Text: checkPassword, Name: "a role password (" + checkPassword + ")"},
	{Text: stsstub.SecretKeyPrefix, Name: "a secret key from the STS stand-in"},
	{Text: stsstub.SessionTokenPrefix, Name: "a session token from the STS stand-in"},
	{Text: farTimestamp[:len("294270-03-14")], Name: "the out-of-range timestamp " + farTimestamp},
}

// TestValueErrorNamesColumnNotValue: a transaction with a timestamp the
// record format cannot carry impairs the stream with INTERNAL_ERROR and a
// message naming the table, column, type and LSN; neither that message
// (GetStream, /readyz) nor the log nor a metric holds the value, nor the
// markers of that row and of the one delivered before it (the daemon
// handles transactions in order, so it had the first one by then). The
// suite's log scan checks the files this test writes.
func TestValueErrorNamesColumnNotValue(t *testing.T) {
	h := newHarness(t, harnessOptions{tables: []string{"public.vault"}})
	h.exec(`CREATE TABLE vault (id int PRIMARY KEY, label text, n int, at timestamptz)`)
	d := h.start()
	h.exec(`INSERT INTO vault VALUES (1, $1, $2, now())`, "note "+testenv.MarkerText, testenv.MarkerNumber)
	h.exec(`INSERT INTO vault VALUES (2, $1, $2, $3)`, testenv.MarkerText, testenv.MarkerNumber, farTimestamp+"+00")
	h.waitStatus("IMPAIRED", "INTERNAL_ERROR", 30*time.Second)

	cluster, stream := h.streamIDs()
	status := h.get(t, "/stream/"+cluster+"/"+stream)
	for _, want := range []string{`\"public\".\"vault\" column \"at\"`, "type timestamptz, OID 1184", "encode transaction"} {
		if !strings.Contains(status, want) {
			t.Errorf("GetStream's status reason does not name %s: %s", want, status)
		}
	}
	if !lsnIn.MatchString(status) {
		t.Errorf("GetStream's status reason names no LSN: %s", status)
	}
	ready := h.get(t, "/readyz")
	metrics := h.get(t, "/metrics")
	for what, text := range map[string]string{"GetStream": status, "/readyz": ready, "/metrics": metrics, "the log": d.Logs()} {
		for _, f := range []string{"294270", testenv.MarkerText, strconv.Itoa(testenv.MarkerNumber)} {
			if strings.Contains(text, f) {
				t.Errorf("%s holds a row value (%s)", what, f)
			}
		}
	}
	d.stop(t)
}

// get fetches path from the daemon's listener and keeps the body with the
// suite's logs for the scan; the control plane needs no authentication on
// loopback.
func (h *harness) get(t *testing.T, path string) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + h.listen + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(testenv.LogFile(t, "http"), "GET %s: %s\n%s\n", path, resp.Status, body)
	return string(body)
}
