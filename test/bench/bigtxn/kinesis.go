package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fakeKinesis is the least Kinesis a daemon needs: DescribeStreamSummary and
// PutRecords (JSON 1.1 protocol), accepting every record at once, so the
// benchmark measures cdcd and not an emulator. It checks each record's row
// id, so a lost or duplicated row shows.
type fakeKinesis struct {
	name    string
	rows    int64
	records atomic.Int64
	bytes   atomic.Int64
	calls   atomic.Int64
	last    atomic.Int64 // unix nanoseconds of the last PutRecords

	mu   sync.Mutex
	seen []uint64 // bitset of row ids received
	dups int64
	bad  int64
	resp map[int][]byte
}

func newFakeKinesis(name string, rows int64) *fakeKinesis {
	return &fakeKinesis{name: name, rows: rows, seen: make([]uint64, rows/64+1), resp: map[int][]byte{}}
}

func (f *fakeKinesis) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body bytes.Buffer
	if _, err := body.ReadFrom(r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch r.Header.Get("X-Amz-Target") {
	case "Kinesis_20131202.DescribeStreamSummary":
		fmt.Fprintf(w, `{"StreamDescriptionSummary":{"StreamName":%q,"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/%s",`+
			`"StreamStatus":"ACTIVE","OpenShardCount":4,"EncryptionType":"NONE","RetentionPeriodHours":24,`+
			`"StreamCreationTimestamp":1700000000,"EnhancedMonitoring":[],"ConsumerCount":0}}`, f.name, f.name)
	case "Kinesis_20131202.PutRecords":
		var in struct {
			Records []struct {
				Data []byte // base64 in the request, decoded by encoding/json
			}
		}
		if err := json.Unmarshal(body.Bytes(), &in); err != nil {
			http.Error(w, `{"__type":"SerializationException"}`, http.StatusBadRequest)
			return
		}
		n := 0
		for _, rec := range in.Records {
			n += len(rec.Data)
			f.check(rec.Data)
		}
		f.records.Add(int64(len(in.Records)))
		f.bytes.Add(int64(n))
		f.calls.Add(1)
		f.last.Store(time.Now().UnixNano())
		_, _ = w.Write(f.response(len(in.Records)))
	default:
		http.Error(w, `{"__type":"UnknownOperationException"}`, http.StatusBadRequest)
	}
}

var idField = []byte(`"after":{"id":`)

// check marks the row id of one record.
func (f *fakeKinesis) check(data []byte) {
	i := bytes.Index(data, idField)
	if i < 0 {
		f.mu.Lock()
		f.bad++
		f.mu.Unlock()
		return
	}
	rest := data[i+len(idField):]
	end := bytes.IndexByte(rest, ',')
	id, err := strconv.ParseInt(string(rest[:max(end, 0)]), 10, 64)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil || id < 1 || id > f.rows {
		f.bad++
		return
	}
	word, bit := (id-1)/64, uint64(1)<<((id-1)%64)
	if f.seen[word]&bit != 0 {
		f.dups++
	}
	f.seen[word] |= bit
}

// missing counts row ids never received, and reports duplicates and records
// that were not one of the rows.
func (f *fakeKinesis) missing() (missing, dups, bad int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := int64(0); id < f.rows; id++ {
		if f.seen[id/64]&(1<<(id%64)) == 0 {
			missing++
		}
	}
	return missing, f.dups, f.bad
}

func (f *fakeKinesis) response(n int) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.resp[n]; ok {
		return b
	}
	var sb strings.Builder
	sb.WriteString(`{"FailedRecordCount":0,"Records":[`)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"SequenceNumber":"4960%020d","ShardId":"shardId-%012d"}`, i, i%4)
	}
	sb.WriteString(`]}`)
	f.resp[n] = []byte(sb.String())
	return f.resp[n]
}
