package atrest

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count data keys and cluster key checks of every stream,
// registered on the Registerer the daemon passes in. A nil *Metrics counts
// nothing.
type Metrics struct {
	dataKeys *prometheus.CounterVec
	checks   *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg; a nil reg
// leaves them unregistered (tests, tools).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		dataKeys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_atrest_data_keys_generated_total",
			Help: "Data keys generated under the cluster key, by stream.",
		}, []string{"stream"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_cluster_key_checks_total",
			Help: "Cluster key checks and failures on use, by stream and result (ok, transient, inaccessible).",
		}, []string{"stream", "result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.dataKeys, m.checks} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register at-rest metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) dataKey(stream string) {
	if m != nil {
		m.dataKeys.WithLabelValues(stream).Inc()
	}
}

func (m *Metrics) check(stream string, c Class) {
	if m != nil {
		m.checks.WithLabelValues(stream, c.String()).Inc()
	}
}
