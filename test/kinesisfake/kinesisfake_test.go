package kinesisfake_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/cdcd-dev/cdcd/test/kinesisfake"
)

// entries builds request entries from data and keys taken in pairs.
func entries(pairs ...string) []types.PutRecordsRequestEntry {
	var out []types.PutRecordsRequestEntry
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, types.PutRecordsRequestEntry{Data: []byte(pairs[i]), PartitionKey: aws.String(pairs[i+1])})
	}
	return out
}

func put(t *testing.T, c *kinesis.Client, stream string, in []types.PutRecordsRequestEntry) *kinesis.PutRecordsOutput {
	t.Helper()
	out, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: in})
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	return out
}

// TestPutRecords sends the same batches to a counting and a keeping fake:
// both accept every entry and count the same entries and data bytes, even
// when partition keys look like the fields the counting fake looks for;
// the counting fake's OnRaw sees each entry's data in base64.
func TestPutRecords(t *testing.T) {
	binary := string([]byte{0, 1, 2, '"', '\\', 0xff})
	batches := []struct {
		name string
		in   []types.PutRecordsRequestEntry
	}{
		{"one", entries("hello", "k")},
		{"padding", entries("", "k0", "a", "k1", "ab", "k2", "abc", "k3", "abcd", "k4")},
		{"keys that look like fields", entries("x", `"Data":"`, "y", `k","Data":"zz`, "z", `"StreamName":"other"`, "w", `\"Data\":\"`)},
		{"binary and unicode", entries(binary, "ключ", strings.Repeat("é", 100), "🔑")},
		{"many", func() []types.PutRecordsRequestEntry {
			var pairs []string
			for i := range 500 {
				pairs = append(pairs, strings.Repeat("r", i), fmt.Sprintf("pk%d", i))
			}
			return entries(pairs...)
		}()},
	}
	for _, mode := range []struct {
		name string
		keep bool
	}{{"count", false}, {"keep", true}} {
		for _, b := range batches {
			t.Run(mode.name+"/"+b.name, func(t *testing.T) {
				var raw []string
				var rawAt []time.Time
				o := kinesisfake.Options{Stream: "s", Shards: 3, Keep: mode.keep}
				if !mode.keep {
					o.OnRaw = func(at time.Time, data []byte) {
						raw, rawAt = append(raw, string(data)), append(rawAt, at)
					}
				}
				fake := kinesisfake.New(t, o)
				before := time.Now()
				out := put(t, fake.Client(), "s", b.in)
				after := time.Now()

				if aws.ToInt32(out.FailedRecordCount) != 0 || len(out.Records) != len(b.in) {
					t.Fatalf("FailedRecordCount %d, %d results for %d entries", aws.ToInt32(out.FailedRecordCount), len(out.Records), len(b.in))
				}
				for i, r := range out.Records {
					if r.SequenceNumber == nil || r.ShardId == nil || r.ErrorCode != nil {
						t.Fatalf("entry %d: %+v, want accepted", i, r)
					}
				}
				if out.EncryptionType != types.EncryptionTypeNone {
					t.Errorf("EncryptionType %q, want NONE", out.EncryptionType)
				}
				size := 0
				for _, e := range b.in {
					size += len(e.Data)
				}
				if fake.Records() != int64(len(b.in)) || fake.Bytes() != int64(size) || fake.Calls() != 1 {
					t.Errorf("records/bytes/calls = %d/%d/%d, want %d/%d/1", fake.Records(), fake.Bytes(), fake.Calls(), len(b.in), size)
				}
				if last := fake.Last(); last.Before(before) || last.After(after) || !fake.First().Equal(last) {
					t.Errorf("First %v, Last %v, want the same time within the call (%v to %v)", fake.First(), last, before, after)
				}

				got := fake.Entries()
				if !mode.keep {
					if len(got) != 0 {
						t.Errorf("a counting fake kept %d entries", len(got))
					}
					checkRaw(t, b.in, raw, rawAt, before, after)
					return
				}
				if len(got) != len(b.in) {
					t.Fatalf("kept %d entries, want %d", len(got), len(b.in))
				}
				for i, e := range got {
					if !bytes.Equal(e.Data, b.in[i].Data) || e.PartitionKey != aws.ToString(b.in[i].PartitionKey) {
						t.Errorf("entry %d: kept %q/%q, sent %q/%q", i, e.Data, e.PartitionKey, b.in[i].Data, aws.ToString(b.in[i].PartitionKey))
					}
					if e.Received.Before(before) || e.Received.After(after) {
						t.Errorf("entry %d: Received %v, not within the call", i, e.Received)
					}
				}
			})
		}
	}
}

