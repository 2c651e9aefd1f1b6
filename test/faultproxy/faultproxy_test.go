package faultproxy_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/cdcd-dev/cdcd/test/faultproxy"
	"github.com/cdcd-dev/cdcd/test/kinesisfake"
	"github.com/cdcd-dev/cdcd/test/testenv"
)

// upfail fails, in the upstream itself, each entry whose data starts with
// "upfail", so a test sees the proxy's failures and the upstream's add up.
func upfail(_ int, e kinesisfake.Entry) (code, message string) {
	if strings.HasPrefix(string(e.Data), "upfail") {
		return "InternalFailure", "upstream"
	}
	return "", ""
}

// setup starts an upstream holding stream "s" ("missing" and every other
// name do not exist) and the proxy in front of it.
func setup(t *testing.T, optFns ...func(*kinesis.Options)) (*faultproxy.Proxy, *kinesis.Client, *kinesisfake.Server) {
	t.Helper()
	fake := kinesisfake.New(t, kinesisfake.Options{Stream: "s", Keep: true, Fail: upfail})
	p := faultproxy.New(fake.URL()).Start(t)
	opts := append([]func(*kinesis.Options){func(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} }}, optFns...)
	return p, testenv.KinesisClient(t, testenv.Env{Region: "us-east-1"}, p.URL(), opts...), fake
}

// landed is the data of the entries the upstream accepted, in arrival order.
func landed(fake *kinesisfake.Server) []string {
	var out []string
	for _, e := range fake.Entries() {
		out = append(out, string(e.Data))
	}
	return out
}

// keys is the partition keys of the entries the upstream accepted.
func keys(fake *kinesisfake.Server) []string {
	var out []string
	for _, e := range fake.Entries() {
		out = append(out, e.PartitionKey)
	}
	return out
}

// fastRetries keeps the SDK's standard retry decisions with millisecond
// back-off.
func fastRetries(o *kinesis.Options) {
	o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
		so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
	})
}

func put(ctx context.Context, c *kinesis.Client, stream string, data ...string) (*kinesis.PutRecordsOutput, error) {
	in := &kinesis.PutRecordsInput{StreamName: aws.String(stream)}
	for i, d := range data {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{Data: []byte(d), PartitionKey: aws.String(fmt.Sprintf("pk%d", i))})
	}
	return c.PutRecords(ctx, in)
}

