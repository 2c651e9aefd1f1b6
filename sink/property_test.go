package sink

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/cenkalti/backoff/v4"

	"github.com/cdcd-dev/cdcd/record"
)

// chaos is a PutRecords that fails at random, completes calls out of order,
// and checks the sink's promises on every call:
//   - requests respect the count and byte limits;
//   - a retried record carries the very bytes it carried first;
//   - ROW: no request holds a key twice, no key is in two requests at once,
//     and each key's records are accepted in submission order;
//   - Delivered never covers a transaction with an unaccepted record.
type chaos struct {
	t        *testing.T
	s        *Sink // set before the first Submit
	row      bool
	maxRecs  int
	maxBytes int

	mu       sync.Mutex
	rng      *rand.Rand
	inFlight map[string]bool // ROW: keys in a request now
	first    map[int]*byte   // record id → Data pointer first sent
	accepted map[int]int     // record id → times accepted
	lastSeq  map[string]int  // key → highest record id accepted
	txnOf    []int           // record id → transaction index
	txnLSN   []uint64        // transaction index → lsn
	txnRecs  [][]int         // transaction index → record ids
	failures map[string]int  // injected failures by code
	wholeErr []error         // whole-call errors to draw from
	recCodes []string        // per-record codes to draw from
	problems []string
}

func (c *chaos) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func recordID(data []byte) int {
	s := string(data)
	n, _ := strconv.Atoi(s[:strings.IndexByte(s, '|')])
	return n
}

// checkDelivered verifies that Delivered covers only complete transactions.
// Caller holds mu. Reading Delivered first is sound: an acceptance is
// recorded here before the sink can learn of it.
func (c *chaos) checkDelivered() {
	d := c.s.Delivered()
	for i, lsn := range c.txnLSN {
		if lsn > d {
			break
		}
		for _, id := range c.txnRecs[i] {
			if c.accepted[id] == 0 {
				c.fail("Delivered %d covers transaction %d (lsn %d) whose record %d is unaccepted", d, i, lsn, id)
				return
			}
		}
	}
}

func (c *chaos) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	c.mu.Lock()
	c.checkDelivered()
	bytes := 0
	seen := map[string]bool{}
	for _, e := range in.Records {
		bytes += len(e.Data) + len(*e.PartitionKey)
		id := recordID(e.Data)
		if p, ok := c.first[id]; !ok {
			c.first[id] = &e.Data[0]
		} else if p != &e.Data[0] {
			c.fail("record %d resent from different bytes", id)
		}
		if c.row {
			k := *e.PartitionKey
			if seen[k] || c.inFlight[k] {
				c.fail("key %s twice in flight (record %d)", k, id)
			}
			seen[k] = true
			c.inFlight[k] = true
		}
	}
	if len(in.Records) > c.maxRecs || bytes > c.maxBytes {
		c.fail("request of %d records / %d bytes over %d / %d", len(in.Records), bytes, c.maxRecs, c.maxBytes)
	}
	roll := c.rng.Float64()
	yields, sleep := c.rng.IntN(50), c.rng.IntN(10) == 0
	outcomes := make([]float64, len(in.Records))
	for i := range outcomes {
		outcomes[i] = c.rng.Float64()
	}
	wholeErr := c.wholeErr[c.rng.IntN(len(c.wholeErr))]
	recCode := c.recCodes[c.rng.IntN(len(c.recCodes))]
	c.mu.Unlock()

	// Let calls overtake each other; real sleeps are rare because timers
	// here have about a millisecond's granularity.
	for range yields {
		runtime.Gosched()
	}
	if sleep {
		time.Sleep(100 * time.Microsecond)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range seen {
		delete(c.inFlight, k)
	}
	if roll < 0.1 {
		c.failures[string(Classify(wholeErr))]++
		return nil, wholeErr
	}
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	for i, e := range in.Records {
		if outcomes[i] < 0.3 {
			out.Records[i] = types.PutRecordsResultEntry{ErrorCode: aws.String(recCode), ErrorMessage: aws.String("chaos")}
			c.failures[recCode]++
			continue
		}
		id := recordID(e.Data)
		c.accepted[id]++
		if c.row {
			k := *e.PartitionKey
			if last, ok := c.lastSeq[k]; ok && last > id {
				c.fail("key %s: record %d accepted after record %d", k, id, last)
			}
			c.lastSeq[k] = id
		}
		out.Records[i] = types.PutRecordsResultEntry{SequenceNumber: aws.String(strconv.Itoa(id)), ShardId: aws.String("shardId-0")}
	}
	return out, nil
}

// TestPropertyPartialFailures drives random workloads through random
// failures, fixed seeds, in both ordering modes.
func TestPropertyPartialFailures(t *testing.T) {
	forSeeds(t, 300, 40, runChaos)
}

