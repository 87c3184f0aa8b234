package metrics_test

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/metrics"
)

// prometheusRegistry registers a labeled collector per Meter (meter="a", "b", ...) in one
// registry and returns its handler.
func prometheusRegistry(t *testing.T, ms []*billing.Meter) http.Handler {
	t.Helper()
	reg := prometheus.NewRegistry()
	for i, m := range ms {
		if err := reg.Register(metrics.NewLabeledCollector(m, prometheus.Labels{"meter": string(rune('a' + i))})); err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