func as[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

func TestInjectedErrorsAreTyped(t *testing.T) {
	for _, tc := range []struct {
		code  string
		typed func(error) bool
	}{
		{"AccessDeniedException", as[*types.AccessDeniedException]},
		{"KMSDisabledException", as[*types.KMSDisabledException]},
		{"KMSAccessDeniedException", as[*types.KMSAccessDeniedException]},
		{"KMSInvalidStateException", as[*types.KMSInvalidStateException]},
		{"KMSNotFoundException", as[*types.KMSNotFoundException]},
		{"KMSThrottlingException", as[*types.KMSThrottlingException]},
		{"KMSOptInRequired", as[*types.KMSOptInRequired]},
		{"ResourceNotFoundException", as[*types.ResourceNotFoundException]},
		{"ProvisionedThroughputExceededException", as[*types.ProvisionedThroughputExceededException]},
		{"LimitExceededException", as[*types.LimitExceededException]},
		{"InvalidArgumentException", as[*types.InvalidArgumentException]},
	} {
		t.Run(tc.code, func(t *testing.T) {
			p, client, fake := setup(t)
			p.Inject(faultproxy.Rule{Op: "PutRecords", Err: tc.code, Message: "injected " + tc.code})
			_, err := put(context.Background(), client, "s", "a")
			if !tc.typed(err) {
				t.Fatalf("PutRecords error %T %v: not decoded as %s", err, err, tc.code)
			}
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.code || apiErr.ErrorMessage() != "injected "+tc.code {
				t.Errorf("API error code %q message %q", apiErr.ErrorCode(), apiErr.ErrorMessage())
			}
			var respErr *awshttp.ResponseError
			if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != http.StatusBadRequest {
				t.Errorf("HTTP status: %v, want 400", err)
			}
			if got := landed(fake); len(got) != 0 {
				t.Errorf("upstream received %q; an injected error must not reach it", got)
			}
			if p.Calls("PutRecords") != 1 || p.Faults("PutRecords") != 1 || p.Forwarded("PutRecords") != 0 {
				t.Errorf("calls/faults/forwarded = %d/%d/%d, want 1/1/0",
					p.Calls("PutRecords"), p.Faults("PutRecords"), p.Forwarded("PutRecords"))
			}
		})
	}
}

func TestInternalFailureIs500AndRetried(t *testing.T) {
	p, client, fake := setup(t)
	p.Inject(faultproxy.Rule{Op: "PutRecords", Err: "InternalFailure"})
	_, err := put(context.Background(), client, "s", "a")
	var apiErr smithy.APIError
	var respErr *awshttp.ResponseError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InternalFailure" ||
		!errors.As(err, &respErr) || respErr.HTTPStatusCode() != 500 {
		t.Fatalf("got %v, want InternalFailure with HTTP 500", err)
	}

	// The SDK's standard retryer retries 500s and throttling on its own.
	p, client, fake = setup(t, fastRetries)
	p.Inject(faultproxy.Rule{Op: "PutRecords", Err: "InternalFailure", Times: 1})
	p.Inject(faultproxy.Rule{Op: "PutRecords", Err: "ProvisionedThroughputExceededException", Times: 1})
	if _, err := put(context.Background(), client, "s", "a"); err != nil {
		t.Fatalf("with retries: %v", err)
	}
	if p.Calls("PutRecords") != 3 || len(landed(fake)) != 1 {
		t.Errorf("calls = %d, landed %q; want 3 calls, 1 record", p.Calls("PutRecords"), landed(fake))
	}
}

func TestKMSErrorsAreTyped(t *testing.T) {
	// The upstream answers GenerateDataKey as KMS would: only the proxy's
	// errors are under test.
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprint(w, `{"KeyId":"k","Plaintext":"AAAA","CiphertextBlob":"AAAA"}`)
	}))
	t.Cleanup(upstream.Close)
	p := faultproxy.New(upstream.URL).Start(t)
	client := testenv.KMSClient(t, testenv.Env{Region: "us-east-1"}, p.URL(), func(o *kms.Options) { o.Retryer = aws.NopRetryer{} })
	gen := func() error {
		_, err := client.GenerateDataKey(context.Background(), &kms.GenerateDataKeyInput{KeyId: aws.String("k"), NumberOfBytes: aws.Int32(32)})
		return err
	}
	for _, tc := range []struct {
		code  string
		typed func(error) bool
	}{
		{"DisabledException", as[*kmstypes.DisabledException]},
		{"KMSInvalidStateException", as[*kmstypes.KMSInvalidStateException]},
		{"NotFoundException", as[*kmstypes.NotFoundException]},
		{"KMSInternalException", as[*kmstypes.KMSInternalException]},
	} {
		p.Inject(faultproxy.Rule{Op: "GenerateDataKey", Err: tc.code, Times: 1})
		if err := gen(); !tc.typed(err) {
			t.Errorf("%s: got %T %v", tc.code, err, err)
		}
	}
	if err := gen(); err != nil {
		t.Errorf("after the rules ran out: %v", err)
	}
}

