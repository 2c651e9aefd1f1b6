package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// captureHTTP records each request and answers every PutRecords with one
// accepted entry per record.
type captureHTTP struct {
	mu   sync.Mutex
	reqs []capturedRequest
}

type capturedRequest struct {
	header http.Header
	body   []byte
}

func (c *captureHTTP) Do(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, capturedRequest{header: r.Header.Clone(), body: body})
	c.mu.Unlock()
	var in struct{ Records []json.RawMessage }
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, err
	}
	out := `{"FailedRecordCount":0,"Records":[` +
		strings.TrimSuffix(strings.Repeat(`{"SequenceNumber":"1","ShardId":"shardId-000000000000"},`, len(in.Records)), ",") + `]}`
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		Body: io.NopCloser(strings.NewReader(out)), Request: r}, nil
}

// sdkAndOurs sends in once as the SDK serialises it and once through a
// bodyWriter, and returns both requests.
func sdkAndOurs(t *testing.T, in *kinesis.PutRecordsInput) (sdk, ours capturedRequest) {
	t.Helper()
	hc := &captureHTTP{}
	client := kinesis.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""),
		HTTPClient:  hc,
	}, func(o *kinesis.Options) { o.BaseEndpoint = aws.String("http://127.0.0.1:1") })
	w := newBodyWriter()
	for _, opts := range [][]func(*kinesis.Options){{noSDKRetries}, {noSDKRetries, w.option}} {
		if _, err := client.PutRecords(context.Background(), in, opts...); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(w.buf, hc.reqs[1].body) {
		t.Fatal("the request did not carry the body the bodyWriter wrote")
	}
	return hc.reqs[0], hc.reqs[1]
}

// TestBodyMatchesSDK holds the body the sink writes to the SDK's own
// serialisation of the same input: byte for byte where strings need no
// escaping, as the same JSON value where they do (the escapes may be
// spelled differently), and with the same headers apart from the
// signature and the SDK's per-request fields.
func TestBodyMatchesSDK(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	data := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var many []types.PutRecordsRequestEntry
	for i := range 500 {
		many = append(many, types.PutRecordsRequestEntry{Data: data(rng.IntN(300)), PartitionKey: aws.String(strings.Repeat("k", 1+i%256))})
	}
	cases := []struct {
		name  string
		in    kinesis.PutRecordsInput
		exact bool
	}{
		{"typical", kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: many}, true},
		{"arn", kinesis.PutRecordsInput{StreamARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/s"),
			Records: many[:3]}, true},
		{"every member", kinesis.PutRecordsInput{DryRun: aws.Bool(false), StreamName: aws.String("s"), StreamId: aws.String("id"),
			StreamARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/s"),
			Records: []types.PutRecordsRequestEntry{
				{Data: []byte{}, PartitionKey: aws.String("k"), ExplicitHashKey: aws.String("12345")},
				{Data: data(1), PartitionKey: aws.String("k2")},
				{Data: data(2), PartitionKey: aws.String("k3"), ExplicitHashKey: aws.String("0")},
			}}, true},
		{"escapes", kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
			{Data: data(5), PartitionKey: aws.String("quote\" backslash\\ tab\t nl\n cr\r bell\a del\x7f")},
			{Data: data(5), PartitionKey: aws.String("é ☃ 𝄞 \u2028 \u2029 <>&")},
			{Data: data(5), PartitionKey: aws.String("bad utf-8 \xff\xfe end")},
		}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sdk, ours := sdkAndOurs(t, &c.in)
			if c.exact && !bytes.Equal(sdk.body, ours.body) {
				t.Fatalf("body differs from the SDK's:\n ours %.300s\n sdk  %.300s", ours.body, sdk.body)
			}
			var a, b any
			if err := json.Unmarshal(sdk.body, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(ours.body, &b); err != nil {
				t.Fatalf("our body is not JSON: %v\n%s", err, ours.body)
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("body decodes differently from the SDK's:\n ours %s\n sdk  %s", ours.body, sdk.body)
			}
			for _, h := range []string{"Content-Type", "X-Amz-Target", "Content-Length"} {
				if sdk.header.Get(h) != ours.header.Get(h) {
					t.Errorf("header %s = %q, SDK sends %q", h, ours.header.Get(h), sdk.header.Get(h))
				}
			}
			if len(ours.body) == 0 || ours.header.Get("Authorization") == "" {
				t.Errorf("request not signed: %v", ours.header)
			}
		})
	}
}

// TestBodyKnowsEveryMember fails when an SDK update adds a member to the
// PutRecords input that appendPutRecordsBody does not write.
func TestBodyKnowsEveryMember(t *testing.T) {
	for _, c := range []struct {
		typ  reflect.Type
		want []string
	}{
		{reflect.TypeFor[kinesis.PutRecordsInput](), []string{"DryRun", "Records", "StreamARN", "StreamId", "StreamName"}},
		{reflect.TypeFor[types.PutRecordsRequestEntry](), []string{"Data", "ExplicitHashKey", "PartitionKey"}},
	} {
		var got []string
		for f := range c.typ.Fields() {
			if f.IsExported() {
				got = append(got, f.Name)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s has members %v; appendPutRecordsBody writes %v", c.typ, got, c.want)
		}
	}
}

// TestBodyBufferReused checks that a worker's buffer is reused from call to
// call rather than allocated each time, and that a reused buffer never
// leaks bytes of an earlier, longer request.
func TestBodyBufferReused(t *testing.T) {
	long := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
		{Data: bytes.Repeat([]byte("x"), 4096), PartitionKey: aws.String("k")}}}
	short := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
		{Data: []byte("y"), PartitionKey: aws.String("k")}}}
	hc := &captureHTTP{}
	client := kinesis.NewFromConfig(aws.Config{Region: "us-east-1", HTTPClient: hc,
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", "")},
		func(o *kinesis.Options) { o.BaseEndpoint = aws.String("http://127.0.0.1:1") })
	w := newBodyWriter()
	if _, err := client.PutRecords(context.Background(), long, w.option); err != nil {
		t.Fatal(err)
	}
	if len(w.buf) == 0 {
		t.Fatal("the bodyWriter wrote nothing")
	}
	first := &w.buf[:1][0]
	if _, err := client.PutRecords(context.Background(), short, w.option); err != nil {
		t.Fatal(err)
	}
	if &w.buf[:1][0] != first {
		t.Error("the second call allocated a new body buffer")
	}
	if want := `{"Records":[{"Data":"eQ==","PartitionKey":"k"}],"StreamName":"s"}`; string(hc.reqs[1].body) != want {
		t.Errorf("second body = %s, want %s", hc.reqs[1].body, want)
	}
}
