package capture

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// walStatuses are the values of pg_replication_slots.wal_status, plus
// "missing" for a slot that does not exist. cdcd_slot_wal_status has one
// series per value so that an alert can match the bad ones.
var walStatuses = []string{"reserved", "extended", "unreserved", "lost", "missing"}

// Metrics are the capture metrics of every stream (docs/metrics.md): vectors
// labelled by stream, registered once per registry. Stream hands one
// stream its series; Delete removes them when the stream is deleted.
type Metrics struct {
	transactions *prometheus.CounterVec
	changes      *prometheus.CounterVec
	messages     *prometheus.CounterVec
	aborts       *prometheus.CounterVec
	spilled      *prometheus.CounterVec
	reconnects   *prometheus.CounterVec
	openBytes    *prometheus.GaugeVec

	retainedWAL  *prometheus.GaugeVec
	safeWAL      *prometheus.GaugeVec
	confirmedLag *prometheus.GaugeVec
	walStatus    *prometheus.GaugeVec
	healthErrors *prometheus.CounterVec

	snapshotRows     *prometheus.CounterVec
	snapshotProgress *prometheus.GaugeVec
}

// StreamMetrics are one stream's capture metrics: the series of Metrics
// whose stream label is that stream's name.
type StreamMetrics struct {
	transactions prometheus.Counter
	changes      prometheus.Counter
	messages     prometheus.Counter
	aborts       prometheus.Counter
	spilled      prometheus.Counter
	reconnects   prometheus.Counter
	openBytes    prometheus.Gauge

	retainedWAL  prometheus.Gauge
	safeWAL      prometheus.Gauge
	confirmedLag prometheus.Gauge
	walStatus    *prometheus.GaugeVec // by status
	healthErrors prometheus.Counter

	snapshotRows     prometheus.Counter
	snapshotProgress prometheus.Gauge
}

// NewMetrics creates the capture metrics and registers them on reg. Every
// stream shares them, so registering them twice on one registry fails.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := newMetrics()
	var errs []error
	for _, c := range m.vecs() {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register capture metrics: %w", err)
	}
	return m, nil
}

func newMetrics() *Metrics {
	stream := []string{"stream"}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, stream)
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, stream)
	}
	return &Metrics{
		transactions: counter("cdcd_capture_transactions_total", "Committed transactions read from the slot and handed on."),
		changes:      counter("cdcd_capture_changes_total", "Row changes (inserts, updates, deletes, truncated tables) in committed transactions."),
		messages:     counter("cdcd_capture_logical_messages_total", "Logical decoding messages (pg_logical_emit_message) received; they carry no rows."),
		aborts:       counter("cdcd_capture_streamed_aborts_total", "Transactions streamed in progress that aborted and were discarded."),
		spilled:      counter("cdcd_capture_spilled_transactions_total", "Committed transactions whose changes passed the memory budget and were spilled to disk."),
		reconnects:   counter("cdcd_capture_reconnects_total", "Replication sessions that ended with an error and were reopened."),
		openBytes:    gauge("cdcd_capture_open_transaction_bytes", "Tuple bytes held in memory for transactions not yet committed."),
		retainedWAL:  gauge("cdcd_slot_retained_wal_bytes", "WAL the slot keeps on the server: pg_current_wal_lsn() - restart_lsn."),
		safeWAL: gauge("cdcd_slot_safe_wal_bytes",
			"WAL that can still be written before the slot is lost (safe_wal_size); +Inf when max_slot_wal_keep_size is unlimited."),
		confirmedLag: gauge("cdcd_slot_confirmed_lag_bytes", "WAL written since the slot's confirmed_flush_lsn."),
		walStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdcd_slot_wal_status",
			Help: "1 for the slot's wal_status (reserved, extended, unreserved, lost; missing when the slot does not exist), 0 for the others.",
		}, []string{"stream", "status"}),
		healthErrors:     counter("cdcd_slot_health_errors_total", "Slot health checks that could not read pg_replication_slots."),
		snapshotRows:     counter("cdcd_capture_snapshot_rows_total", "Rows read by the initial snapshot and handed on."),
		snapshotProgress: gauge("cdcd_capture_snapshot_progress_ratio", "Initial snapshot progress from 0 to 1, estimated from pg_class.reltuples."),
	}
}

// vecs are every vector of m, for registering and deleting alike.
func (m *Metrics) vecs() []*prometheus.MetricVec {
	return []*prometheus.MetricVec{m.transactions.MetricVec, m.changes.MetricVec, m.messages.MetricVec, m.aborts.MetricVec,
		m.spilled.MetricVec, m.reconnects.MetricVec, m.openBytes.MetricVec, m.retainedWAL.MetricVec, m.safeWAL.MetricVec,
		m.confirmedLag.MetricVec, m.walStatus.MetricVec, m.healthErrors.MetricVec, m.snapshotRows.MetricVec, m.snapshotProgress.MetricVec}
}

// Stream returns stream's series. Those without another label exist from
// here on, at zero until they count something, so that rate() over them
// starts when the stream does.
func (m *Metrics) Stream(stream string) *StreamMetrics {
	return &StreamMetrics{
		transactions:     m.transactions.WithLabelValues(stream),
		changes:          m.changes.WithLabelValues(stream),
		messages:         m.messages.WithLabelValues(stream),
		aborts:           m.aborts.WithLabelValues(stream),
		spilled:          m.spilled.WithLabelValues(stream),
		reconnects:       m.reconnects.WithLabelValues(stream),
		openBytes:        m.openBytes.WithLabelValues(stream),
		retainedWAL:      m.retainedWAL.WithLabelValues(stream),
		safeWAL:          m.safeWAL.WithLabelValues(stream),
		confirmedLag:     m.confirmedLag.WithLabelValues(stream),
		walStatus:        m.walStatus.MustCurryWith(prometheus.Labels{"stream": stream}),
		healthErrors:     m.healthErrors.WithLabelValues(stream),
		snapshotRows:     m.snapshotRows.WithLabelValues(stream),
		snapshotProgress: m.snapshotProgress.WithLabelValues(stream),
	}
}

// Delete removes every series of stream, so that a deleted stream is no
// longer scraped. It belongs after the stream's Source has stopped: a
// health check after it would bring cdcd_slot_wal_status back.
func (m *Metrics) Delete(stream string) {
	for _, v := range m.vecs() {
		v.DeletePartialMatch(prometheus.Labels{"stream": stream})
	}
}

// unregistered are the metrics of a Source given none: counted, never
// scraped.
func unregistered() *StreamMetrics { return newMetrics().Stream("") }

// setHealth exports one health reading.
func (m *StreamMetrics) setHealth(h SlotHealth) {
	status := h.WALStatus
	if !h.Exists {
		status = "missing"
	}
	for _, s := range walStatuses {
		v := 0.0
		if s == status {
			v = 1
		}
		m.walStatus.WithLabelValues(s).Set(v)
	}
	if !slices.Contains(walStatuses, status) {
		// A status a later PostgreSQL adds still shows.
		m.walStatus.WithLabelValues(status).Set(1)
	}
	if !h.Exists {
		return
	}
	m.retainedWAL.Set(float64(h.RetainedWALBytes))
	m.confirmedLag.Set(float64(h.ConfirmedLagBytes))
	if h.SafeWALBytes < 0 {
		m.safeWAL.Set(math.Inf(1))
	} else {
		m.safeWAL.Set(float64(h.SafeWALBytes))
	}
}
