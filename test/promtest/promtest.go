// Package promtest reads what a Prometheus registry would be scraped for,
// so that tests can say which series of a stream exist without parsing the
// text format.
package promtest

import (
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Series counts, by metric family, the series gathered from g that are
// labelled stream=<stream>: what a scrape shows of that stream.
func Series(t testing.TB, g prometheus.Gatherer, stream string) map[string]int {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stream" && l.GetValue() == stream {
					out[f.GetName()]++
				}
			}
		}
	}
	return out
}

// Forgets checks that forget(gone) removes every series of stream gone,
// which must first have series in as many families as families, and
// leaves those of stream kept as they were.
func Forgets(t testing.TB, g prometheus.Gatherer, families int, gone, kept string, forget func(stream string)) {
	t.Helper()
	before, keptBefore := Series(t, g, gone), Series(t, g, kept)
	if len(before) != families {
		t.Fatalf("stream %s has series in %d families, want %d: %v", gone, len(before), families, before)
	}
	forget(gone)
	if left := Series(t, g, gone); len(left) != 0 {
		t.Errorf("series of the forgotten stream %s remain: %v", gone, left)
	}
	if now := Series(t, g, kept); !maps.Equal(now, keptBefore) {
		t.Errorf("series of stream %s changed: %v, want %v", kept, now, keptBefore)
	}
}
