package handlers_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// sampleCount gathers c through a registry, as /metrics would, and returns
// the sample count of the histogram series of name with exactly the labels
// given. testutil compares whole expositions, and a latency histogram's
// buckets differ from run to run, so the count is read here.
func sampleCount(t *testing.T, c prometheus.Collector, name string, labels map[string]string) uint64 {
	t.Helper()
	r := prometheus.NewPedanticRegistry()
	must(t, r.Register(c))
	families, err := r.Gather()
	must(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) || m.GetHistogram() == nil {
				continue
			}
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; !ok || v != l.GetValue() {
					continue series
				}
			}
			return m.GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no histogram series %s%v", name, labels)
	return 0
}
