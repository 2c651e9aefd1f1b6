package roundtrip

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcd-dev/cdcd/record/pgapply"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// defaultSeed is the workload's seed unless CDCD_ROUNDTRIP_SEED sets one.
const defaultSeed int64 = 20250611

// txns is how many random transactions a run commits.
const txns = 300

// shards is the Kinesis stream's shard count: more than one, so records
// of one transaction spread and UNORDERED delivery can reorder them.
const shards = 4

func seed(t *testing.T) int64 {
	t.Helper()
	s := defaultSeed
	if v := os.Getenv("CDCD_ROUNDTRIP_SEED"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("CDCD_ROUNDTRIP_SEED=%q is not an integer", v)
		}
		s = n
	}
	t.Logf("workload seed %d (set CDCD_ROUNDTRIP_SEED to replay another)", s)
	return s
}

// TestRoundTrip runs the same seeded workload through each ordering and
// demands that both the replica written by `cdcd tail --apply` and a
// preview-contract consumer end up equal to the source. UNORDERED runs with
// aggregation = "kpl", so both consumers deaggregate; one record per
// Kinesis record is ROW's (and every other suite's).
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s := seed(t)
	for _, v := range []struct{ ordering, aggregation string }{{"UNORDERED", "kpl"}, {"ROW", "none"}} {
		t.Run(v.ordering, func(t *testing.T) {
			t.Parallel()
			roundTrip(t, v.ordering, v.aggregation, s)
		})
	}
}

func roundTrip(t *testing.T, ordering, aggregation string, seed int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	h := newHarness(t, ordering, aggregation, shards, tableNames())
	replica := h.connect(h.replicaDSN)
	for _, c := range []*pgx.Conn{h.src, replica} {
		if _, err := c.Exec(ctx, schemaSQL); err != nil {
			t.Fatalf("create schema: %v", err)
		}
	}
	// The walsender formats values in the source database's settings. A
	// server kept in local time is common; an offset of +05:45 shows
	// whether timestamptz still arrives as UTC microseconds.
	if _, err := h.src.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{h.src.Config().Database}.Sanitize()+" SET TimeZone = 'Asia/Kathmandu'"); err != nil {
		t.Fatal(err)
	}
	h.start()

	began := time.Now()
	w := newWorkload(seed)
	if err := w.run(ctx, h.connect(h.srcDSN), txns); err != nil {
		t.Fatalf("workload (seed %d): %v", seed, err)
	}
	t.Logf("workload: %d transactions in %s: %s", txns, time.Since(began).Round(time.Millisecond), w.summary())

	want, err := checksums(ctx, h.src)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("source rows: %s", rowCounts(want))

	// 1. cdcd tail --apply into the replica until it equals the source.
	converged := time.Now()
	waitReplica(ctx, t, h, replica, want, w.beforeMarker)
	t.Logf("replica equal to the source %s after the workload", time.Since(converged).Round(time.Millisecond))

	// 2. The same records through the preview-contract consumer.
	began = time.Now()
	shardData, err := testenv.ReadStream(ctx, testenv.KinesisClient(t, h.env, ""), h.kinesis)
	if err != nil {
		t.Fatal(err)
	}
	var total, bytes int
	for _, s := range shardData {
		total += len(s)
		for _, d := range s {
			bytes += len(d)
		}
	}
	msgs, aggregates, err := decodeShards(shardData)
	if err != nil {
		t.Fatal(err)
	}
	if (aggregates > 0) != (aggregation == "kpl") {
		t.Errorf("%d KPL aggregates in the stream with aggregation = %q", aggregates, aggregation)
	}
	p := newPreview()
	applier, store := fullApplier()
	for _, m := range interleave(rand.New(rand.NewSource(seed)), msgs) {
		full, err := p.add(m)
		if err != nil {
			t.Fatalf("preview consumer: %v", err)
		}
		if full != nil {
			if _, err := applier.Apply(ctx, full); err != nil {
				t.Fatalf("record.Applier: %v", err)
			}
		}
	}
	t.Logf("Kinesis records: %d (%d aggregates, %d bytes) on %d shards; ops %v", total, aggregates, bytes, len(shardData), p.ops)
	for op := range p.ops {
		if op != "c" && op != "u" && op != "d" {
			t.Errorf("op %q in the stream: cdcd emits c, u and d for this workload (docs/records.md#envelope)", op)
		}
	}

	diffs, err := comparePreview(p, store)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Errorf("the preview consumer and record.Applier disagree on %d rows:\n%s", len(diffs), strings.Join(diffs[:min(len(diffs), 10)], "\n"))
	}

	// The preview consumer's rows, written into a third database, must
	// give the source's checksums too.
	third := h.connect(testenv.CreateDB(t, h.env))
	if _, err := third.Exec(ctx, schemaSQL); err != nil {
		t.Fatal(err)
	}
	ap, err := pgapply.New(ctx, third, pgapply.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range asMessages(p) {
		if _, err := ap.Apply(ctx, m); err != nil {
			t.Fatalf("write the preview consumer's row: %v", err)
		}
	}
	got, err := checksums(ctx, third)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("the preview consumer's rows differ from the source:\n%s", describeDiff(ctx, h.src, third))
	}

	// 3. Properties of the stream itself.
	checks := &recordChecks{pk: pkColumns(), versions: map[versionKey]string{}}
	if err := checks.check(msgs, ordering == "ROW"); err != nil {
		t.Fatal(err)
	}
	if len(checks.problems) > 0 {
		t.Errorf("%d problems in the records:\n%s", len(checks.problems), strings.Join(checks.problems, "\n"))
	}
	if checks.chunked == 0 {
		t.Errorf("no chunked record in the stream, yet %d-byte bodies cannot fit a 1 MiB Kinesis record", hugeBody)
	}
	t.Logf("chunked records rebuilt: %d", checks.chunked)
	t.Logf("reading the stream, the consumers and the checks took %s", time.Since(began).Round(time.Millisecond))
}

