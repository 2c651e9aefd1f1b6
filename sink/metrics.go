package sink

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the sink's Prometheus metrics of every stream (docs/metrics.md):
// vectors labelled by stream, registered once per registry. Stream hands
// one stream its series; Delete removes them when the stream is deleted.
type Metrics struct {
	publishedRecords *prometheus.CounterVec
	publishedBytes   *prometheus.CounterVec
	callSeconds      *prometheus.HistogramVec
	callRecords      *prometheus.HistogramVec
	failedRecords    *prometheus.CounterVec
	retries          *prometheus.CounterVec
	inFlight         *prometheus.GaugeVec
	queuedRecords    *prometheus.GaugeVec
	queuedBytes      *prometheus.GaugeVec
	queuedTxns       *prometheus.GaugeVec
}

// StreamMetrics are one stream's sink metrics: the series of Metrics whose
// stream label is that stream's name. A nil *StreamMetrics records nothing.
type StreamMetrics struct {
	publishedRecords prometheus.Counter
	publishedBytes   prometheus.Counter
	callSeconds      prometheus.Observer
	callRecords      prometheus.Observer
	failedRecords    *prometheus.CounterVec // by code
	retries          *prometheus.CounterVec // by code
	inFlight         prometheus.Gauge
	queuedRecords    prometheus.Gauge
	queuedBytes      prometheus.Gauge
	queuedTxns       prometheus.Gauge
}

// NewMetrics creates the sink's metrics and registers them on reg. Every
// stream shares them, so registering them twice on one registry fails.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	stream := []string{"stream"}
	m := &Metrics{
		publishedRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_published_records_total",
			Help: "Records accepted by Kinesis (DSQL PublishedRecords).",
		}, stream),
		publishedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_published_bytes_total",
			Help: "Bytes of data and partition key accepted by Kinesis (DSQL PublishedBytes).",
		}, stream),
		callSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cdcd_put_records_duration_seconds",
			Help:    "Latency of PutRecords calls, failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14), // 2ms to ~16s
		}, stream),
		callRecords: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cdcd_put_records_records_per_call",
			Help:    "Records sent per PutRecords call.",
			Buckets: []float64{1, 5, 10, 25, 50, 100, 200, 300, 400, 500},
		}, stream),
		failedRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_put_records_failed_records_total",
			Help: "Records left unaccepted by an attempt, by AWS error code (throttles are ProvisionedThroughputExceededException).",
		}, []string{"stream", "code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdcd_put_records_retries_total",
			Help: "Retries of a batch's failed records after backoff, by the error code that caused them.",
		}, []string{"stream", "code"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_put_records_in_flight",
			Help: "PutRecords calls in progress.",
		}, stream),
		queuedRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_sink_queued_records",
			Help: "Records submitted and not yet accepted by Kinesis.",
		}, stream),
		queuedBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_sink_queued_bytes",
			Help: "Bytes submitted and not yet accepted by Kinesis; bounded by queue_bytes.",
		}, stream),
		queuedTxns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_sink_queued_transactions",
			Help: "Transactions submitted and not yet delivered; a run of transactions without records counts once.",
		}, stream),
	}
	var errs []error
	for _, v := range m.vecs() {
		errs = append(errs, reg.Register(v))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// vecs are every vector of m, for registering and deleting alike.
func (m *Metrics) vecs() []*prometheus.MetricVec {
	return []*prometheus.MetricVec{m.publishedRecords.MetricVec, m.publishedBytes.MetricVec, m.callSeconds.MetricVec,
		m.callRecords.MetricVec, m.failedRecords.MetricVec, m.retries.MetricVec, m.inFlight.MetricVec,
		m.queuedRecords.MetricVec, m.queuedBytes.MetricVec, m.queuedTxns.MetricVec}
}

// Stream returns stream's series. Those without a code exist from here on,
// at zero until they count something, so that rate() over them starts when
// the stream does.
func (m *Metrics) Stream(stream string) *StreamMetrics {
	return &StreamMetrics{
		publishedRecords: m.publishedRecords.WithLabelValues(stream),
		publishedBytes:   m.publishedBytes.WithLabelValues(stream),
		callSeconds:      m.callSeconds.WithLabelValues(stream),
		callRecords:      m.callRecords.WithLabelValues(stream),
		failedRecords:    m.failedRecords.MustCurryWith(prometheus.Labels{"stream": stream}),
		retries:          m.retries.MustCurryWith(prometheus.Labels{"stream": stream}),
		inFlight:         m.inFlight.WithLabelValues(stream),
		queuedRecords:    m.queuedRecords.WithLabelValues(stream),
		queuedBytes:      m.queuedBytes.WithLabelValues(stream),
		queuedTxns:       m.queuedTxns.WithLabelValues(stream),
	}
}

// Delete removes every series of stream, so that a deleted stream is no
// longer scraped. It belongs after the stream's Sink has stopped: a failed
// call after it would bring the failed-records and retries series back.
func (m *Metrics) Delete(stream string) {
	for _, v := range m.vecs() {
		v.DeletePartialMatch(prometheus.Labels{"stream": stream})
	}
}

func (m *StreamMetrics) published(records, bytes int) {
	if m == nil {
		return
	}
	m.publishedRecords.Add(float64(records))
	m.publishedBytes.Add(float64(bytes))
}

func (m *StreamMetrics) callStarted() {
	if m != nil {
		m.inFlight.Inc()
	}
}

func (m *StreamMetrics) callDone(d time.Duration, records int) {
	if m == nil {
		return
	}
	m.inFlight.Dec()
	m.callSeconds.Observe(d.Seconds())
	m.callRecords.Observe(float64(records))
}

func (m *StreamMetrics) failed(code string, records int) {
	if m != nil {
		m.failedRecords.WithLabelValues(code).Add(float64(records))
	}
}

func (m *StreamMetrics) retried(code string) {
	if m != nil {
		m.retries.WithLabelValues(code).Inc()
	}
}

func (m *StreamMetrics) queued(records, bytes int) {
	if m == nil {
		return
	}
	m.queuedRecords.Set(float64(records))
	m.queuedBytes.Set(float64(bytes))
}

func (m *StreamMetrics) tracked(txns int) {
	if m != nil {
		m.queuedTxns.Set(float64(txns))
	}
}
