package bridges_test

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func gather(c prometheus.Collector) ([]*dto.MetricFamily, error) {
	r := prometheus.NewPedanticRegistry()
	if err := r.Register(c); err != nil {
		return nil, err
	}
	return r.Gather()
}