// checkRaw compares what OnRaw saw with the entries sent.
func checkRaw(t *testing.T, in []types.PutRecordsRequestEntry, raw []string, at []time.Time, before, after time.Time) {
	t.Helper()
	if len(raw) != len(in) {
		t.Fatalf("OnRaw saw %d entries, want %d", len(raw), len(in))
	}
	for i, r := range raw {
		if want := base64.StdEncoding.EncodeToString(in[i].Data); r != want {
			t.Errorf("entry %d: OnRaw saw %q, want %q", i, r, want)
		}
		if at[i].Before(before) || at[i].After(after) {
			t.Errorf("entry %d: OnRaw's time %v, not within the call", i, at[i])
		}
	}
}

// TestFailAndOnEntry fails chosen entries: they carry the code and message,
// are counted as failed, and neither land, count nor reach OnEntry.
func TestFailAndOnEntry(t *testing.T) {
	for _, tc := range []struct {
		name string
		keep bool
	}{{"fail only", false}, {"fail and keep", true}} {
		t.Run(tc.name, func(t *testing.T) {
			// The hooks run in the server's goroutines.
			var mu sync.Mutex
			var seen []string
			var indexes []int
			fake := kinesisfake.New(t, kinesisfake.Options{
				Keep: tc.keep,
				Fail: func(i int, e kinesisfake.Entry) (string, string) {
					mu.Lock()
					defer mu.Unlock()
					indexes = append(indexes, i)
					if strings.HasPrefix(string(e.Data), "fail") {
						return "InternalFailure", "failed " + e.PartitionKey
					}
					return "", ""
				},
				OnEntry: func(e kinesisfake.Entry) {
					mu.Lock()
					defer mu.Unlock()
					seen = append(seen, string(e.Data))
				},
			})
			out := put(t, fake.Client(), "any", entries("a", "k0", "fail1", "k1", "bb", "k2", "fail3", "k3"))
			mu.Lock()
			defer mu.Unlock()

			if aws.ToInt32(out.FailedRecordCount) != 2 {
				t.Errorf("FailedRecordCount %d, want 2", aws.ToInt32(out.FailedRecordCount))
			}
			for i, r := range out.Records {
				failed := i == 1 || i == 3
				switch {
				case failed && (aws.ToString(r.ErrorCode) != "InternalFailure" || aws.ToString(r.ErrorMessage) != fmt.Sprintf("failed k%d", i) || r.SequenceNumber != nil):
					t.Errorf("entry %d: %+v, want InternalFailure/failed k%d and no sequence number", i, r, i)
				case !failed && (r.ErrorCode != nil || r.SequenceNumber == nil || r.ShardId == nil):
					t.Errorf("entry %d: %+v, want accepted", i, r)
				}
			}
			if fmt.Sprint(indexes) != "[0 1 2 3]" {
				t.Errorf("Fail saw indexes %v", indexes)
			}
			if strings.Join(seen, ",") != "a,bb" {
				t.Errorf("OnEntry saw %q, want a,bb", seen)
			}
			if fake.Records() != 2 || fake.Bytes() != 3 {
				t.Errorf("records %d bytes %d, want 2 and 3", fake.Records(), fake.Bytes())
			}
			var kept []string
			for _, e := range fake.Entries() {
				kept = append(kept, string(e.Data))
			}
			if want := map[bool]string{false: "", true: "a,bb"}[tc.keep]; strings.Join(kept, ",") != want {
				t.Errorf("kept %q, want %q", kept, want)
			}
		})
	}
}

