package sink

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcd-dev/cdcd/test/promtest"
)

// TestMetricsDelete: deleting a stream removes every one of its series,
// those by error code included, and no other stream's.
func TestMetricsDelete(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gone", "kept"} {
		s := m.Stream(name)
		s.callStarted()
		s.callDone(time.Millisecond, 2)
		s.failed("ProvisionedThroughputExceededException", 1)
		s.retried("ProvisionedThroughputExceededException")
		s.published(1, 10)
		s.queued(0, 0)
	}
	promtest.Forgets(t, reg, len(m.vecs()), "gone", "kept", m.Delete)
}
