package sagas

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// WaitResumed waits until m's Run has sent every unfinished instance
// its resume message.
func WaitResumed(t *testing.T, m *Manager) {
	t.Helper()
	select {
	case <-m.resumed:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not resume the unfinished instances within 20s")
	}
}

// KeepTimersOnCancel makes m leave the timer of a wait that ended in
// place, so that it fires stale, as it does when a cancel loses the race
// with the fire.
func KeepTimersOnCancel(m *Manager) { m.keepTimers = true }

func (m *Metrics) InstancesCounter(sagaType, outcome string) prometheus.Counter {
	return m.instances.WithLabelValues(sagaType, outcome)
}

func (m *Metrics) EventsCounter(sagaType, outcome string) prometheus.Counter {
	return m.events.WithLabelValues(sagaType, outcome)
}

func (m *Metrics) StaleFiresCounter(sagaType string) prometheus.Counter {
	return m.stale.WithLabelValues(sagaType)
}

// StartLease is the lease owner of an instance as Start creates it.
const StartLease = startLease
