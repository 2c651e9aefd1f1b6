package sink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// captureHTTP records each request and answers every PutRecords with one
// accepted entry per record, or with what answer returns.
type captureHTTP struct {
	mu     sync.Mutex
	reqs   []capturedRequest
	answer func(records int) (status int, body string)
}

type capturedRequest struct {
	header      http.Header
	body        []byte
	payloadHash string // as the signer signed it
}

func (c *captureHTTP) Do(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, capturedRequest{header: r.Header.Clone(), body: body, payloadHash: v4.GetPayloadHash(r.Context())})
	c.mu.Unlock()
	var in struct{ Records []json.RawMessage }
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, err
	}
	status, out := 200, `{"FailedRecordCount":0,"Records":[`+
		strings.TrimSuffix(strings.Repeat(`{"SequenceNumber":"1","ShardId":"shardId-000000000000"},`, len(in.Records)), ",")+`]}`
	if c.answer != nil {
		status, out = c.answer(len(in.Records))
	}
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		ContentLength: int64(len(out)), Body: io.NopCloser(strings.NewReader(out)), Request: r}, nil
}

func newCaptureClient(hc *captureHTTP) *kinesis.Client {
	return kinesis.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""),
		HTTPClient:  hc,
	}, func(o *kinesis.Options) { o.BaseEndpoint = aws.String("http://127.0.0.1:1") })
}

// sdkAndOurs sends in once as the SDK serialises it and once through a
// wire, and returns both requests.
func sdkAndOurs(t *testing.T, in *kinesis.PutRecordsInput) (sdk, ours capturedRequest) {
	t.Helper()
	hc := &captureHTTP{}
	client := newCaptureClient(hc)
	w := newWire()
	for _, opts := range [][]func(*kinesis.Options){{noSDKRetries}, {noSDKRetries, w.option}} {
		if _, err := client.PutRecords(context.Background(), in, opts...); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(w.body, hc.reqs[1].body) {
		t.Fatal("the request did not carry the body the wire wrote")
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
			for _, r := range []capturedRequest{sdk, ours} {
				if sum := sha256.Sum256(r.body); r.payloadHash != hex.EncodeToString(sum[:]) {
					t.Errorf("signed with payload hash %q, not the body's SHA-256 %x", r.payloadHash, sum)
				}
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
	client := newCaptureClient(hc)
	w := newWire()
	if _, err := client.PutRecords(context.Background(), long, w.option); err != nil {
		t.Fatal(err)
	}
	if len(w.body) == 0 {
		t.Fatal("the wire wrote nothing")
	}
	first := &w.body[:1][0]
	if _, err := client.PutRecords(context.Background(), short, w.option); err != nil {
		t.Fatal(err)
	}
	if &w.body[:1][0] != first {
		t.Error("the second call allocated a new body buffer")
	}
	if want := `{"Records":[{"Data":"eQ==","PartitionKey":"k"}],"StreamName":"s"}`; string(hc.reqs[1].body) != want {
		t.Errorf("second body = %s, want %s", hc.reqs[1].body, want)
	}
}

// TestResultMatchesSDK holds what the wire reads from a PutRecords answer to
// what the SDK reads from it, for the members the sink uses, and checks
// that answers the wire does not recognise, and error responses, still
// come out as the SDK makes them.
func TestResultMatchesSDK(t *testing.T) {
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
		{Data: []byte("a"), PartitionKey: aws.String("k")}, {Data: []byte("b"), PartitionKey: aws.String("k")}}}
	ok := `{"SequenceNumber":"49543463076548007577105092703039560359975228518395019266","ShardId":"shardId-000000000000"}`
	for _, c := range []struct {
		name   string
		status int
		body   string
		ours   bool // read by the wire rather than handed to the SDK
		err    string
	}{
		{"accepted", 200, `{"FailedRecordCount":0,"Records":[` + ok + `,` + ok + `]}`, true, ""},
		{"failures", 200, `{"FailedRecordCount":1,"Records":[` + ok + `,{"ErrorCode":"ProvisionedThroughputExceededException",` +
			`"ErrorMessage":"Rate exceeded for shard shardId-000000000001 in stream s under account 111111111111."}],"EncryptionType":"KMS"}`, true, ""},
		{"escapes and layout", 200, " {\n \"Records\" : [ {\"ErrorMessage\":\"quote \\\" é \\u00e9 \\n\", \"ErrorCode\":\"InternalFailure\"} ,\t" + ok +
			" ] , \"FailedRecordCount\" : 1 }\n", true, ""},
		{"unknown members", 200, `{"Extra":{"a":[1,-2.5e3,true,false,null,"x",{}],"b":[]},"FailedRecordCount":0,"Records":[` +
			`{"Future":[{"x":null}],"SequenceNumber":"1","ShardId":"s"},{}]}`, true, ""},
		{"truncated", 200, `{"FailedRecordCount":0,"Records":[` + ok, false, "deserialization failed"},
		{"not an object", 200, `[1,2]`, false, "deserialization failed"},
		{"stream missing", 400, `{"__type":"ResourceNotFoundException","message":"Stream s under account 000000000000 not found."}`,
			false, "ResourceNotFoundException"},
	} {
		t.Run(c.name, func(t *testing.T) {
			hc := &captureHTTP{answer: func(int) (int, string) { return c.status, c.body }}
			client := newCaptureClient(hc)
			w := newWire()
			sdkOut, sdkErr := client.PutRecords(context.Background(), in, noSDKRetries)
			out, err := client.PutRecords(context.Background(), in, noSDKRetries, w.option)
			if c.err != "" {
				if err == nil || sdkErr == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(sdkErr.Error(), c.err) {
					t.Fatalf("errors = %v (wire), %v (SDK); want both to mention %q", err, sdkErr, c.err)
				}
				if reflect.TypeOf(errors.Unwrap(err)) != reflect.TypeOf(errors.Unwrap(sdkErr)) {
					t.Errorf("error type %T, SDK's %T", errors.Unwrap(err), errors.Unwrap(sdkErr))
				}
				return
			}
			if err != nil || sdkErr != nil {
				t.Fatalf("errors = %v (wire), %v (SDK)", err, sdkErr)
			}
			if (out == &w.out) != c.ours {
				t.Errorf("read by the wire = %v, want %v", out == &w.out, c.ours)
			}
			if aws.ToInt32(out.FailedRecordCount) != aws.ToInt32(sdkOut.FailedRecordCount) || out.EncryptionType != sdkOut.EncryptionType ||
				len(out.Records) != len(sdkOut.Records) {
				t.Fatalf("result %+v, SDK's %+v", out, sdkOut)
			}
			for i, r := range out.Records {
				want := sdkOut.Records[i]
				if aws.ToString(r.ErrorCode) != aws.ToString(want.ErrorCode) || aws.ToString(r.ErrorMessage) != aws.ToString(want.ErrorMessage) {
					t.Errorf("entry %d: %q %q, SDK's %q %q", i, aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage),
						aws.ToString(want.ErrorCode), aws.ToString(want.ErrorMessage))
				}
			}
		})
	}
}

