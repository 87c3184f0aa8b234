package middleware

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/meterplane/billing"
)

// noop is the handler both benchmarks serve: the per-request overhead of the middleware is the
// difference between their ns/op.
var noop = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

// benchRequest is one request, reused: the recorder and request cost the same in both benchmarks.
func benchServe(b *testing.B, h http.Handler) {
	r := httptest.NewRequest("GET", "/v1/things", nil)
	r.Header.Set("X-Tenant", "acme")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// BenchmarkBareHandler is the baseline: the no-op handler alone.
func BenchmarkBareHandler(b *testing.B) { benchServe(b, noop) }

// BenchmarkMiddleware serves the same handler through HTTP with a durable SQLite Meter (the
// default mode): tenant from a header, a rate limit, a hard quota reservation, the soft-limit
// header check, and a commit behind the response. At most Options.MaxPending commits run behind
// responses, so over b.N requests the figure includes writing every request's event to SQLite:
// it is the sustained cost per request, bounded below by the Meter's writer.
func BenchmarkMiddleware(b *testing.B) {
	m := newMeter(b, billing.Config{RatePolicies: []billing.RatePolicy{
		{Resource: "requests", Limit: 1_000_000_000, Window: time.Hour}}})
	setQuota(b, m, "acme", "requests", 1_000_000_000_000, true)
	wg := &sync.WaitGroup{}
	h := HTTP(m, Options{Tenant: FromHeader("X-Tenant"), Pending: wg})(noop)
	benchServe(b, h)
	wg.Wait()
}

// BenchmarkMiddlewareAsync is BenchmarkMiddleware with the Meter in Async mode.
func BenchmarkMiddlewareAsync(b *testing.B) {
	m := newMeter(b, billing.Config{Async: true, RatePolicies: []billing.RatePolicy{
		{Resource: "requests", Limit: 1_000_000_000, Window: time.Hour}}})
	setQuota(b, m, "acme", "requests", 1_000_000_000_000, true)
	wg := &sync.WaitGroup{}
	h := HTTP(m, Options{Tenant: FromHeader("X-Tenant"), Pending: wg})(noop)
	benchServe(b, h)
	wg.Wait()
}

// BenchmarkMiddlewareResponsePath is the part of BenchmarkMiddleware a response waits for: the
// same steps, but the handler's status is not counted, so the reservation is cancelled in line
// and nothing is committed or written.
func BenchmarkMiddlewareResponsePath(b *testing.B) {
	m := newMeter(b, billing.Config{RatePolicies: []billing.RatePolicy{
		{Resource: "requests", Limit: 1_000_000_000, Window: time.Hour}}})
	setQuota(b, m, "acme", "requests", 1_000_000_000_000, true)
	h := HTTP(m, Options{Tenant: FromHeader("X-Tenant"), Counted: func(int) bool { return false }})(noop)
	benchServe(b, h)
}
