package bridgeconfig

import "github.com/lexigram/events/bridges"

// Status is one bridge's health, as /healthz shows it.
type Status struct {
	Name      string `json:"name"`
	Direction string `json:"direction"`
	Broker    string `json:"broker"`
	// Connected is whether the broker answers: the adapter's own view of
	// its connection, or, for adapters without one, whether the last
	// attempt to move a message succeeded.
	Connected bool `json:"connected"`
}

// Status lists every bridge's health, in configuration order.
func (s *Set) Status() []Status {
	out := make([]Status, len(s.running))
	for i, r := range s.running {
		out[i] = Status{Name: r.cfg.Name, Direction: r.cfg.Direction, Broker: r.cfg.Broker, Connected: r.connected()}
	}
	return out
}

// Counts lists what every bridge has done since it started
// (bridges.Counts), in configuration order, as Status does.
func (s *Set) Counts() []bridges.Counts {
	out := make([]bridges.Counts, len(s.running))
	for i, r := range s.running {
		if r.out != nil {
			out[i] = r.out.Counts()
		} else {
			out[i] = r.in.Counts()
		}
	}
	return out
}

// Healthy reports whether every bridge's broker answers.
func (s *Set) Healthy() bool {
	for _, r := range s.running {
		if !r.connected() {
			return false
		}
	}
	return true
}

func (r *running) connected() bool {
	if r.out != nil {
		return r.out.Connected()
	}
	return r.in.Connected()
}
