package sink

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the sink's Prometheus metrics for one stream (docs/metrics.md), every
// one labelled stream=<name>. A nil *Metrics records nothing.
type Metrics struct {
	publishedRecords prometheus.Counter
	publishedBytes   prometheus.Counter
	callSeconds      prometheus.Histogram
	callRecords      prometheus.Histogram
	failedRecords    *prometheus.CounterVec
	retries          *prometheus.CounterVec
	inFlight         prometheus.Gauge
	queuedRecords    prometheus.Gauge
	queuedBytes      prometheus.Gauge
}

// NewMetrics registers the sink's metrics for stream on reg. Several streams
// may share one registry; registering the same stream twice fails.
func NewMetrics(reg prometheus.Registerer, stream string) (*Metrics, error) {
	labels := prometheus.Labels{"stream": stream}
	m := &Metrics{
		publishedRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cdcd_published_records_total", ConstLabels: labels,
			Help: "Records accepted by Kinesis (DSQL PublishedRecords).",
		}),
		publishedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cdcd_published_bytes_total", ConstLabels: labels,
			Help: "Bytes of data and partition key accepted by Kinesis (DSQL PublishedBytes).",
		}),
		callSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cdcd_put_records_duration_seconds", ConstLabels: labels,
			Help:    "Latency of PutRecords calls, failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14), // 2ms to ~16s
		}),
		callRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cdcd_put_records_records_per_call", ConstLabels: labels,
			Help:    "Records sent per PutRecords call.",
			Buckets: []float64{1, 5, 10, 25, 50, 100, 200, 300, 400, 500},
		}),
		failedRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_put_records_failed_records_total", ConstLabels: labels,
			Help: "Records left unaccepted by an attempt, by AWS error code (throttles are ProvisionedThroughputExceededException).",
		}, []string{"code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_put_records_retries_total", ConstLabels: labels,
			Help: "Retries of a batch's failed records after backoff, by the error code that caused them.",
		}, []string{"code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdcd_put_records_in_flight", ConstLabels: labels,
			Help: "PutRecords calls in progress.",
		}),
		queuedRecords: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdcd_sink_queued_records", ConstLabels: labels,
			Help: "Records submitted and not yet accepted by Kinesis.",
		}),
		queuedBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdcd_sink_queued_bytes", ConstLabels: labels,
			Help: "Bytes submitted and not yet accepted by Kinesis; bounded by queue_bytes.",
		}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{
		m.publishedRecords, m.publishedBytes, m.callSeconds, m.callRecords,
		m.failedRecords, m.retries, m.inFlight, m.queuedRecords, m.queuedBytes,
	} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) published(records, bytes int) {
	if m == nil {
		return
	}
	m.publishedRecords.Add(float64(records))
	m.publishedBytes.Add(float64(bytes))
}

func (m *Metrics) callStarted() {
	if m != nil {
		m.inFlight.Inc()
	}
}

func (m *Metrics) callDone(d time.Duration, records int) {
	if m == nil {
		return
	}
	m.inFlight.Dec()
	m.callSeconds.Observe(d.Seconds())
	m.callRecords.Observe(float64(records))
}

func (m *Metrics) failed(code string, records int) {
	if m != nil {
		m.failedRecords.WithLabelValues(code).Add(float64(records))
	}
}

func (m *Metrics) retried(code string) {
	if m != nil {
		m.retries.WithLabelValues(code).Inc()
	}
}

func (m *Metrics) queued(records, bytes int) {
	if m == nil {
		return
	}
	m.queuedRecords.Set(float64(records))
	m.queuedBytes.Set(float64(bytes))
}
