package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// resultMiddleware reads a successful PutRecords answer into the wire's
// reused output, keeping of each entry only what the sink looks at: its
// ErrorCode and ErrorMessage (SequenceNumber and ShardId are skipped). An
// error response, or a body it does not recognise, goes to the SDK's
// deserializer as before.
type resultMiddleware struct {
	w   *wire
	sdk middleware.DeserializeMiddleware
}

func (*resultMiddleware) ID() string { return sdkDeserializer }

func (m *resultMiddleware) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
	middleware.DeserializeOutput, middleware.Metadata, error,
) {
	out, md, err := next.HandleDeserialize(ctx, in)
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if err != nil || !ok || resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return m.sdk.HandleDeserialize(ctx, in, replay(out, md, err))
	}
	body, err := readBody(m.w.resp[:0], resp)
	m.w.resp = body
	if err != nil {
		return out, md, &smithy.DeserializationError{Err: fmt.Errorf("read PutRecords result: %w", err)}
	}
	if m.w.readResult(body) == nil {
		out.Result = &m.w.out
		return out, md, nil
	}
	// Not the shape expected: the SDK decides what it is.
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return m.sdk.HandleDeserialize(ctx, in, replay(out, md, nil))
}

// replay is a handler that returns what the transport already returned.
func replay(out middleware.DeserializeOutput, md middleware.Metadata, err error) middleware.DeserializeHandler {
	return middleware.DeserializeHandlerFunc(func(context.Context, middleware.DeserializeInput) (middleware.DeserializeOutput, middleware.Metadata, error) {
		return out, md, err
	})
}

// readBody reads and closes resp's body, appending to buf.
func readBody(buf []byte, resp *smithyhttp.Response) ([]byte, error) {
	defer resp.Body.Close()
	if n := int(resp.ContentLength); n > 0 && cap(buf)-len(buf) < n {
		buf = append(make([]byte, 0, len(buf)+n), buf...)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := resp.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// errResultShape marks a body readResult does not recognise.
var errResultShape = errors.New("unexpected PutRecords result")

// readResult parses a PutRecords result body into w.out, reusing its
// entries. Members may come in any order; unknown ones are skipped.
func (w *wire) readResult(body []byte) error {
	w.out.Records = w.out.Records[:0]
	w.out.FailedRecordCount, w.out.EncryptionType = nil, ""
	s := scanner{b: body}
	if !s.enter('{') {
		return errResultShape
	}
	for first := true; ; first = false {
		more, err := s.next('}', first)
		if err != nil || !more {
			if err == nil && s.ws() != len(body) {
				err = errResultShape
			}
			return err
		}
		name, err := s.name()
		switch {
		case err != nil:
		case string(name) == "FailedRecordCount":
			var n int32
			n, err = s.int32()
			w.out.FailedRecordCount = &n
		case string(name) == "EncryptionType":
			var v string
			v, err = s.string()
			w.out.EncryptionType = types.EncryptionType(v)
		case string(name) == "Records":
			err = w.readEntries(&s)
		default:
			err = s.skip()
		}
		if err != nil {
			return err
		}
	}
}

// readEntries reads the Records array into w.out.Records.
func (w *wire) readEntries(s *scanner) error {
	if !s.enter('[') {
		return errResultShape
	}
	for first := true; ; first = false {
		more, err := s.next(']', first)
		if err != nil || !more {
			return err
		}
		w.out.Records = append(w.out.Records, types.PutRecordsResultEntry{})
		if err := readEntry(s, &w.out.Records[len(w.out.Records)-1]); err != nil {
			return err
		}
	}
}

// readEntry reads the members of one result entry that the sink uses:
// ErrorCode and ErrorMessage.
func readEntry(s *scanner, e *types.PutRecordsResultEntry) error {
	if !s.enter('{') {
		return errResultShape
	}
	for first := true; ; first = false {
		more, err := s.next('}', first)
		if err != nil || !more {
			return err
		}
		name, err := s.name()
		if err != nil {
			return err
		}
		var dst **string
		switch string(name) {
		case "ErrorCode":
			dst = &e.ErrorCode
		case "ErrorMessage":
			dst = &e.ErrorMessage
		default:
			if err := s.skip(); err != nil {
				return err
			}
			continue
		}
		v, err := s.string()
		if err != nil {
			return err
		}
		*dst = &v
	}
}

// scanner reads the JSON of a PutRecords result: just enough JSON to find
// the members wanted and skip the rest.
type scanner struct {
	b []byte
	i int
}

// ws skips whitespace and returns the position.
func (s *scanner) ws() int {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
	return s.i
}

// enter consumes c, an object's or array's opening bracket.
func (s *scanner) enter(c byte) bool {
	if s.ws() < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// next reports whether the object or array closed by end has another
// member or element, consuming the comma before it, or end after the last.
// first says whether any came before.
func (s *scanner) next(end byte, first bool) (bool, error) {
	switch {
	case s.enter(end):
		return false, nil
	case first || s.enter(','):
		return true, nil
	}
	return false, errResultShape
}

// name reads a member's name and its colon.
func (s *scanner) name() ([]byte, error) {
	name, escaped, err := s.rawString()
	if err != nil || escaped || !s.enter(':') {
		return nil, errResultShape
	}
	return name, nil
}

// rawString reads a string and returns its bytes between the quotes,
// aliasing the body, and whether it holds escapes.
func (s *scanner) rawString() (raw []byte, escaped bool, err error) {
	if !s.enter('"') {
		return nil, false, errResultShape
	}
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], escaped, nil
		case c == '\\':
			escaped = true
			s.i += 2
		case c < 0x20:
			return nil, false, errResultShape
		default:
			s.i++
		}
	}
	return nil, false, errResultShape
}

// string reads a string value, unescaped.
func (s *scanner) string() (string, error) {
	start := s.ws()
	raw, escaped, err := s.rawString()
	if err != nil || !escaped {
		return string(raw), err
	}
	var v string
	if err := json.Unmarshal(s.b[start:s.i], &v); err != nil {
		return "", errResultShape
	}
	return v, nil
}

func (s *scanner) int32() (int32, error) {
	start := s.ws()
	for s.i < len(s.b) && (s.b[s.i] == '-' || s.b[s.i] >= '0' && s.b[s.i] <= '9') {
		s.i++
	}
	n, err := strconv.ParseInt(string(s.b[start:s.i]), 10, 32)
	if err != nil {
		return 0, errResultShape
	}
	return int32(n), nil
}

// skip reads a value of any kind without keeping it.
func (s *scanner) skip() error {
	if s.ws() >= len(s.b) {
		return errResultShape
	}
	switch s.b[s.i] {
	case '"':
		_, _, err := s.rawString()
		return err
	case '{', '[':
		return s.skipNested()
	}
	start := s.i
	for s.i < len(s.b) && bytes.IndexByte([]byte("+-.0123456789Eaeflnrstu"), s.b[s.i]) >= 0 {
		s.i++
	}
	if s.i == start || !json.Valid(s.b[start:s.i]) {
		return errResultShape
	}
	return nil
}

// skipNested skips an object or array.
func (s *scanner) skipNested() error {
	end, isObject := byte(']'), s.b[s.i] == '{'
	if isObject {
		end = '}'
	}
	s.i++
	for first := true; ; first = false {
		more, err := s.next(end, first)
		if err != nil || !more {
			return err
		}
		if isObject {
			if _, err := s.name(); err != nil {
				return err
			}
		}
		if err := s.skip(); err != nil {
			return err
		}
	}
}
