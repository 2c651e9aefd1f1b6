package capture

import (
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// walStatuses are the values of pg_replication_slots.wal_status, plus
// "missing" for a slot that does not exist. cdcd_slot_wal_status has one
// series per value so that an alert can match the bad ones.
var walStatuses = []string{"reserved", "extended", "unreserved", "lost", "missing"}

// Metrics are one stream's capture metrics, labelled by stream.
type Metrics struct {
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
	walStatus    *prometheus.GaugeVec
	healthErrors prometheus.Counter

	snapshotRows     prometheus.Counter
	snapshotProgress prometheus.Gauge
}

// NewMetrics registers the capture metrics for stream on reg. Several
// streams may share one registry; registering the same stream twice fails.
func NewMetrics(reg prometheus.Registerer, stream string) (*Metrics, error) {
	m := newMetrics(stream)
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register capture metrics: %w", err)
		}
	}
	return m, nil
}

func newMetrics(stream string) *Metrics {
	labels := prometheus.Labels{"stream": stream}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
	}
	m := &Metrics{
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
			Name: "cdcd_slot_wal_status", ConstLabels: labels,
			Help: "1 for the slot's wal_status (reserved, extended, unreserved, lost; missing when the slot does not exist), 0 for the others.",
		}, []string{"status"}),
		healthErrors:     counter("cdcd_slot_health_errors_total", "Slot health checks that could not read pg_replication_slots."),
		snapshotRows:     counter("cdcd_capture_snapshot_rows_total", "Rows read by the initial snapshot and handed on."),
		snapshotProgress: gauge("cdcd_capture_snapshot_progress_ratio", "Initial snapshot progress from 0 to 1, estimated from pg_class.reltuples."),
	}
	return m
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.transactions, m.changes, m.messages, m.aborts, m.spilled, m.reconnects, m.openBytes,
		m.retainedWAL, m.safeWAL, m.confirmedLag, m.walStatus, m.healthErrors, m.snapshotRows, m.snapshotProgress}
}

// setHealth exports one health reading.
func (m *Metrics) setHealth(h SlotHealth) {
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
