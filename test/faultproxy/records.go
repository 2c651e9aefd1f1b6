package faultproxy

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// putRecordsWithFailures applies a record decider to a PutRecords request:
// the entries it fails are taken out, the rest are forwarded upstream (so
// they really land), and the answer is the upstream's with the failed
// entries put back in their places, carrying ErrorCode and ErrorMessage, and
// FailedRecordCount raised to match.
func (p *Proxy) putRecordsWithFailures(w http.ResponseWriter, r *http.Request, op string, body []byte, fail func(int, Entry) string) {
	var req map[string]json.RawMessage
	var entries []json.RawMessage
	if json.Unmarshal(body, &req) != nil || json.Unmarshal(req["Records"], &entries) != nil {
		// Not a request we understand: let the upstream judge it.
		p.forwardAsIs(w, r, op, body)
		return
	}
	var stream string
	_ = json.Unmarshal(req["StreamName"], &stream)
	codes, kept := p.decide(op, entries, fail)
	if len(kept) == len(entries) {
		p.forwardAsIs(w, r, op, body)
		return
	}
	resp := map[string]json.RawMessage{}
	var results []json.RawMessage
	upstreamFailed := 0
	if len(kept) > 0 {
		req["Records"], _ = json.Marshal(kept)
		newBody, _ := json.Marshal(req)
		up, upBody, err := p.forward(r, op, newBody)
		if err != nil {
			p.writeUpstreamError(w, err)
			return
		}
		if up.StatusCode != http.StatusOK ||
			json.Unmarshal(upBody, &resp) != nil ||
			json.Unmarshal(resp["Records"], &results) != nil ||
			len(results) != len(kept) {
			// The whole call failed upstream (or answered oddly): pass it on.
			copyResponse(w, up, upBody)
			return
		}
		_ = json.Unmarshal(resp["FailedRecordCount"], &upstreamFailed)
	}
	resp["Records"], _ = json.Marshal(mergeResults(codes, results, stream))
	resp["FailedRecordCount"], _ = json.Marshal(upstreamFailed + len(entries) - len(kept))
	p.writeJSON(w, resp)
}

// decide asks fail about every entry: codes holds each entry's error code
// ("" to forward it) and kept the entries to forward. Failures are counted.
func (p *Proxy) decide(op string, entries []json.RawMessage, fail func(int, Entry) string) (codes []string, kept []json.RawMessage) {
	codes = make([]string, len(entries))
	var failed []Entry
	p.failMu.Lock()
	for i, raw := range entries {
		e := decodeEntry(raw)
		codes[i] = fail(i, e)
		if codes[i] == "" {
			kept = append(kept, raw)
		} else {
			failed = append(failed, e)
		}
	}
	p.failMu.Unlock()
	if len(failed) > 0 {
		p.mu.Lock()
		p.faults[op]++
		p.countEntries(failed, func(c *EntryCount) { c.Failed++ })
		p.mu.Unlock()
	}
	return codes, kept
}

// mergeResults puts the failed entries' errors back among the upstream's
// results for the forwarded ones, in request order.
func mergeResults(codes []string, results []json.RawMessage, stream string) []json.RawMessage {
	merged := make([]json.RawMessage, len(codes))
	j := 0
	for i, code := range codes {
		if code == "" {
			merged[i] = results[j]
			j++
			continue
		}
		merged[i], _ = json.Marshal(struct {
			ErrorCode    string
			ErrorMessage string
		}{code, recordErrorMessage(code, stream)})
	}
	return merged
}

// writeJSON answers 200 with v in Kinesis's JSON protocol.
func (p *Proxy) writeJSON(w http.ResponseWriter, v any) {
	out, _ := json.Marshal(v)
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h.Set("X-Amzn-RequestId", p.requestID())
	h.Set("Content-Length", fmt.Sprint(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// decodeEntry reads one PutRecords request entry; what it cannot read
// stays zero.
func decodeEntry(raw json.RawMessage) Entry {
	var e Entry
	_ = json.Unmarshal(raw, &e)
	return e
}

// putRecordsEntries reads the entries of a PutRecords request body; none
// if it is not one.
func putRecordsEntries(body []byte) []Entry {
	var req struct{ Records []json.RawMessage }
	_ = json.Unmarshal(body, &req)
	entries := make([]Entry, len(req.Records))
	for i, raw := range req.Records {
		entries[i] = decodeEntry(raw)
	}
	return entries
}

func (p *Proxy) forwardAsIs(w http.ResponseWriter, r *http.Request, op string, body []byte) {
	resp, respBody, err := p.forward(r, op, body)
	if err != nil {
		p.writeUpstreamError(w, err)
		return
	}
	copyResponse(w, resp, respBody)
}

// recordErrorMessage imitates Kinesis's per-record messages.
func recordErrorMessage(code, stream string) string {
	switch code {
	case CodeThroughputExceeded:
		return fmt.Sprintf("Rate exceeded for shard shardId-000000000000 in stream %s under account 000000000000. (faultproxy)", stream)
	case CodeInternalFailure:
		return "Internal service failure. (faultproxy)"
	}
	return code + " (faultproxy)"
}