// forSeeds runs one parallel subtest per seed (fewer with -short),
// alternating the ordering modes.
func forSeeds(t *testing.T, seeds, short int, run func(*testing.T, uint64, record.Ordering)) {
	if testing.Short() {
		seeds = short
	}
	for seed := range uint64(seeds) {
		ordering := record.Unordered
		if seed%2 == 1 {
			ordering = record.Row
		}
		t.Run(fmt.Sprintf("seed=%d/%s", seed, ordering), func(t *testing.T) {
			t.Parallel()
			run(t, seed, ordering)
		})
	}
}

func runChaos(t *testing.T, seed uint64, ordering record.Ordering) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	cfg := Config{
		StreamName:        "chaos",
		Ordering:          ordering,
		MaxRecordsPerCall: 1 + rng.IntN(12),
		MaxRequestBytes:   120 + rng.IntN(400),
		MaxInFlight:       1 + rng.IntN(6),
		Linger:            time.Duration(1 + rng.IntN(500_000)), // 0 would mean the 20ms default
		QueueBytes:        50 + rng.IntN(2000),
		ImpairAfter:       time.Duration(1 + rng.IntN(3_000_000)),
	}
	if rng.IntN(2) == 0 {
		cfg.Backoff = func() backoff.BackOff { return &backoff.ZeroBackOff{} }
	} else {
		cfg.Backoff = func() backoff.BackOff {
			return backoff.NewExponentialBackOff(backoff.WithInitialInterval(50*time.Microsecond),
				backoff.WithMaxInterval(time.Millisecond), backoff.WithMaxElapsedTime(0))
		}
	}
	cfg.MaxRecordBytes = cfg.MaxRequestBytes / 2
	var r reports
	cfg.Report = r.report
	c := &chaos{
		t: t, row: ordering == record.Row, maxRecs: cfg.MaxRecordsPerCall, maxBytes: cfg.MaxRequestBytes,
		rng: rand.New(rand.NewPCG(seed, 0xc4a05)), inFlight: map[string]bool{}, first: map[int]*byte{},
		accepted: map[int]int{}, lastSeq: map[string]int{}, failures: map[string]int{},
		wholeErr: []error{&types.ProvisionedThroughputExceededException{}, &types.KMSThrottlingException{},
			&types.AccessDeniedException{}, &types.KMSDisabledException{}, &types.InternalFailureException{}, errScripted},
		recCodes: []string{"ProvisionedThroughputExceededException", "InternalFailure", "KMSThrottlingException", "KMSAccessDeniedException"},
	}
	// The workload is drawn before the sink runs so it depends on the seed only.
	keys := 1 + rng.IntN(8)
	type txnSpec struct {
		lsn  uint64
		recs []record.Record
	}
	var txns []txnSpec
	id := 0
	for i := range 20 + rng.IntN(60) {
		spec := txnSpec{lsn: uint64(i+1) * 16}
		for range rng.IntN(7) {
			key := fmt.Sprintf("k%d", rng.IntN(keys))
			pad := strings.Repeat("x", rng.IntN(cfg.MaxRecordBytes-len(key)-8))
			spec.recs = append(spec.recs, record.Record{PartitionKey: key, Data: []byte(fmt.Sprintf("%d|%s", id, pad))})
			c.txnOf = append(c.txnOf, i)
			id++
		}
		txns = append(txns, spec)
	}
	c.txnLSN = make([]uint64, len(txns))
	c.txnRecs = make([][]int, len(txns))
	for i, spec := range txns {
		c.txnLSN[i] = spec.lsn
		for _, rec := range spec.recs {
			c.txnRecs[i] = append(c.txnRecs[i], recordID(rec.Data))
		}
	}

	s, err := New(cfg, c)
	if err != nil {
		t.Fatal(err)
	}
	c.s = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	for _, spec := range txns {
		if err := s.Submit(ctx, spec.lsn, spec.recs); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		c.checkDelivered()
		c.mu.Unlock()
	}
	dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
	defer dcancel()
	if err := s.Drain(dctx); err != nil {
		t.Fatalf("Drain: %v (Delivered %d of %d)", err, s.Delivered(), txns[len(txns)-1].lsn)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkDelivered()
	for _, p := range c.problems {
		t.Error(p)
	}
	for rid := range id {
		if n := c.accepted[rid]; n != 1 {
			t.Errorf("record %d accepted %d times, want exactly once", rid, n)
		}
	}
	if want := txns[len(txns)-1].lsn; s.Delivered() != want {
		t.Errorf("Delivered = %d, want %d", s.Delivered(), want)
	}
	// Recovery is reported just after the acceptance Drain waits for.
	deadline := time.Now().Add(5 * time.Second)
	for got := r.get(); len(got) > 0 && got[len(got)-1] != "" && time.Now().Before(deadline); got = r.get() {
		time.Sleep(time.Millisecond)
	}
	if got := r.get(); len(got) > 0 && got[len(got)-1] != "" {
		t.Errorf("reports end with %q after everything was delivered: %v", got[len(got)-1], got)
	}
}
