// Package middleware will adapt a billing.Meter to net/http: an HTTP middleware that identifies
// the tenant, rate limits, reserves quota and meters each request, and a wrapper for
// OpenAI-compatible chat endpoints that meters tokens. It is not built yet and exports nothing.
package middleware
