package capture

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cdcd-dev/cdcd/test/promtest"
)

// metricValue reads a counter or gauge without prometheus/testutil, whose
// dependencies the module does not carry.
func metricValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return math.NaN()
}

func TestMetricsRegisterOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("registering the metrics twice on one registry must fail")
	}
	m.Stream("a")
	m.Stream("b")
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, f := range fams {
		names[f.GetName()] = len(f.GetMetric())
	}
	for _, want := range []string{"cdcd_capture_transactions_total", "cdcd_capture_changes_total",
		"cdcd_capture_logical_messages_total", "cdcd_capture_reconnects_total", "cdcd_slot_retained_wal_bytes",
		"cdcd_slot_safe_wal_bytes"} {
		if names[want] != 2 {
			t.Errorf("metric %s has %d series, want one per stream", want, names[want])
		}
	}
}

// TestMetricsDelete: deleting a stream removes every one of its series,
// cdcd_slot_wal_status's included, and no other stream's.
func TestMetricsDelete(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gone", "kept"} {
		s := m.Stream(name)
		s.setHealth(SlotHealth{Exists: true, WALStatus: "reserved", SafeWALBytes: 1, RetainedWALBytes: 1})
		s.transactions.Inc()
	}
	promtest.Forgets(t, reg, len(m.vecs()), "gone", "kept", m.Delete)
}

func TestMetricsSetHealth(t *testing.T) {
	cases := []struct {
		name     string
		h        SlotHealth
		status   string
		safe     float64
		retained float64
	}{
		{"reserved", SlotHealth{Exists: true, WALStatus: "reserved", SafeWALBytes: 100, RetainedWALBytes: 7}, "reserved", 100, 7},
		{"unlimited", SlotHealth{Exists: true, WALStatus: "extended", SafeWALBytes: -1, RetainedWALBytes: 9}, "extended", math.Inf(1), 9},
		{"lost", SlotHealth{Exists: true, WALStatus: "lost", SafeWALBytes: 0, RetainedWALBytes: 1}, "lost", 0, 1},
		{"missing", SlotHealth{}, "missing", 0, 0},
		{"unknown status", SlotHealth{Exists: true, WALStatus: "future", SafeWALBytes: 1}, "future", 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newMetrics().Stream("s")
			m.setHealth(tc.h)
			for _, s := range append(walStatuses, tc.status) {
				want := 0.0
				if s == tc.status {
					want = 1
				}
				if got := metricValue(m.walStatus.WithLabelValues(s)); got != want {
					t.Errorf("wal_status{status=%q} = %v, want %v", s, got, want)
				}
			}
			if got := metricValue(m.safeWAL); got != tc.safe {
				t.Errorf("safe WAL = %v, want %v", got, tc.safe)
			}
			if got := metricValue(m.retainedWAL); got != tc.retained {
				t.Errorf("retained WAL = %v, want %v", got, tc.retained)
			}
		})
	}
}