func TestTimesAndOpFilter(t *testing.T) {
	p, client, fake := setup(t)
	ctx := context.Background()
	p.Inject(faultproxy.Rule{Op: "PutRecords", Err: "AccessDeniedException", Times: 2})

	if _, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")}); err != nil {
		t.Errorf("ListShards hit a PutRecords rule: %v", err)
	}
	for i := range 2 {
		if _, err := put(ctx, client, "s", "a"); !as[*types.AccessDeniedException](err) {
			t.Errorf("call %d: %v, want AccessDeniedException", i, err)
		}
	}
	if _, err := put(ctx, client, "s", "b"); err != nil {
		t.Errorf("third call: %v, want success once Times ran out", err)
	}
	if got := landed(fake); len(got) != 1 || got[0] != "b" {
		t.Errorf("upstream received %q, want [b]", got)
	}

	p.Inject(faultproxy.Rule{Err: "LimitExceededException"}) // every op, until cleared
	if _, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")}); !as[*types.LimitExceededException](err) {
		t.Errorf("ListShards: %v, want LimitExceededException", err)
	}
	if _, err := put(ctx, client, "s", "c"); !as[*types.LimitExceededException](err) {
		t.Errorf("PutRecords: %v, want LimitExceededException", err)
	}
	p.Clear()
	if _, err := put(ctx, client, "s", "d"); err != nil {
		t.Errorf("after Clear: %v", err)
	}
	if p.Calls("PutRecords") != 5 || p.Calls("ListShards") != 2 {
		t.Errorf("calls PutRecords=%d ListShards=%d, want 5 and 2", p.Calls("PutRecords"), p.Calls("ListShards"))
	}
	p.ResetCounts()
	if p.Calls("PutRecords") != 0 {
		t.Error("ResetCounts left counts")
	}
}

