package middleware_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/middleware"
)

func ExampleSetRateLimitHeaders() {
	policy := billing.RatePolicy{Resource: "requests", Limit: 100, Window: time.Minute}
	d := billing.Decision{Allowed: false, Limit: 100, Remaining: 0, RetryAfter: 400 * time.Millisecond,
		ResetAfter: time.Minute, Policy: policy} // as returned by Meter.Allow

	h := http.Header{}
	middleware.SetRateLimitHeaders(h, d)
	for _, k := range []string{"RateLimit-Policy", "RateLimit", "X-RateLimit-Limit", "X-RateLimit-Remaining",
		"X-RateLimit-Reset", "Retry-After"} {
		fmt.Printf("%s: %s\n", k, h.Get(k))
	}
	// Output:
	// RateLimit-Policy: "requests";q=100;w=60
	// RateLimit: "requests";r=0;t=1
	// X-RateLimit-Limit: 100
	// X-RateLimit-Remaining: 0
	// X-RateLimit-Reset: 1
	// Retry-After: 1
}
