// Package kinesisfake is an in-process Amazon Kinesis endpoint for tests and
// benchmarks. It speaks the JSON 1.1 protocol of the AWS SDK (X-Amz-Target
// "Kinesis_20131202.<Op>") for the calls cdcd makes: PutRecords,
// DescribeStreamSummary and ListShards, against one stream that is always
// ACTIVE.
//
// PutRecords accepts every entry at once unless Options.Fail fails it. By
// default the fake only counts entries and data bytes, finding them in the
// request body without decoding it, and answers from canned responses: a
// benchmark at hundreds of thousands of records a second then measures its
// client, not the fake. Options.Keep, Fail or OnEntry make it decode each
// request, for tests that look at what arrived; Options.OnRaw sees each
// entry's data in counting mode, for benchmarks that time what arrived.
//
//	fake := kinesisfake.New(t, kinesisfake.Options{Stream: "s", Keep: true})
//	client := fake.Client()
//	// ... client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), ...})
//	for _, e := range fake.Entries() { /* e.Data, e.PartitionKey, e.Received */ }
package kinesisfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// region and account are where the fake's stream lives, as its ARN and
// errors say.
const (
	region  = "us-east-1"
	account = "000000000000"
)

const targetPrefix = "Kinesis_20131202."

// Options shape a fake. The zero value is a one-shard, unencrypted stream
// of any name that accepts every record without delay and only counts.
type Options struct {
	// Stream is the stream's name. Calls naming another stream, by
	// StreamName or StreamARN, answer ResourceNotFoundException. "" lets
	// every name exist.
	Stream string
	// Shards is the open shard count; 0 means 1.
	Shards int
	// MaxRecordSizeInKiB is reported by DescribeStreamSummary when above
	// 0; streams (and emulators) without the setting leave it out.
	MaxRecordSizeInKiB int32
	// KMSKeyID makes the stream KMS-encrypted with this key; "" is NONE.
	KMSKeyID string

	// Delay holds each PutRecords before the fake acts on it, standing in
	// for the service's latency. A client that gives up first lands
	// nothing.
	Delay time.Duration
	// Keep decodes every PutRecords and keeps each accepted entry for
	// Entries.
	Keep bool
	// Fail decides each entry of a PutRecords: a non-empty code fails
	// entry i of the request with that ErrorCode and message; "" accepts
	// it.
	Fail func(i int, e Entry) (code, message string)
	// OnEntry sees each accepted entry as it lands, for callers that check
	// records without keeping them all.
	OnEntry func(e Entry)
	// OnRaw sees each accepted entry's data as the request carries it,
	// standard base64, valid only during the call, and when the request
	// arrived. Unlike OnEntry it leaves the fake counting: a benchmark pays
	// for what the hook does, not for decoding every request.
	OnRaw func(received time.Time, data []byte)
}

// Entry is one PutRecords entry as the fake saw it.
type Entry struct {
	Data         []byte
	PartitionKey string
	// Received is when the fake accepted the request, after any Delay;
	// Fail sees the same time.
	Received time.Time
}

// Server is a running fake. Its methods are safe for concurrent use; calls
// to Options.Fail, Options.OnEntry and Options.OnRaw are serialised.
type Server struct {
	opts     Options
	shardIDs []string
	arn      string // of Options.Stream, when set
	decode   bool   // Keep, Fail or OnEntry need each entry
	srv      *httptest.Server

	calls   atomic.Int64
	records atomic.Int64
	bytes   atomic.Int64
	first   atomic.Int64 // unix nanoseconds of the first PutRecords answered
	last    atomic.Int64 // and of the last
	seq     atomic.Int64

	bufs sync.Pool // *bytes.Buffer for request bodies

	// hookMu serialises the callers' hooks, which run without mu so they
	// may call back into the fake.
	hookMu sync.Mutex

	mu      sync.Mutex
	entries []Entry
	canned  map[int][]byte // counting-mode answers by entry count
}

// Start runs a fake until Close.
func Start(o Options) *Server {
	s := &Server{
		opts:     o,
		shardIDs: make([]string, max(o.Shards, 1)),
		decode:   o.Keep || o.Fail != nil || o.OnEntry != nil,
		canned:   map[int][]byte{},
	}
	for i := range s.shardIDs {
		s.shardIDs[i] = fmt.Sprintf("shardId-%012d", i)
	}
	if o.Stream != "" {
		s.arn = streamARN(o.Stream)
	}
	s.srv = httptest.NewServer(s)
	return s
}

// New runs a fake that is closed when the test ends.
func New(tb testing.TB, o Options) *Server {
	tb.Helper()
	s := Start(o)
	tb.Cleanup(s.Close)
	return s
}

// URL is the endpoint to give a Kinesis client as its BaseEndpoint.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Client returns a real SDK client for the fake with dummy static
// credentials. It is built from aws.Config directly rather than with
// config.LoadDefaultConfig, so nothing of the machine's AWS setup (profiles,
// IMDS, an AWS_CA_BUNDLE that rejects a custom HTTP client) plays a part.
func (s *Server) Client(optFns ...func(*kinesis.Options)) *kinesis.Client {
	return kinesis.NewFromConfig(aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDKINESISFAKE", "secret", ""),
		BaseEndpoint: aws.String(s.URL()),
	}, optFns...)
}

// Calls is how many PutRecords calls the fake answered with 200.
func (s *Server) Calls() int64 { return s.calls.Load() }

// Records is how many entries PutRecords accepted.
func (s *Server) Records() int64 { return s.records.Load() }

// Bytes is the data bytes (decoded, without partition keys) of the
// accepted entries.
func (s *Server) Bytes() int64 { return s.bytes.Load() }

