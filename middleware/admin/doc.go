// Package admin serves the admin JSON API and the dashboard page of a billing.Meter: support and
// finance staff see and change each tenant's usage, quotas, rate limits, plans and invoices, and
// a tenant's own credentials see that tenant alone.
//
//	tokens := map[string]string{os.Getenv("ADMIN_TOKEN"): "admin", os.Getenv("SUPPORT_TOKEN"): "viewer"}
//	http.Handle("/admin/", http.StripPrefix("/admin", admin.Handler(m, admin.Options{Tokens: tokens})))
//
// The handler routes relative to its root, so it mounts under any prefix with http.StripPrefix.
// GET / is the dashboard; everything else is under /v1 (GET /v1/openapi.json describes it).
//
// Callers send "Authorization: Bearer <token>". Tokens map to principals: "admin" (everything),
// "viewer" (read everything) and "tenant:<id>" (read that tenant's summary, usage and invoices;
// any other tenant answers 404, so its existence does not leak). Tokens are kept as SHA-256
// digests and compared in constant time. Every change is written to the Meter's audit log with
// the principal, the time and the record before and after (GET /v1/audit).
//
// Errors are RFC 9457 problem+json, chosen by middleware.ProblemFor. Request bodies are limited
// to 1 MiB, and unknown JSON fields and query parameters are refused with their name.
//
// The dashboard is one HTML page with inline script and SVG charts, embedded in the binary: no
// CDN, no build step. It asks for a token and keeps it in the tab's sessionStorage; a link may
// carry it in the URL fragment (/admin/#token=...), which browsers never send to the server.
package admin