func TestDelay(t *testing.T) {
	p, client, fake := setup(t)
	p.Inject(faultproxy.Rule{Op: "PutRecords", Delay: 200 * time.Millisecond, Times: 1})
	start := time.Now()
	if _, err := put(context.Background(), client, "s", "slow"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("call took %v, want at least the 200ms delay", d)
	}

	p.Inject(faultproxy.Rule{Op: "PutRecords", Delay: 5 * time.Second, Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := put(ctx, client, "s", "timeout"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the client's deadline", err)
	}
	if got := landed(fake); len(got) != 1 {
		t.Errorf("upstream received %q, want only the first record", got)
	}

	// A delay followed by an error.
	p.Inject(faultproxy.Rule{Op: "PutRecords", Delay: 50 * time.Millisecond, Err: "KMSThrottlingException", Times: 1})
	if _, err := put(context.Background(), client, "s", "x"); !as[*types.KMSThrottlingException](err) {
		t.Errorf("got %v, want KMSThrottlingException", err)
	}
}

func TestDrop(t *testing.T) {
	p, client, fake := setup(t)
	p.Inject(faultproxy.Rule{Op: "PutRecords", Drop: true, Times: 1})
	_, err := put(context.Background(), client, "s", "lost")
	var apiErr smithy.APIError
	if err == nil || errors.As(err, &apiErr) {
		t.Errorf("got %v, want a transport error", err)
	}
	if len(landed(fake)) != 0 || p.Forwarded("PutRecords") != 0 {
		t.Errorf("a dropped request reached the upstream: %q", landed(fake))
	}

	p.Inject(faultproxy.Rule{Op: "PutRecords", DropResponse: true, Times: 1})
	if _, err := put(context.Background(), client, "s", "landed"); err == nil || errors.As(err, &apiErr) {
		t.Errorf("got %v, want a transport error", err)
	}
	if got := landed(fake); len(got) != 1 || got[0] != "landed" {
		t.Errorf("upstream received %q, want [landed]: DropResponse forwards first", got)
	}

	// The SDK retries a dropped connection by itself.
	p, client, fake = setup(t, fastRetries)
	p.Inject(faultproxy.Rule{Op: "PutRecords", Drop: true, Times: 1})
	if _, err := put(context.Background(), client, "s", "retried"); err != nil {
		t.Errorf("with retries: %v", err)
	}
	if got := landed(fake); len(got) != 1 {
		t.Errorf("upstream received %q", got)
	}
}

func TestFailRecords(t *testing.T) {
	p, client, fake := setup(t)
	p.FailRecords("PutRecords", func(i int, e faultproxy.Entry) bool {
		return string(e.Data) == "r1" || string(e.Data) == "r4"
	})
	out, err := put(context.Background(), client, "s", "r0", "r1", "r2", "r3", "r4", "r5")
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 2 || len(out.Records) != 6 {
		t.Fatalf("FailedRecordCount %d, %d results; want 2 of 6", aws.ToInt32(out.FailedRecordCount), len(out.Records))
	}
	for i, r := range out.Records {
		failed := i == 1 || i == 4
		switch {
		case failed && aws.ToString(r.ErrorCode) != faultproxy.CodeThroughputExceeded:
			t.Errorf("entry %d: ErrorCode %q, want %s", i, aws.ToString(r.ErrorCode), faultproxy.CodeThroughputExceeded)
		case failed && (r.ErrorMessage == nil || r.SequenceNumber != nil):
			t.Errorf("entry %d: failed entry needs a message and no sequence number: %+v", i, r)
		case !failed && (r.ErrorCode != nil || r.SequenceNumber == nil || r.ShardId == nil):
			t.Errorf("entry %d: want success, got %+v", i, r)
		}
	}
	if got := strings.Join(landed(fake), ","); got != "r0,r2,r3,r5" {
		t.Errorf("upstream received %s, want r0,r2,r3,r5", got)
	}
	if got := strings.Join(keys(fake), ","); got != "pk0,pk2,pk3,pk5" {
		t.Errorf("partition keys %s, want pk0,pk2,pk3,pk5", got)
	}
	if p.Faults("PutRecords") != 1 || p.Forwarded("PutRecords") != 1 {
		t.Errorf("faults %d forwarded %d, want 1 and 1", p.Faults("PutRecords"), p.Forwarded("PutRecords"))
	}

	// A retry of only the failed entries, with the decider gone, lands them.
	p.FailRecords("PutRecords", nil)
	if out, err := put(context.Background(), client, "s", "r1", "r4"); err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("retry: %v", err)
	}
	if got := strings.Join(landed(fake), ","); got != "r0,r2,r3,r5,r1,r4" {
		t.Errorf("upstream received %s", got)
	}
}

func TestFailRecordsWith(t *testing.T) {
	p, client, fake := setup(t)
	p.FailRecordsWith("PutRecords", func(i int, e faultproxy.Entry) string {
		switch i {
		case 0:
			return faultproxy.CodeInternalFailure
		case 2:
			return faultproxy.CodeThroughputExceeded
		}
		return ""
	})
	// Entry 3 is failed by the upstream itself: the counts add up.
	out, err := put(context.Background(), client, "s", "a", "b", "c", "upfail", "e")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{faultproxy.CodeInternalFailure, "", faultproxy.CodeThroughputExceeded, "InternalFailure", ""}
	for i, r := range out.Records {
		if aws.ToString(r.ErrorCode) != want[i] {
			t.Errorf("entry %d: ErrorCode %q, want %q", i, aws.ToString(r.ErrorCode), want[i])
		}
	}
	if aws.ToInt32(out.FailedRecordCount) != 3 {
		t.Errorf("FailedRecordCount %d, want 3", aws.ToInt32(out.FailedRecordCount))
	}
	if got := strings.Join(landed(fake), ","); got != "b,e" {
		t.Errorf("upstream accepted %s, want b,e", got)
	}

	// All entries failed: nothing goes upstream.
	p.ResetCounts()
	p.FailRecords("PutRecords", func(int, faultproxy.Entry) bool { return true })
	out, err = put(context.Background(), client, "s", "x", "y")
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 2 || p.Forwarded("PutRecords") != 0 {
		t.Errorf("all failed: err %v, out %+v, forwarded %d", err, out, p.Forwarded("PutRecords"))
	}

	// An upstream error for the whole call passes through, typed.
	p.FailRecords("PutRecords", func(i int, _ faultproxy.Entry) bool { return i == 0 })
	if _, err := put(context.Background(), client, "missing", "x", "y"); !as[*types.ResourceNotFoundException](err) {
		t.Errorf("got %v, want the upstream's ResourceNotFoundException", err)
	}
	p.Clear()
	if out, err := put(context.Background(), client, "s", "z"); err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Errorf("after Clear: %v %+v", err, out)
	}
}

