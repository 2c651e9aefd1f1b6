package sink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cdcd-dev/cdcd/record"
)

// The PutRecords request and response bodies, handled by the sink instead
// of the SDK. The SDK's generic serializer base64-encodes each record into a
// growing buffer and then copies the whole body again, and its
// deserializer allocates a result entry and two strings for every record;
// at hundreds of thousands of records a second that was most of the sink's
// allocations and a good part of its CPU. A wire writes the request into
// a buffer its worker reuses and reads the answer into reused values; the
// SDK client does everything else as before: endpoint, headers, signing
// (over the body's SHA-256, which the wire hands it), the HTTP call, and
// error responses.

// IDs of the SDK's middlewares that a wire replaces.
const (
	sdkSerializer   = "OperationSerializer"
	sdkDeserializer = "OperationDeserializer"
)

// wire is one worker's request and response buffers. A worker makes one
// call at a time and is done with its result before the next, and the SDK
// is done reading a request body once the call returns (its HTTP handler
// closes the body's guard before it returns), so the buffers are free again
// for the next call.
type wire struct {
	body   []byte     // request
	reader bodyReader // body, for the SDK
	resp   []byte     // response
	out    kinesis.PutRecordsOutput
	// option is w.install as a value, made once so that a call allocates
	// nothing for it.
	option func(*kinesis.Options)
}

func newWire() *wire {
	w := &wire{}
	w.option = w.install
	return w
}

// install is the per-call option that puts w in place of the SDK's
// serializer and deserializer, each wrapping the one it replaces.
func (w *wire) install(o *kinesis.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		ser := &bodyMiddleware{w: w}
		sdk, err := stack.Serialize.Swap(sdkSerializer, ser)
		if err != nil {
			return fmt.Errorf("put records: install request writer: %w", err)
		}
		ser.sdk = sdk
		de := &resultMiddleware{w: w}
		if de.sdk, err = stack.Deserialize.Swap(sdkDeserializer, de); err != nil {
			return fmt.Errorf("put records: install result reader: %w", err)
		}
		return nil
	})
}

// bodyMiddleware serialises PutRecords itself. It lets the SDK's serializer
// set the method, path and headers from the input without its records, then
// replaces the body, so everything but the body stays the SDK's.
type bodyMiddleware struct {
	w   *wire
	sdk middleware.SerializeMiddleware
}

func (*bodyMiddleware) ID() string { return sdkSerializer }

func (m *bodyMiddleware) HandleSerialize(ctx context.Context, in middleware.SerializeInput, next middleware.SerializeHandler) (
	middleware.SerializeOutput, middleware.Metadata, error,
) {
	params, ok := in.Parameters.(*kinesis.PutRecordsInput)
	if !ok {
		return m.sdk.HandleSerialize(ctx, in, next)
	}
	m.w.body = appendPutRecordsBody(m.w.body[:0], params)
	body := m.w.body
	stub := *params
	stub.Records = []types.PutRecordsRequestEntry{}
	in.Parameters = &stub
	return m.sdk.HandleSerialize(ctx, in, middleware.SerializeHandlerFunc(
		func(ctx context.Context, in middleware.SerializeInput) (middleware.SerializeOutput, middleware.Metadata, error) {
			req, ok := in.Request.(*smithyhttp.Request)
			if !ok {
				return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("put records: unexpected transport type %T", in.Request)
			}
			m.w.reader.r.Reset(body)
			req, err := req.SetStream(&m.w.reader)
			if err != nil {
				return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("put records: set body: %w", err)
			}
			in.Request, in.Parameters = req, params
			return next.HandleSerialize(withPayloadHash(ctx, body), in)
		}))
}

// withPayloadHash gives the signer the body's SHA-256, which it would
// otherwise compute by copying a bodyReader through a new 32 KiB buffer
// each call.
func withPayloadHash(ctx context.Context, body []byte) context.Context {
	sum := sha256.Sum256(body)
	return v4.SetPayloadHash(ctx, hex.EncodeToString(sum[:]))
}

// bodyReader is the request body as the SDK sends it: a bytes.Reader
// without its WriteTo. The SDK closes the body as soon as the answer's
// headers are in, while net/http's writer may not yet have made its final
// read of the body, which it makes with io.Copy after the last bytes have
// left. For a body that is an io.WriterTo, the SDK's guard answers that
// read after the close with io.EOF from WriteTo, which io.Copy passes on
// as a failure: net/http then takes the request as not written and closes
// the connection under the answer being read ("use of closed network
// connection"), and a batch Kinesis accepted is sent again. Read after the
// close ends the body cleanly. (Bodies within net/http's 4 KiB write
// buffer leave only after that read, so the SDK's own small requests are
// safe; a PutRecords body rarely is.)
type bodyReader struct{ r bytes.Reader }

func (b *bodyReader) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *bodyReader) Seek(offset int64, whence int) (int64, error) { return b.r.Seek(offset, whence) }

// Len is what is left to read, as bytes.Reader's, for the SDK's
// Content-Length.
func (b *bodyReader) Len() int { return b.r.Len() }

// appendPutRecordsBody appends the awsJson1_1 body of in, members in the
// order the SDK writes them, each record's Data in standard base64.
func appendPutRecordsBody(dst []byte, in *kinesis.PutRecordsInput) []byte {
	dst = append(growBody(dst, in), '{')
	if in.DryRun != nil {
		dst = appendName(dst, "DryRun")
		dst = appendBool(dst, *in.DryRun)
	}
	if in.Records != nil {
		dst = appendName(dst, "Records")
		dst = append(dst, '[')
		for i := range in.Records {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendEntry(dst, &in.Records[i])
		}
		dst = append(dst, ']')
	}
	dst = appendString(dst, "StreamARN", in.StreamARN)
	dst = appendString(dst, "StreamId", in.StreamId)
	dst = appendString(dst, "StreamName", in.StreamName)
	return append(dst, '}')
}

func appendEntry(dst []byte, e *types.PutRecordsRequestEntry) []byte {
	dst = append(dst, '{')
	if e.Data != nil {
		dst = append(dst, `"Data":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, e.Data)
		dst = append(dst, '"')
	}
	dst = appendString(dst, "ExplicitHashKey", e.ExplicitHashKey)
	dst = appendString(dst, "PartitionKey", e.PartitionKey)
	return append(dst, '}')
}

// appendString appends the member "name":"v" unless v is nil.
func appendString(dst []byte, name string, v *string) []byte {
	if v == nil {
		return dst
	}
	return record.AppendJSONString(appendName(dst, name), *v)
}

// appendName appends a member's name and colon, after a comma unless the
// member is its object's first; name is a plain identifier.
func appendName(dst []byte, name string) []byte {
	if dst[len(dst)-1] != '{' {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, name...)
	return append(dst, `":`...)
}

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}

// growBody makes room for the body of in up front, so a worker's buffer
// reaches the size of its largest request once and is not copied while
// it grows.
func growBody(dst []byte, in *kinesis.PutRecordsInput) []byte {
	n := 64
	for i := range in.Records {
		e := &in.Records[i]
		n += 48 + base64.StdEncoding.EncodedLen(len(e.Data))
		if e.PartitionKey != nil {
			n += len(*e.PartitionKey)
		}
	}
	if cap(dst)-len(dst) < n {
		dst = append(make([]byte, 0, len(dst)+n), dst...)
	}
	return dst
}
