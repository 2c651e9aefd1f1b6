package soak

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cdcd-dev/cdcd/test/faultproxy"
)

// kinesisFront stands in front of the fault proxy and counts each Kinesis
// stream's PutRecords calls, faulted or not: a fault of Kinesis can only
// show on a stream that called it while the fault lasted. Another fault
// can hold a stream back from calling: a transaction stuck on a full spill
// directory, say.
type kinesisFront struct {
	proxy  *faultproxy.Proxy
	server *httptest.Server

	mu   sync.Mutex
	puts map[string]int // by Kinesis stream name
}

func newKinesisFront(t *testing.T, proxy *faultproxy.Proxy) *kinesisFront {
	f := &kinesisFront{proxy: proxy, puts: map[string]int{}}
	f.server = httptest.NewServer(f)
	t.Cleanup(func() {
		f.server.CloseClientConnections()
		f.server.Close()
		proxy.Close()
	})
	return f
}

func (f *kinesisFront) URL() string { return f.server.URL }

func (f *kinesisFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if faultproxy.Operation(r) == "PutRecords" {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return // the client went away
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.puts[streamNameOf(body)]++
		f.mu.Unlock()
	}
	f.proxy.ServeHTTP(w, r)
}

// streamNameOf reads StreamName from a PutRecords request body without
// decoding the records: their data is base64, which holds no quote, so the
// member's text occurs once.
func streamNameOf(body []byte) string {
	const member = `"StreamName":"`
	i := bytes.Index(body, []byte(member))
	if i < 0 {
		return ""
	}
	name, _, _ := strings.Cut(string(body[i+len(member):]), `"`)
	return name
}

// activity is how many calls each stream (by name) has made so far to the
// service a fault of kind k breaks, or nil when k shows without any.
func (s *soak) activity(k kind) map[string]int {
	out := map[string]int{}
	switch k {
	case outage, accessDenied, throttling, keyDenied:
		s.front.mu.Lock()
		defer s.front.mu.Unlock()
		for _, st := range s.streams {
			out[st.name] = s.front.puts[st.kinesis]
		}
	case roleDenied:
		// A role's credentials are asked for only when a Kinesis call
		// needs them; the session tag cdcd:stream ends in the stream id.
		for _, req := range s.sts.Requests() {
			for _, st := range s.streams {
				for _, tag := range req.Tags {
					if req.Action == "AssumeRole" && tag.Key == "cdcd:stream" && strings.HasSuffix(tag.Value, st.id) {
						out[st.name]++
					}
				}
			}
		}
	default:
		return nil
	}
	return out
}
