package e2e

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/state"
	"github.com/cdcd-dev/cdcd/test/faultproxy"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// The size of TestMessagesBoundedDuringOutage. make test runs it small
// (about 5 s); the full run, 100k calls and a 60 s outage, is
// `go test ./test/e2e -run MessagesBounded -emit 100000 -outage 60s`.
var (
	outage = flag.Duration("outage", 3*time.Second, "how long TestMessagesBoundedDuringOutage keeps Kinesis failing, at least while cdcd reads its workload")
	emit   = flag.Int("emit", 10000, "pg_logical_emit_message calls of TestMessagesBoundedDuringOutage, at least 10000")
)

// TestMessagesBoundedDuringOutage: while Kinesis fails every PutRecords and
// holds one transaction's record, pg_logical_emit_message calls (a tenth
// in transactions of one message, a thousand outside any transaction, the
// rest in transactions of a thousand) cost the sink's position tracker and
// the pipeline's pending checkpoints a bounded number of entries, nothing
// is confirmed past the held record, and once Kinesis is back everything
// is delivered and the slot's confirmed position passes the end of the
// workload (docs/delivery.md#bounded-memory).
func TestMessagesBoundedDuringOutage(t *testing.T) {
	t.Parallel() // its own database, slot and Kinesis stream
	h, proxy := proxiedHarness(t, 1)
	d := h.start()
	h.waitStatus("ACTIVE", "", 30*time.Second)
	txns0 := h.metric("cdcd_capture_transactions_total") + 1 // and the held row's
	begin := time.Now()
	proxy.Inject(faultproxy.Rule{Op: "PutRecords", Err: "InternalFailure"})
	h.exec(`INSERT INTO items VALUES (1, 'held')`)
	held := h.walInsertLSN()

	txns, msgs := h.emitMessages(*emit)
	end := h.walInsertLSN()
	worst := h.watchPositions(txns0+txns, msgs)
	t.Logf("most entries during the outage: %v", worst)
	const bound = 10
	for name, n := range worst {
		if n > bound {
			t.Errorf("%s reached %v during the outage, want at most %d", name, n, bound)
		}
	}

	time.Sleep(time.Until(begin.Add(*outage)))
	if slot, file := h.confirmed(); slot >= held || file >= held {
		t.Fatalf("slot confirmed %s, checkpoint %s during the outage: at or past %s, beyond the record Kinesis refused",
			state.FormatLSN(slot), state.FormatLSN(file), state.FormatLSN(held))
	}
	t.Logf("Kinesis down for %v", time.Since(begin).Round(time.Second))
	proxy.Clear()
	h.waitIDs(1, 60*time.Second)
	h.waitConfirmedPast(end-1, 60*time.Second)
	h.waitStatus("ACTIVE", "", 60*time.Second)
	d.stop(t)
}

// emitMessages makes n pg_logical_emit_message calls in few statements: a
// tenth in transactions of one message each, a thousand outside any
// transaction, the rest in transactions of a thousand. It returns the
// transactions and the messages capture receives.
func (h *harness) emitMessages(n int) (txns, msgs float64) {
	h.t.Helper()
	const perBatch = 1000
	single := n / 10
	batches := (n - single - perBatch) / perBatch
	h.exec(fmt.Sprintf(`DO $$ BEGIN FOR i IN 1..%d LOOP PERFORM pg_logical_emit_message(true, 'cdcd-test', 'one'); COMMIT; END LOOP; END $$`, single))
	for range batches {
		h.exec(`SELECT count(pg_logical_emit_message(true, 'cdcd-test', 'many')) FROM generate_series(1, 1000)`)
	}
	h.exec(`SELECT count(pg_logical_emit_message(false, 'cdcd-test', 'outside')) FROM generate_series(1, 1000)`)
	return float64(single + batches), float64(single + batches*perBatch + perBatch)
}

// watchPositions samples the gauges of positions held for delivery and
// for the checkpoint until capture has received txns transactions and
// msgs logical messages in all, and once more after, and returns the
// largest value of each.
func (h *harness) watchPositions(txns, msgs float64) map[string]float64 {
	h.t.Helper()
	worst := map[string]float64{}
	sample := func() {
		for _, name := range []string{"cdcd_sink_queued_transactions", "cdcd_unpersisted_transactions"} {
			worst[name] = max(worst[name], h.gauge(name))
		}
	}
	received := func() (float64, float64) {
		return h.metric("cdcd_capture_transactions_total"), h.metric("cdcd_capture_logical_messages_total")
	}
	deadline := time.Now().Add(2 * time.Minute)
	for n, m := received(); n < txns || m < msgs; n, m = received() {
		if time.Now().After(deadline) {
			h.t.Fatalf("capture received %v of %v transactions and %v of %v messages within 2 minutes", n, txns, m, msgs)
		}
		sample()
		time.Sleep(100 * time.Millisecond)
	}
	sample()
	return worst
}

// walInsertLSN is the server's current WAL insert position: with
// synchronous_commit off, the end of what has been written.
func (h *harness) walInsertLSN() uint64 {
	h.t.Helper()
	var lsn int64
	if err := h.db.QueryRow(context.Background(), `SELECT (pg_current_wal_insert_lsn() - '0/0')::int8`).Scan(&lsn); err != nil {
		h.t.Fatal(err)
	}
	return uint64(lsn)
}

// gauge is the daemon's one sample of name, which must be exported.
func (h *harness) gauge(name string) float64 {
	h.t.Helper()
	metrics, err := testenv.Metrics(h.listen)
	if err != nil {
		h.t.Fatal(err)
	}
	v := testenv.Samples(metrics, name)
	if len(v) != 1 {
		h.t.Fatalf("%d samples of %s, want 1", len(v), name)
	}
	return v[0]
}
