package kinesisfake

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"
)

// putResult is one entry of a PutRecords answer.
type putResult struct {
	SequenceNumber string `json:",omitempty"`
	ShardId        string `json:",omitempty"`
	ErrorCode      string `json:",omitempty"`
	ErrorMessage   string `json:",omitempty"`
}

type putOutput struct {
	FailedRecordCount int
	Records           []putResult
	EncryptionType    string
}

func (s *Server) putRecords(w http.ResponseWriter, r *http.Request, body []byte) {
	if s.opts.Delay > 0 {
		t := time.NewTimer(s.opts.Delay)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	now := time.Now()
	var out []byte
	var n, size int
	var ok bool
	if s.decode {
		out, n, size, ok = s.putDecoded(w, body, now)
	} else {
		out, n, size, ok = s.putCounted(w, body, now)
	}
	if !ok {
		return
	}
	// First and Last before Records: a caller that sees the count it waits
	// for also sees the time of the call that completed it.
	s.first.CompareAndSwap(0, now.UnixNano())
	s.last.Store(now.UnixNano())
	s.calls.Add(1)
	s.bytes.Add(int64(size))
	s.records.Add(int64(n))
	writeBody(w, out)
}

// The SDK writes compact JSON. A quote inside a JSON string is escaped, so
// these can only be the fields themselves, never part of a partition key;
// and base64 data, stream names and ARNs hold no quote or escape.
var (
	dataField       = []byte(`"Data":"`)
	streamNameField = []byte(`"StreamName":"`)
	streamARNField  = []byte(`"StreamARN":"`)
)

// putCounted answers without decoding the request: it counts the entries
// and their data bytes in the raw body and answers from a canned response
// for that many entries, whose sequence numbers repeat from call to call.
// Options.OnRaw, when set, sees each entry's data as it is found.
func (s *Server) putCounted(w http.ResponseWriter, body []byte, now time.Time) (out []byte, n, size int, ok bool) {
	if s.opts.Stream != "" {
		ref := streamRef{StreamName: stringField(body, streamNameField), StreamARN: stringField(body, streamARNField)}
		if s.name(ref) == "" {
			s.notFound(w, ref)
			return nil, 0, 0, false
		}
	}
	if s.opts.OnRaw != nil {
		s.hookMu.Lock()
		defer s.hookMu.Unlock()
	}
	for rest := body; ; {
		i := bytes.Index(rest, dataField)
		if i < 0 {
			break
		}
		rest = rest[i+len(dataField):]
		end := bytes.IndexByte(rest, '"')
		if end < 0 {
			break
		}
		n++
		size += decodedLen(rest[:end])
		if s.opts.OnRaw != nil {
			s.opts.OnRaw(now, rest[:end])
		}
		rest = rest[end+1:]
	}
	return s.cannedAnswer(n), n, size, true
}

// stringField is the value of a top-level string field, or "". The SDK
// writes the stream's name and ARN after Records, so the search starts at
// the end.
func stringField(body, field []byte) string {
	i := bytes.LastIndex(body, field)
	if i < 0 {
		return ""
	}
	v := body[i+len(field):]
	end := bytes.IndexByte(v, '"')
	if end < 0 {
		return ""
	}
	return string(v[:end])
}

// decodedLen is the length of padded standard base64 once decoded.
func decodedLen(b64 []byte) int {
	n := len(b64) / 4 * 3
	for i := len(b64) - 1; i >= 0 && b64[i] == '='; i-- {
		n--
	}
	return n
}

func (s *Server) cannedAnswer(n int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.canned[n]; ok {
		return b
	}
	res := putOutput{Records: make([]putResult, n), EncryptionType: s.encryption()}
	for i := range res.Records {
		res.Records[i] = putResult{SequenceNumber: sequenceNumber(int64(i + 1)), ShardId: s.shardID(i)}
	}
	b, _ := json.Marshal(res)
	s.canned[n] = b
	return b
}

// putDecoded decodes the request and runs each entry past Fail, OnEntry and
// Keep; accepted entries get sequence numbers unique to the fake.
func (s *Server) putDecoded(w http.ResponseWriter, body []byte, now time.Time) (out []byte, n, size int, ok bool) {
	var in struct {
		streamRef
		Records []struct {
			Data         []byte // base64 in the request, decoded by encoding/json
			PartitionKey string
		}
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return nil, 0, 0, false
	}
	if s.name(in.streamRef) == "" {
		s.notFound(w, in.streamRef)
		return nil, 0, 0, false
	}
	res := putOutput{Records: make([]putResult, len(in.Records)), EncryptionType: s.encryption()}
	s.hookMu.Lock()
	for i, rec := range in.Records {
		e := Entry{Data: rec.Data, PartitionKey: rec.PartitionKey, Received: now}
		if s.opts.Fail != nil {
			if code, msg := s.opts.Fail(i, e); code != "" {
				res.Records[i] = putResult{ErrorCode: code, ErrorMessage: msg}
				res.FailedRecordCount++
				continue
			}
		}
		res.Records[i] = putResult{SequenceNumber: sequenceNumber(s.seq.Add(1)), ShardId: s.shardID(i)}
		if s.opts.OnEntry != nil {
			s.opts.OnEntry(e)
		}
		if s.opts.Keep {
			s.mu.Lock()
			s.entries = append(s.entries, e)
			s.mu.Unlock()
		}
		n++
		size += len(e.Data)
	}
	s.hookMu.Unlock()
	out, err := json.Marshal(res)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "InternalFailure", err.Error())
		return nil, 0, 0, false
	}
	return out, n, size, true
}
