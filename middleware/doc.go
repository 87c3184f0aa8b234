// Package middleware adapts a billing.Meter to net/http: a middleware that identifies the tenant
// of every request, rate limits it, holds it to its quotas and meters it; a wrapper for
// OpenAI-compatible chat completion endpoints that does the same for tokens; and the response
// headers and problem bodies that tell clients where they stand.
//
// # The HTTP middleware
//
//	keys := middleware.NewKeyStore()                 // keeps SHA-256 digests, never keys
//	keys.Add(apiKey, "acme")
//	api = middleware.HTTP(m, middleware.Options{Tenant: middleware.FromAPIKey(keys)})(api)
//
// For each request HTTP finds the tenant (FromAPIKey, FromHeader, FromContext, or any
// TenantSource), or answers 401; calls Meter.Allow and answers 429 when the rate limit refuses;
// calls Meter.Reserve and answers 429 (or 402) when a hard quota refuses; calls the handler with
// the tenant in the request's context (billing.TenantFrom); and commits the reservation if the
// status is counted (2xx and 3xx by default) or cancels it. The resource and the quantity per
// request are options ("requests" and 1 by default).
//
// Every response of a rate-limited resource carries RateLimit and RateLimit-Policy (IETF
// draft-ietf-httpapi-ratelimit-headers) and X-RateLimit-* headers (SetRateLimitHeaders);
// refusals carry Retry-After; a tenant past a soft quota gets X-Billing-Quota-Warning.
//
// # Errors
//
// Every error is answered by one function, ProblemFor, with an RFC 9457 application/problem+json
// body: a type URI under https://meterplane.dev/problems/ (quota-exceeded, rate-limited,
// invalid-api-key, unknown-model, ...), title, status, detail, and extension members such as
// tenant, resource, limit, used, reset and retry_after. The body also carries an OpenAI-style
// "error" member, so OpenAI SDKs show the detail. Handlers can answer their own errors the same
// way with WriteError.
//
// # Chat completions
//
//	upstream, _ := middleware.ChatProxy("https://api.openai.com", os.Getenv("OPENAI_API_KEY"))
//	chat := middleware.Chat(m, middleware.ChatOptions{Upstream: upstream, Prices: prices, Currency: "USD"})
//	http.Handle("POST /v1/chat/completions", middleware.HTTP(m, opts)(chat))
//
// Chat reads the model and the completion limit of each request, reserves the estimated prompt
// tokens and the completion budget against the tenant's token quotas (tokens.input,
// tokens.output), lowers the request's max_tokens to what a hard quota has left (refusing with
// 429 before the upstream is called when nothing is left), forwards it, and commits the
// upstream's usage.prompt_tokens and usage.completion_tokens with the "model" attribute.
// Streamed responses pass through chunk by chunk as they arrive; the wrapper asks the upstream
// for the final usage chunk, and a client that leaves mid-stream is charged for the chunks that
// were produced. Per-model prices give each response its cost in the X-Billing-Cost header (a
// trailer for streams).
//
// # Durability
//
// By default usage is committed behind the response: when the handler returns, the response
// completes at once and the commit runs in a goroutine, so no request waits for a disk sync (a
// few hundred microseconds to milliseconds). The window in which a crash can lose a response's
// usage is therefore from the moment the handler returns until the Meter's writer has made the
// event durable: one group commit, normally under a few milliseconds (longer only when the
// writer is backlogged). Options.WaitDurable (ChatOptions.WaitDurable) closes the window: the
// response then ends only after its usage is recorded. For a graceful shutdown, set
// Options.Pending and wait on it after http.Server.Shutdown and before Meter.Close.
package middleware