// First is when the fake first answered PutRecords with 200; zero before.
func (s *Server) First() time.Time { return unixTime(s.first.Load()) }

// Last is when the fake last answered PutRecords with 200; zero before.
func (s *Server) Last() time.Time { return unixTime(s.last.Load()) }

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Entries are the accepted entries in the order they landed, when
// Options.Keep is set. The Data slices belong to the fake: read only.
func (s *Server) Entries() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Entry(nil), s.entries...)
}

// ServeHTTP answers one Kinesis call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	buf, _ := s.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer s.bufs.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(r.Body); err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	body := buf.Bytes()
	switch op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), targetPrefix); op {
	case "PutRecords":
		s.putRecords(w, r, body)
	case "DescribeStreamSummary":
		s.describeStreamSummary(w, body)
	case "ListShards":
		s.listShards(w, body)
	default:
		writeError(w, http.StatusBadRequest, "UnknownOperationException", "kinesisfake does not implement "+op)
	}
}

// streamRef is how a call names its stream.
type streamRef struct {
	StreamName string
	StreamARN  string
}

// name is the stream a call addresses, or "" when no such stream exists.
func (s *Server) name(ref streamRef) string {
	name := ref.StreamName
	if name == "" {
		_, name, _ = strings.Cut(ref.StreamARN, ":stream/")
	}
	switch {
	case s.opts.Stream == "":
		return name
	case ref.StreamName != "" && ref.StreamName == s.opts.Stream,
		ref.StreamName == "" && ref.StreamARN == s.arn:
		return s.opts.Stream
	}
	return ""
}

func (s *Server) notFound(w http.ResponseWriter, ref streamRef) {
	name := ref.StreamName
	if name == "" {
		name = ref.StreamARN
	}
	writeError(w, http.StatusBadRequest, "ResourceNotFoundException",
		fmt.Sprintf("Stream %s under account %s not found.", name, account))
}

func (s *Server) describeStreamSummary(w http.ResponseWriter, body []byte) {
	var ref streamRef
	if err := json.Unmarshal(body, &ref); err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	name := s.name(ref)
	if name == "" {
		s.notFound(w, ref)
		return
	}
	type summary struct {
		StreamName              string
		StreamARN               string
		StreamStatus            string
		RetentionPeriodHours    int
		StreamCreationTimestamp int64
		EnhancedMonitoring      []struct{}
		EncryptionType          string
		KeyId                   string `json:",omitempty"`
		OpenShardCount          int
		ConsumerCount           int
		MaxRecordSizeInKiB      int32 `json:",omitempty"`
	}
	writeJSON(w, struct{ StreamDescriptionSummary summary }{summary{
		StreamName:              name,
		StreamARN:               streamARN(name),
		StreamStatus:            "ACTIVE",
		RetentionPeriodHours:    24,
		StreamCreationTimestamp: 1700000000,
		EnhancedMonitoring:      []struct{}{},
		EncryptionType:          s.encryption(),
		KeyId:                   s.opts.KMSKeyID,
		OpenShardCount:          len(s.shardIDs),
		MaxRecordSizeInKiB:      s.opts.MaxRecordSizeInKiB,
	}})
}

// listShards answers with every shard at once, dividing the hash key space
// evenly as CreateStream does.
func (s *Server) listShards(w http.ResponseWriter, body []byte) {
	var ref streamRef
	if err := json.Unmarshal(body, &ref); err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	if s.name(ref) == "" {
		s.notFound(w, ref)
		return
	}
	type hashKeyRange struct{ StartingHashKey, EndingHashKey string }
	type sequenceNumberRange struct{ StartingSequenceNumber string }
	type shard struct {
		ShardId             string
		HashKeyRange        hashKeyRange
		SequenceNumberRange sequenceNumberRange
	}
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	step := new(big.Int).Div(space, big.NewInt(int64(len(s.shardIDs))))
	shards := make([]shard, len(s.shardIDs))
	for i := range shards {
		start := new(big.Int).Mul(step, big.NewInt(int64(i)))
		end := new(big.Int).Add(start, step)
		if i == len(shards)-1 {
			end = space
		}
		shards[i] = shard{
			ShardId:             s.shardIDs[i],
			HashKeyRange:        hashKeyRange{start.String(), end.Sub(end, big.NewInt(1)).String()},
			SequenceNumberRange: sequenceNumberRange{sequenceNumber(0)},
		}
	}
	writeJSON(w, struct{ Shards []shard }{shards})
}

func (s *Server) encryption() string {
	if s.opts.KMSKeyID != "" {
		return "KMS"
	}
	return "NONE"
}

func streamARN(name string) string {
	return fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/%s", region, account, name)
}

// shardID is the shard an entry's result names: entries are spread over
// the shards by their index, not by partition key.
func (s *Server) shardID(i int) string { return s.shardIDs[i%len(s.shardIDs)] }

var sequenceBase = "4960" + strings.Repeat("0", 52)

// sequenceNumber is n in the 56 digits of a Kinesis sequence number, built
// without fmt: keeping and checking modes format one for every entry.
func sequenceNumber(n int64) string {
	d := strconv.FormatInt(n, 10)
	return sequenceBase[:len(sequenceBase)-len(d)] + d
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "InternalFailure", err.Error())
		return
	}
	writeBody(w, b)
}

func writeBody(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_, _ = w.Write(b)
}

// writeError answers in the JSON 1.1 error shape, which the SDK turns into
// the service's typed errors (*types.ResourceNotFoundException, ...).
func writeError(w http.ResponseWriter, status int, code, message string) {
	b, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{code, message})
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h.Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
