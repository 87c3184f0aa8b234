package admin

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/middleware"
)

// Options configures Handler. The zero value serves nobody (no token is accepted): set Tokens,
// Authenticator or both.
type Options struct {
	// Tokens maps bearer tokens to principals: "admin", "viewer" or "tenant:<id>", optionally
	// named for the audit log as "admin=alice" (see ParsePrincipal). Tokens must be at least 16
	// characters; Handler keeps only their SHA-256 digests and compares them in constant time.
	Tokens map[string]string
	// Authenticator identifies callers whose bearer token is not in Tokens, for hosts with
	// their own auth (sessions, SSO headers). An error answers 401, or 403 when it matches
	// middleware.ErrForbidden. Nil: only Tokens are accepted.
	Authenticator func(r *http.Request) (Principal, error)
	// Now is the clock of default time ranges (the dashboard's "today"). Defaults to the
	// Meter's Now.
	Now func() time.Time
	// Prefix is the path the handler is mounted at, such as "/admin", for hosts that mount it
	// without http.StripPrefix: http.Handle("/admin/", admin.Handler(m, admin.Options{Prefix:
	// "/admin", ...})). Requests outside it answer 404. Empty: the handler sees paths relative
	// to its root (mounted at "/" or behind http.StripPrefix).
	Prefix string
	// Logger receives internal errors (answered as 500s without detail). Defaults to
	// slog.Default().
	Logger *slog.Logger
}

// MaxBody is the largest request body the API reads: 1 MiB. Larger ones are refused with 400.
const MaxBody = 1 << 20

// errNotFound is billing.ErrNotFound, which middleware.ProblemFor answers with 404.
var errNotFound = billing.ErrNotFound

// handler is the admin API and dashboard of one Meter.
type handler struct {
	m      *billing.Meter
	opts   Options
	tokens tokenSet
	mux    *http.ServeMux
	serve  http.Handler // mux, behind the Prefix
}

// Handler returns the admin API and dashboard of m. It panics only on invalid Options.Tokens
// (short tokens, unknown principals), which is a programming error; use NewHandler to get the
// error instead. The handler is safe for concurrent use.
func Handler(m *billing.Meter, opts Options) http.Handler {
	h, err := NewHandler(m, opts)
	if err != nil {
		panic(err)
	}
	return h
}

// NewHandler is Handler returning an error for invalid Options.
func NewHandler(m *billing.Meter, opts Options) (http.Handler, error) {
	tokens, err := newTokenSet(opts.Tokens)
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = m.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &handler{m: m, opts: opts, tokens: tokens, mux: http.NewServeMux()}
	for _, rt := range h.routes() {
		h.mux.Handle(rt.Method+" "+rt.Path, h.wrap(rt))
	}
	h.mux.Handle("GET /{$}", http.HandlerFunc(serveDashboard))
	h.mux.Handle("GET /v1/openapi.json", http.HandlerFunc(h.serveOpenAPI))
	h.mux.Handle("/", http.HandlerFunc(h.noRoute))
	h.serve = h.mux
	if p := strings.TrimSuffix(opts.Prefix, "/"); p != "" {
		h.serve = http.StripPrefix(p, h.mux)
	}
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.serve.ServeHTTP(w, r) }

// noRoute answers a request no route matches: 405 with Allow when the path exists for other
// methods, 404 otherwise; both as problems.
func (h *handler) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := h.mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		middleware.WriteError(w, &middleware.RequestError{Kind: middleware.ErrMethodNotAllowed,
			Detail: fmt.Sprintf("%s does not serve %s; it serves %s", r.URL.Path, r.Method, strings.Join(allow, ", "))})
		return
	}
	middleware.WriteError(w, fmt.Errorf("%w: no route %s %s; see GET v1/openapi.json", errNotFound, r.Method, r.URL.Path))
}

// call is one authorized request to a route.
type call struct {
	w http.ResponseWriter
	r *http.Request
	p Principal
}

func (c *call) ctx() context.Context { return c.r.Context() }

// route is one endpoint of the API: its pattern, who may call it, its handler and its
// documentation (see openapi.go).
type route struct {
	Method, Path string
	Access       access
	// Summary documents the operation; Query names its query parameters; Body names the JSON
	// request body's schema, if any; Audit is the action recorded for a change.
	Summary string
	Query   []string
	Body    string
	Fn      func(h *handler, c *call) error
}

// wrap authenticates and authorizes a request, then runs the route.
func (h *handler) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		p, err := h.authenticate(r)
		if err == nil {
			err = authorize(p, rt.Access, r.PathValue("tenant"))
		}
		if err == nil {
			err = checkQuery(r, rt.Query)
		}
		if err == nil {
			err = rt.Fn(h, &call{w: w, r: r, p: p})
		}
		if err != nil {
			if pr := middleware.ProblemFor(err); pr.Status >= 500 {
				h.opts.Logger.Error("admin: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			middleware.WriteError(w, err)
		}
	})
}
