// Package middleware adapts a billing.Meter to net/http.
//
// Today it holds one piece: SetRateLimitHeaders, which writes the rate-limit response headers of
// billing.Meter.Allow decisions — RateLimit-Policy and RateLimit in the syntax of the IETF draft
// (draft-ietf-httpapi-ratelimit-headers-10), the widespread X-RateLimit-Limit, X-RateLimit-Remaining
// and X-RateLimit-Reset, and Retry-After on refusal. A handler can use it now:
//
//	d, err := m.Allow(r.Context(), tenant, "requests", 1)
//	if err != nil { ... }
//	middleware.SetRateLimitHeaders(w.Header(), d)
//	if !d.Allowed {
//		w.WriteHeader(http.StatusTooManyRequests)
//		return
//	}
//
// The HTTP middleware that identifies the tenant, rate limits, reserves quota and meters each
// request, and the wrapper for OpenAI-compatible chat endpoints that meters tokens, are not built
// yet.
package middleware
