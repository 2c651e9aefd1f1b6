package sink

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/cdcd-dev/cdcd/test/kinesisfake"
)

// TestAnswerOutlivesRequestWriter makes PutRecords calls through a wire, the
// SDK's client and net/http to a kinesisfake, each with the interleaving
// that lost answers in the end-to-end benchmark: the server has the whole
// body and answers while the transport's writer is still inside the
// request, having written the last bytes but not yet read the body to its
// end, and the writer goes on only once the SDK has the answer and has
// closed the request body. That final read must still find a clean end:
// when it failed, net/http took the request as not written and closed the
// connection under the answer being read ("use of closed network
// connection"), and the sink sent again records Kinesis had accepted.
func TestAnswerOutlivesRequestWriter(t *testing.T) {
	t.Parallel()
	fake := kinesisfake.New(t, kinesisfake.Options{Stream: "s"})
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &heldConn{Conn: c, closed: make(chan struct{})}, nil
		}
	})
	client := fake.Client(func(o *kinesis.Options) { o.HTTPClient = hc })
	// Bodies and answers far larger than net/http's 4 KiB buffers: the
	// last body bytes leave before the writer's final read, and the
	// answer is still on the connection when the SDK starts reading it.
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s")}
	for i := range 500 {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{
			Data: []byte(strings.Repeat("x", 100)), PartitionKey: aws.String(fmt.Sprint(i))})
	}
	w := newWire()
	const calls = 20
	for i := range calls {
		var call heldCall
		ctx, cancel := context.WithTimeout(call.trace(context.Background()), 30*time.Second) // against a hang only
		_, err := client.PutRecords(ctx, in, noSDKRetries, w.option, call.option)
		cancel()
		if err != nil || call.writeErr != nil {
			t.Fatalf("call %d: %v (the request's writer: %v); the fake answered %d calls", i, err, call.writeErr, fake.Calls())
		}
		if !call.held {
			t.Fatalf("call %d: the writer was never held after the body's last bytes", i)
		}
	}
	if fake.Calls() != calls || fake.Records() != calls*500 {
		t.Errorf("the fake answered %d calls with %d records, want %d and %d", fake.Calls(), fake.Records(), calls, calls*500)
	}
}

// heldCall is one call's view of its connection: it lets the writer go on
// only once the SDK has the answer, and waits for what the writer made of
// the request before the answer's body is read.
type heldCall struct {
	conn     *heldConn
	gate     chan struct{}
	wrote    chan error
	writeErr error // as the writer saw the end of the request
	held     bool
}

func (c *heldCall) trace(ctx context.Context) context.Context {
	c.gate, c.wrote = make(chan struct{}), make(chan error, 1)
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			c.conn = info.Conn.(*heldConn)
			c.conn.gate.Store(&c.gate)
		},
		WroteRequest: func(info httptrace.WroteRequestInfo) { c.wrote <- info.Err },
	})
}

// option adds, next to the transport, a step that runs when the SDK's HTTP
// handler has returned: the answer's headers are in and the request body
// is closed, its body not yet read.
func (c *heldCall) option(o *kinesis.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("heldCall", func(
			ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler,
		) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			if c.conn == nil {
				return out, md, err
			}
			close(c.gate)
			c.writeErr = <-c.wrote
			c.held = c.conn.held.Swap(false)
			if c.writeErr != nil {
				<-c.conn.closed // net/http drops a connection whose request failed to write
			}
			return out, md, err
		}), middleware.After)
	})
}

// heldConn holds the writer of a request whose body spans several writes
// after the write that carries the body's last bytes, until the call's
// gate opens. A request written at once (its body fits the transport's
// buffer) goes out only after the writer's final read, so nothing is held.
type heldConn struct {
	net.Conn
	gate      atomic.Pointer[chan struct{}]
	held      atomic.Bool
	closeOnce sync.Once
	closed    chan struct{}

	// The writer's state: the request head so far, and the body bytes
	// still to come when the head has been written.
	head   []byte
	inBody bool
	left   int64
}

func (c *heldConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.endsSpreadBody(p[:n]) {
		if g := c.gate.Load(); g != nil {
			c.held.Store(true)
			<-*g
		}
	}
	return n, err
}

func (c *heldConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// endsSpreadBody follows the requests written and reports whether p ends
// a body whose first bytes an earlier write carried.
func (c *heldConn) endsSpreadBody(p []byte) bool {
	began := c.inBody
	if c.inBody {
		c.left -= int64(len(p))
	} else {
		c.head = append(c.head, p...)
		i := bytes.Index(c.head, []byte("\r\n\r\n"))
		if i < 0 {
			return false
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(c.head[:i+4])))
		if err != nil {
			return false // not a request: nothing to hold
		}
		c.left = req.ContentLength - int64(len(c.head)-i-4)
		c.head, c.inBody = c.head[:0], true
	}
	if c.left > 0 {
		return false
	}
	c.inBody = false
	return began
}