// TestStreamNotFound: every call naming another stream, by name or ARN,
// answers ResourceNotFoundException, in both PutRecords modes.
func TestStreamNotFound(t *testing.T) {
	arn := "arn:aws:kinesis:us-east-1:000000000000:stream/"
	calls := []struct {
		name string
		call func(c *kinesis.Client, name, arn *string) error
	}{
		{"PutRecords", func(c *kinesis.Client, name, arn *string) error {
			_, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: name, StreamARN: arn, Records: entries("d", "k")})
			return err
		}},
		{"DescribeStreamSummary", func(c *kinesis.Client, name, arn *string) error {
			_, err := c.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: name, StreamARN: arn})
			return err
		}},
		{"ListShards", func(c *kinesis.Client, name, arn *string) error {
			_, err := c.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: name, StreamARN: arn})
			return err
		}},
	}
	for _, keep := range []bool{false, true} {
		fake := kinesisfake.New(t, kinesisfake.Options{Stream: "s", Keep: keep})
		client := fake.Client()
		for _, c := range calls {
			for _, ref := range []struct {
				name, arn *string
				exists    bool
			}{
				{aws.String("s"), nil, true},
				{nil, aws.String(arn + "s"), true},
				{aws.String("s"), aws.String(arn + "s"), true},
				{aws.String("other"), nil, false},
				{nil, aws.String(arn + "other"), false},
			} {
				err := c.call(client, ref.name, ref.arn)
				var nf *types.ResourceNotFoundException
				switch {
				case ref.exists && err != nil:
					t.Errorf("keep=%v %s %s/%s: %v", keep, c.name, aws.ToString(ref.name), aws.ToString(ref.arn), err)
				case !ref.exists && !errors.As(err, &nf):
					t.Errorf("keep=%v %s %s/%s: %v, want ResourceNotFoundException", keep, c.name, aws.ToString(ref.name), aws.ToString(ref.arn), err)
				}
			}
		}
		if fake.Records() != 3 || fake.Calls() != 3 {
			t.Errorf("keep=%v: records %d calls %d, want 3 and 3", keep, fake.Records(), fake.Calls())
		}
	}
}

func TestDescribeStreamSummary(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    kinesisfake.Options
		ask     string
		shards  int32
		maxKiB  *int32
		enc     types.EncryptionType
		keyID   *string
		wantARN string
	}{
		{"zero options echo the name", kinesisfake.Options{}, "any", 1, nil, types.EncryptionTypeNone, nil,
			"arn:aws:kinesis:us-east-1:000000000000:stream/any"},
		{"shards, large records and KMS", kinesisfake.Options{Stream: "big", Shards: 4, MaxRecordSizeInKiB: 10240, KMSKeyID: "alias/cdcd"}, "big",
			4, aws.Int32(10240), types.EncryptionTypeKms, aws.String("alias/cdcd"), "arn:aws:kinesis:us-east-1:000000000000:stream/big"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := kinesisfake.New(t, tc.opts)
			out, err := fake.Client().DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(tc.ask)})
			if err != nil {
				t.Fatal(err)
			}
			d := out.StreamDescriptionSummary
			if aws.ToString(d.StreamName) != tc.ask || aws.ToString(d.StreamARN) != tc.wantARN || d.StreamStatus != types.StreamStatusActive {
				t.Errorf("name %q ARN %q status %q", aws.ToString(d.StreamName), aws.ToString(d.StreamARN), d.StreamStatus)
			}
			if aws.ToInt32(d.OpenShardCount) != tc.shards {
				t.Errorf("OpenShardCount %d, want %d", aws.ToInt32(d.OpenShardCount), tc.shards)
			}
			if (d.MaxRecordSizeInKiB == nil) != (tc.maxKiB == nil) || aws.ToInt32(d.MaxRecordSizeInKiB) != aws.ToInt32(tc.maxKiB) {
				t.Errorf("MaxRecordSizeInKiB %v, want %v", d.MaxRecordSizeInKiB, tc.maxKiB)
			}
			if d.EncryptionType != tc.enc || aws.ToString(d.KeyId) != aws.ToString(tc.keyID) {
				t.Errorf("encryption %q key %q, want %q %q", d.EncryptionType, aws.ToString(d.KeyId), tc.enc, aws.ToString(tc.keyID))
			}
		})
	}
}

