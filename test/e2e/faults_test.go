package e2e

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/test/faultproxy"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// proxiedHarness is a harness whose daemon reaches Kinesis through a fault
// proxy, streaming the table items (id int PRIMARY KEY, v text).
func proxiedHarness(t *testing.T, shards int) (*harness, *faultproxy.Proxy) {
	env := testenv.Require(t)
	proxy := faultproxy.New(env.KinesisEndpoint).Start(t)
	h := newHarness(t, harnessOptions{tables: []string{"public.items"}, shards: shards, kinesisEndpoint: proxy.URL()})
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	return h, proxy
}

// TestKinesisFaultsImpairAndRecover puts a fault-injecting proxy in front of
// Kinesis: each whole-call error impairs the stream with its code while
// changes keep being captured, and clearing it returns the stream to ACTIVE
// with everything delivered; per-record throttling is retried without
// impairing; a vanished target stream fails the stream.
func TestKinesisFaultsImpairAndRecover(t *testing.T) {
	t.Parallel()
	h, proxy := proxiedHarness(t, 2)
	d := h.start()
	h.waitStatus("ACTIVE", "", 30*time.Second)
	id := 0
	insert := func(n int) {
		for range n {
			id++
			h.exec(`INSERT INTO items VALUES ($1, 'x')`, id)
		}
	}

	for _, tc := range []struct{ err, code string }{
		{"AccessDeniedException", "KINESIS_ACCESS_DENIED"},
		{"KMSDisabledException", "KINESIS_KMS_ACCESS_DENIED"},
		{"KMSAccessDeniedException", "KINESIS_KMS_ACCESS_DENIED"},
		{"KMSNotFoundException", "KINESIS_KMS_ACCESS_DENIED"},
	} {
		proxy.Inject(faultproxy.Rule{Op: "PutRecords", Err: tc.err})
		insert(5)
		h.waitStatus("IMPAIRED", tc.code, 30*time.Second)
		insert(5)
		proxy.Clear()
		h.waitStatus("ACTIVE", "", 30*time.Second)
		h.waitIDs(id, 60*time.Second)
	}

	// Per-record throttling and internal failures: only the failed entries
	// are sent again, and the stream stays ACTIVE. Each entry fails up to
	// twice, so none stays undelivered for anything near the 30 s after
	// which throttling would impair the stream.
	rng := rand.New(rand.NewPCG(1, 2))
	failuresLeft := map[string]int{} // by entry data; the decider's calls are serialised
	proxy.FailRecordsWith("PutRecords", func(_ int, e faultproxy.Entry) string {
		left, seen := failuresLeft[string(e.Data)]
		if !seen {
			left = rng.IntN(3)
		}
		if left == 0 {
			failuresLeft[string(e.Data)] = 0
			return ""
		}
		failuresLeft[string(e.Data)] = left - 1
		if rng.IntN(2) == 0 {
			return faultproxy.CodeThroughputExceeded
		}
		return faultproxy.CodeInternalFailure
	})
	proxy.ResetCounts()
	impaired := h.metric("cdcd_stream_transitions_total", `to="IMPAIRED"`)
	const throttled = 200
	insert(throttled)
	h.waitIDs(id, 60*time.Second)
	proxy.Clear()
	entries, failed := proxy.Entries(), 0
	for data, c := range entries {
		if c.Forwarded != 1 {
			t.Errorf("entry forwarded %d times after %d failures, want once: %s", c.Forwarded, c.Failed, data)
		}
		failed += c.Failed
	}
	if len(entries) != throttled || failed == 0 {
		t.Errorf("%d distinct entries sent, %d failures; want %d entries, some failed", len(entries), failed, throttled)
	}
	if n := h.metric("cdcd_stream_transitions_total", `to="IMPAIRED"`); n != impaired {
		t.Errorf("the stream was impaired %v times under per-record failures", n-impaired)
	}
	h.waitStatus("ACTIVE", "", 5*time.Second)

	// The target stream is gone: FAILED at once.
	proxy.Inject(faultproxy.Rule{Op: "PutRecords", Err: "ResourceNotFoundException"})
	insert(1)
	h.waitStatus("FAILED", "KINESIS_STREAM_NOT_FOUND", 30*time.Second)
	d.stop(t)
}

// TestImpairedStreamRecoversAfterRestart: a stream IMPAIRED by a Kinesis
// error, restarted once Kinesis accepts again, delivers and returns to
// ACTIVE (docs/lifecycle.md#re-evaluation-after-a-restart: the sink, which
// owns the code, clears it on its first evidence after the restart).
func TestImpairedStreamRecoversAfterRestart(t *testing.T) {
	t.Parallel()
	h, proxy := proxiedHarness(t, 1)
	d := h.start()
	proxy.Inject(faultproxy.Rule{Op: "PutRecords", Err: "AccessDeniedException"})
	h.exec(`INSERT INTO items VALUES (1, 'x')`)
	h.waitStatus("IMPAIRED", "KINESIS_ACCESS_DENIED", 30*time.Second)
	d.stop(t)

	proxy.Clear()
	d = h.start()
	h.exec(`INSERT INTO items VALUES (2, 'x')`)
	h.waitIDs(2, 30*time.Second)
	h.waitStatus("ACTIVE", "", 30*time.Second)
	d.stop(t)
}

// TestSourceShutdownWhileImpaired: while Kinesis refuses every PutRecords
// the stream is IMPAIRED and cdcd confirms nothing to the slot, yet a fast
// shutdown of PostgreSQL completes within 10 s. Once PostgreSQL and Kinesis
// are back, every change written before the shutdown arrives. It stops the
// shared server, which make test allows (one package at a time), so it is
// not parallel: it runs before the package's parallel tests start.
func TestSourceShutdownWhileImpaired(t *testing.T) {
	env := testenv.Require(t)
	proxy := faultproxy.New(env.KinesisEndpoint).Start(t)
	h := newHarness(t, harnessOptions{tables: []string{"public.items"}, kinesisEndpoint: proxy.URL()})
	testenv.RestorePG(t, env)
	h.exec(`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	d := h.start()
	h.waitStatus("ACTIVE", "", 30*time.Second)
	proxy.Inject(faultproxy.Rule{Op: "PutRecords", Err: "AccessDeniedException"})
	const rows = 20
	for i := 1; i <= rows; i++ {
		h.exec(`INSERT INTO items VALUES ($1, 'x')`, i)
	}
	h.waitStatus("IMPAIRED", "KINESIS_ACCESS_DENIED", 30*time.Second)

	h.db.Close(context.Background())
	begin := time.Now()
	if err := env.StopPG("fast", 10*time.Second); err != nil {
		t.Fatalf("fast shutdown while the stream is IMPAIRED did not complete within 10 s: %v", err)
	}
	t.Logf("fast shutdown took %v", time.Since(begin).Round(time.Millisecond))
	if err := env.StartPG(); err != nil {
		t.Fatal(err)
	}
	h.db = h.conn()
	t.Cleanup(func() { h.db.Close(context.Background()) })
	proxy.Clear()
	h.waitIDs(rows, 60*time.Second)
	h.waitStatus("ACTIVE", "", 30*time.Second)
	d.stop(t)
}