// waitReplica runs `cdcd tail --apply` until the replica's checksums equal
// want, and fails with the differences otherwise. A tail that goes idle
// before the daemon has delivered everything is started again; one that
// started after the slot was confirmed past beforeMarker has read every
// change, so if the replica still differs when it goes idle, waiting
// longer cannot help.
func waitReplica(ctx context.Context, t *testing.T, h *harness, replica *pgx.Conn, want map[string]checksum, beforeMarker string) {
	t.Helper()
	// The idle limit only ends a tail that has read everything there is;
	// the test stops it once the replica has converged.
	const idle = 10 * time.Second
	var (
		tail     *tailProc
		complete bool // the running tail started after everything was delivered
		starts   int
		got      map[string]checksum
	)
	start := func() error {
		delivered, err := h.delivered(ctx, beforeMarker)
		if err != nil {
			return err
		}
		tail, complete = h.startTail(idle), delivered
		starts++
		return nil
	}
	if err := start(); err != nil {
		t.Fatal(err)
	}
	err := poll(2*time.Minute, func() (bool, error) {
		var err error
		if got, err = checksums(ctx, replica); err != nil {
			return false, err
		}
		if maps.Equal(got, want) {
			return true, nil
		}
		err, exited := tail.exited()
		switch {
		case !exited:
			return false, nil
		case err != nil:
			return false, fmt.Errorf("cdcd tail --apply failed: %v\n%s", err, tail.stderr.String())
		case complete:
			return false, errors.New("cdcd tail --apply read the whole stream after the daemon had delivered every change, and the replica differs")
		}
		return false, start()
	})
	if err != nil {
		t.Fatalf("replica: %v\nsource rows %s, replica rows %s\n%s", err, rowCounts(want), rowCounts(got), describeDiff(ctx, h.src, replica))
	}
	tail.stop(t)
	t.Logf("cdcd tail --apply ran %d times", starts)
}

func rowCounts(sums map[string]checksum) string {
	var parts []string
	for name, s := range sums {
		parts = append(parts, fmt.Sprintf("%s=%d", name, s.rows))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