// TestListShards: the shards split the whole hash key space without gaps.
func TestListShards(t *testing.T) {
	top := new(big.Int).Lsh(big.NewInt(1), 128)
	for _, n := range []int{1, 3, 4} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			fake := kinesisfake.New(t, kinesisfake.Options{Stream: "s", Shards: n})
			out, err := fake.Client().ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String("s")})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Shards) != n || out.NextToken != nil {
				t.Fatalf("%d shards, NextToken %v; want %d and none", len(out.Shards), out.NextToken, n)
			}
			next := big.NewInt(0)
			for i, s := range out.Shards {
				start, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
				end, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
				if aws.ToString(s.ShardId) != fmt.Sprintf("shardId-%012d", i) || start == nil || end == nil || start.Cmp(next) != 0 || end.Cmp(start) < 0 {
					t.Fatalf("shard %d: %s %v-%v, expected to start at %v", i, aws.ToString(s.ShardId), start, end, next)
				}
				next.Add(end, big.NewInt(1))
			}
			if next.Cmp(top) != 0 {
				t.Errorf("shards end at %v, want 2^128", next)
			}
		})
	}
}

// TestDelay: each PutRecords waits Delay; a client that gives up first
// lands nothing.
func TestDelay(t *testing.T) {
	// Long enough that the server sees the abandoned connection close before
	// the delay ends, even on a loaded machine.
	const delay = 500 * time.Millisecond
	for _, keep := range []bool{false, true} {
		fake := kinesisfake.New(t, kinesisfake.Options{Delay: delay, Keep: keep})
		client := fake.Client()
		start := time.Now()
		put(t, client, "s", entries("slow", "k"))
		if d := time.Since(start); d < delay {
			t.Errorf("keep=%v: call took %v, want at least %v", keep, d, delay)
		}

		ctx, cancel := context.WithTimeout(context.Background(), delay/25)
		_, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries("gave up", "k")})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("keep=%v: got %v, want the client's deadline", keep, err)
		}
		time.Sleep(2 * delay)
		if fake.Records() != 1 || fake.Calls() != 1 || len(fake.Entries()) != map[bool]int{false: 0, true: 1}[keep] {
			t.Errorf("keep=%v: records %d calls %d entries %d after the abandoned call", keep, fake.Records(), fake.Calls(), len(fake.Entries()))
		}
	}
}

func TestUnknownOperation(t *testing.T) {
	fake := kinesisfake.New(t, kinesisfake.Options{})
	_, err := fake.Client().CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "UnknownOperationException" {
		t.Errorf("CreateStream: %v, want UnknownOperationException", err)
	}
	if !fake.Last().IsZero() || fake.Calls() != 0 {
		t.Errorf("Last %v calls %d before any PutRecords", fake.Last(), fake.Calls())
	}
}

// BenchmarkPutRecords is the fake's own cost per record (500 records of
// 200 bytes a call), without the SDK: counting must stay far cheaper than
// the clients it serves.
func BenchmarkPutRecords(b *testing.B) {
	var body bytes.Buffer
	body.WriteString(`{"Records":[`)
	data := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("x"), 200))
	const perCall = 500
	for i := range perCall {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"Data":%q,"PartitionKey":"%026d"}`, data, i)
	}
	body.WriteString(`],"StreamName":"s"}`)
	for _, keep := range []bool{false, true} {
		b.Run(map[bool]string{false: "count", true: "keep"}[keep], func(b *testing.B) {
			fake := kinesisfake.New(b, kinesisfake.Options{Stream: "s", Keep: keep})
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body.Bytes()))
				r.Header.Set("X-Amz-Target", "Kinesis_20131202.PutRecords")
				w := httptest.NewRecorder()
				fake.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			b.ReportMetric(float64(fake.Records())/b.Elapsed().Seconds(), "records/s")
		})
	}
}