// TestEntries: the proxy counts, per entry, what it forwarded and what a
// decider failed; an answer from a whole-call rule counts for no entry.
func TestEntries(t *testing.T) {
	p, client, _ := setup(t)
	ctx := context.Background()
	failedOnce := map[string]bool{}
	p.FailRecords("PutRecords", func(_ int, e faultproxy.Entry) bool {
		d := string(e.Data)
		if d == "b" || d == "c" {
			if !failedOnce[d] {
				failedOnce[d] = true
				return true
			}
		}
		return false
	})
	if _, err := put(ctx, client, "s", "a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := put(ctx, client, "s", "b", "c"); err != nil { // only the failed ones again
		t.Fatal(err)
	}
	want := map[string]faultproxy.EntryCount{"a": {Forwarded: 1}, "b": {Forwarded: 1, Failed: 1}, "c": {Forwarded: 1, Failed: 1}}
	if got := p.Entries(); !maps.Equal(got, want) {
		t.Errorf("entries %v, want %v", got, want)
	}

	// A resend of an accepted entry shows; a whole-call error counts for
	// none of its entries; a forward whose answer is dropped counts.
	if _, err := put(ctx, client, "s", "a"); err != nil {
		t.Fatal(err)
	}
	p.Inject(faultproxy.Rule{Op: "PutRecords", Err: "AccessDeniedException", Times: 1})
	p.Inject(faultproxy.Rule{Op: "PutRecords", DropResponse: true, Times: 1})
	if _, err := put(ctx, client, "s", "d"); err == nil {
		t.Fatal("the injected error did not reach the client")
	}
	if _, err := put(ctx, client, "s", "d"); err == nil {
		t.Fatal("the dropped answer did not reach the client")
	}
	want["a"] = faultproxy.EntryCount{Forwarded: 2}
	want["d"] = faultproxy.EntryCount{Forwarded: 1}
	if got := p.Entries(); !maps.Equal(got, want) {
		t.Errorf("entries %v, want %v", got, want)
	}
	p.ResetCounts()
	if got := p.Entries(); len(got) != 0 {
		t.Errorf("ResetCounts left entries %v", got)
	}
}

func TestFailRecordsOnlyPutRecords(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("FailRecords(\"PutRecord\") did not panic")
		}
	}()
	faultproxy.New("http://127.0.0.1:1").FailRecords("PutRecord", func(int, faultproxy.Entry) bool { return true })
}

// TestKinesalite runs the proxy in front of the real local Kinesis: failed
// entries do not land, the others do.
func TestKinesalite(t *testing.T) {
	env := testenv.Require(t)
	ctx := context.Background()
	direct := testenv.KinesisClient(t, env, "")
	name := testenv.StreamName(t)
	testenv.CreateStream(t, direct, name, 1)

	p := faultproxy.New(env.KinesisEndpoint).Start(t)
	client := testenv.KinesisClient(t, env, p.URL(), func(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} })

	p.Inject(faultproxy.Rule{Op: "PutRecords", Err: "KMSAccessDeniedException", Times: 1})
	if _, err := put(ctx, client, name, "denied"); !as[*types.KMSAccessDeniedException](err) {
		t.Fatalf("got %v, want KMSAccessDeniedException", err)
	}
	p.FailRecords("PutRecords", func(i int, _ faultproxy.Entry) bool { return i%2 == 1 })
	out, err := put(ctx, client, name, "k0", "k1", "k2", "k3", "k4")
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 2 {
		t.Errorf("FailedRecordCount %d, want 2", aws.ToInt32(out.FailedRecordCount))
	}

	shards, err := direct.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	it, err := direct.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(name), ShardId: shards.Shards[0].ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := direct.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs.Records {
		got = append(got, string(r.Data))
	}
	if strings.Join(got, ",") != "k0,k2,k4" {
		t.Errorf("stream holds %q, want k0,k2,k4", got)
	}
}
