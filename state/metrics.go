package state

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the lifecycle metrics of every stream (docs/metrics.md), registered
// on the Registerer the daemon passes in.
type Metrics struct {
	transitions *prometheus.CounterVec
	impaired    *prometheus.GaugeVec
	status      *prometheus.GaugeVec
}

// NewMetrics creates the lifecycle metrics and registers them on reg; a nil
// reg leaves them unregistered (tests, tools).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_stream_transitions_total",
			Help: "Stream status changes, by stream and from/to status.",
		}, []string{"stream", "from", "to"}),
		impaired: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_stream_impaired",
			Help: "1 while the stream is IMPAIRED, else 0 (DSQL IsImpaired).",
		}, []string{"stream"}),
		// status exists because IsImpaired cannot tell ACTIVE from FAILED,
		// and FAILED is the state an operator must act on.
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_stream_status",
			Help: "1 for the stream's current status, 0 for the others.",
		}, []string{"stream", "status"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.transitions, m.impaired, m.status} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register stream metrics: %w", err)
		}
	}
	return m, nil
}

// set publishes a stream's current status.
func (m *Metrics) set(stream string, s Status) {
	v := 0.0
	if s == Impaired {
		v = 1
	}
	m.impaired.WithLabelValues(stream).Set(v)
	for _, st := range Statuses() {
		v := 0.0
		if st == s {
			v = 1
		}
		m.status.WithLabelValues(stream, string(st)).Set(v)
	}
}

func (m *Metrics) transition(stream string, from, to Status) {
	m.transitions.WithLabelValues(stream, string(from), string(to)).Inc()
	m.set(stream, to)
}

// forget drops every series of a deleted stream, so that /metrics never
// reports a stream that no longer exists and a cluster with many short-lived
// streams does not grow its series without bound.
func (m *Metrics) forget(stream string) {
	m.impaired.DeleteLabelValues(stream)
	m.status.DeletePartialMatch(prometheus.Labels{"stream": stream})
	m.transitions.DeletePartialMatch(prometheus.Labels{"stream": stream})
}
