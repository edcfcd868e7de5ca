package sagas

import "github.com/prometheus/client_golang/prometheus"

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
