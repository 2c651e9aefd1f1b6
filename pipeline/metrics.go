package pipeline

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcd-dev/cdcd/capture"
	"github.com/cdcd-dev/cdcd/sink"
)

// metrics are the per-stream metrics of every stream (docs/metrics.md):
// capture's, the sink's and the pipeline's own, vectors labelled by stream
// and registered once when the daemon starts. The state package keeps the
// lifecycle metrics itself.
type metrics struct {
	capture   *capture.Metrics
	sink      *sink.Metrics
	lag       *prometheus.GaugeVec
	truncates *prometheus.CounterVec
	pending   *prometheus.GaugeVec
}

// streamMetrics are one stream's series of metrics.
type streamMetrics struct {
	capture *capture.StreamMetrics
	sink    *sink.StreamMetrics
	pipe    *pipelineMetrics
}

// pipelineMetrics are the per-stream metrics that belong to neither capture
// nor sink.
type pipelineMetrics struct {
	lag       prometheus.Gauge
	truncates prometheus.Counter
	pending   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	cm, err := capture.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	sm, err := sink.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	m := &metrics{
		capture: cm, sink: sm,
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_behind_source_lag_seconds",
			Help: "Age of the oldest committed change not yet accepted by Kinesis (DSQL BehindSourceLag).",
		}, []string{"stream"}),
		truncates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_truncates_skipped_total",
			Help: "TRUNCATEs not emitted because the stream does not opt in to truncate records.",
		}, []string{"stream"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_unpersisted_transactions",
			Help: "Transactions submitted whose position is not yet in the checkpoint; a run of transactions without records counts once.",
		}, []string{"stream"}),
	}
	if err := errors.Join(reg.Register(m.lag), reg.Register(m.truncates), reg.Register(m.pending)); err != nil {
		return nil, fmt.Errorf("register stream metrics: %w", err)
	}
	return m, nil
}

// stream returns the series of the stream named name. A stream started
// again gets the same series, so its counters continue.
func (m *metrics) stream(name string) *streamMetrics {
	return &streamMetrics{
		capture: m.capture.Stream(name),
		sink:    m.sink.Stream(name),
		pipe: &pipelineMetrics{lag: m.lag.WithLabelValues(name), truncates: m.truncates.WithLabelValues(name),
			pending: m.pending.WithLabelValues(name)},
	}
}

// forget removes every series of the stream named name once it is deleted
// and its pipeline has returned, so that nothing writes them again.
func (m *metrics) forget(name string) {
	m.capture.Delete(name)
	m.sink.Delete(name)
	m.lag.DeleteLabelValues(name)
	m.truncates.DeleteLabelValues(name)
	m.pending.DeleteLabelValues(name)
}