// FuzzReadResult: the result reader never panics, and what it accepts of
// valid JSON the SDK reads alike.
func FuzzReadResult(f *testing.F) {
	for _, s := range []string{
		`{"FailedRecordCount":1,"Records":[{"SequenceNumber":"1","ShardId":"s"},{"ErrorCode":"c","ErrorMessage":"m \u00e9"}]}`,
		`{"Records":[],"EncryptionType":"NONE","X":[{"y":[1,2,{"z":null}]},true,-1.5e-3]}`,
		`{"Records":[{"ErrorCode":"a\"b\\c"}]}`,
		`{"Records":[{`, `[]`, `"x"`, ``,
	} {
		f.Add([]byte(s))
	}
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{Data: []byte("a"), PartitionKey: aws.String("k")}}}
	f.Fuzz(func(t *testing.T, body []byte) {
		w := newWire()
		if w.readResult(body) != nil || !json.Valid(body) {
			return
		}
		client := newCaptureClient(&captureHTTP{answer: func(int) (int, string) { return 200, string(body) }})
		sdk, err := client.PutRecords(context.Background(), in, noSDKRetries)
		if err != nil {
			t.Fatalf("the wire reads what the SDK refuses (%v)", err)
		}
		if len(sdk.Records) != len(w.out.Records) || aws.ToInt32(sdk.FailedRecordCount) != aws.ToInt32(w.out.FailedRecordCount) {
			t.Fatalf("%d records, %d failed; the SDK reads %d, %d", len(w.out.Records), aws.ToInt32(w.out.FailedRecordCount),
				len(sdk.Records), aws.ToInt32(sdk.FailedRecordCount))
		}
		for i, r := range w.out.Records {
			want := sdk.Records[i]
			if aws.ToString(r.ErrorCode) != aws.ToString(want.ErrorCode) || aws.ToString(r.ErrorMessage) != aws.ToString(want.ErrorMessage) {
				t.Fatalf("entry %d: %q %q, the SDK reads %q %q", i, aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage),
					aws.ToString(want.ErrorCode), aws.ToString(want.ErrorMessage))
			}
		}
	})
}
