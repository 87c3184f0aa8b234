package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meterplane/billing"
)

// Handler returns an http.Handler that serves m's metrics in the Prometheus exposition formats,
// from a registry of its own holding only NewCollector(m) (no Go runtime or process metrics: a
// host that wants those, or one registry for everything, registers NewCollector(m) in its own
// registry instead). Mount it where the scraper looks:
//
//	http.Handle("/metrics", metrics.Handler(m))
//
// Safe for concurrent requests; a scrape costs a few atomic loads.
func Handler(m *billing.Meter) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(m))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
