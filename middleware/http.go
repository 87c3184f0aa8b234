package middleware

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/meterplane/billing"
)

// Options configures HTTP. The zero value works: every field documents its default.
type Options struct {
	// Tenant identifies the tenant of each request: FromHeader, FromAPIKey, FromContext or a func
	// of your own. A request with no tenant, or an unknown API key, is answered with 401 before
	// anything is counted. Defaults to FromContext(), for a service that authenticates callers in
	// an earlier middleware and calls billing.WithTenant.
	Tenant TenantSource

	// Resource is what each request is metered as. Defaults to "requests".
	Resource string

	// Quantity returns how many units of Resource a request uses, such as 1 per request or the
	// body size in bytes. Defaults to 1 for every request. A quantity below 1 lets the request
	// through identified (the tenant is in its context) but neither rate limited nor metered:
	// useful for health checks and listings.
	Quantity func(r *http.Request) int64

	// Counted says whether a response status is usage: the request's reservation is committed
	// (and recorded) when it returns true, and cancelled otherwise. Defaults to 2xx and 3xx.
	Counted func(status int) bool

	// QuotaExceededStatus is the status of a quota refusal: http.StatusTooManyRequests (429, the
	// default) or http.StatusPaymentRequired (402) for a service that sells more quota.
	QuotaExceededStatus int

	// WaitDurable makes the response wait until its usage is recorded (durable when the Meter
	// is; Config.Async). Defaults to false: usage is committed behind the response, in a
	// goroutine started when the handler returns, so no request waits for a disk sync; see
	// Pending for a graceful shutdown.
	WaitDurable bool

	// Pending, when set, counts the commits running behind responses: after
	// http.Server.Shutdown returns, call Pending.Wait() before Meter.Close, and none is lost.
	// (A commit is counted when its handler returns, which can be after the client has read the
	// whole response: wait once no handler is running, not after a client's last read.)
	// Defaults to nil (not counted).
	Pending *sync.WaitGroup

	// MaxPending bounds the commits running behind responses; beyond it a request commits in line
	// (it waits), so a Meter that cannot keep up slows requests down instead of piling up
	// goroutines. Defaults to DefaultMaxPending (4096).
	MaxPending int

	// SoftLimitCheck is how long the soft-quota state of a tenant, which sets the
	// X-Billing-Quota-Warning header, is reused before it is read again from Meter.QuotaStatus.
	// Defaults to DefaultSoftLimitCheck (1s); a negative value disables the header.
	SoftLimitCheck time.Duration

	// OnError receives errors no response can report: a commit that failed after retries, and
	// the internal errors behind 5xx answers. Defaults to logging them with slog.Default().
	OnError func(error)
}

// HTTP returns middleware that meters every request of the handler it wraps, for the Meter m:
//
//  1. identify the tenant (Options.Tenant), or answer 401; the tenant is put in the request's
//     context (billing.TenantFrom);
//  2. rate limit: m.Allow(tenant, Resource, Quantity) under the tenant's rate policy; a refusal is
//     429 with Retry-After. The RateLimit, RateLimit-Policy and X-RateLimit-* headers are set on
//     every response of a rate-limited resource;
//  3. reserve quota: m.Reserve(tenant, Resource, Quantity); a hard-quota refusal is 429 (or 402)
//     with the quota-exceeded problem; a soft quota that is exceeded adds the
//     X-Billing-Quota-Warning header;
//  4. call the handler;
//  5. commit the reservation when the status is counted (Options.Counted), cancel it otherwise.
//     A handler that panics has its reservation cancelled, and the panic goes on up; except that
//     a response aborted with http.ErrAbortHandler after a counted status (a stream whose client
//     left, through httputil.ReverseProxy) is committed before the panic goes on.
//
// Errors are answered with RFC 9457 problem bodies (see ProblemFor). HTTP panics at setup on
// options that can never work (an invalid Resource, a QuotaExceededStatus that is not 4xx); it
// never panics on a request. The returned middleware is safe for concurrent use.
func HTTP(m *billing.Meter, opts Options) func(http.Handler) http.Handler {
	if m == nil {
		panic("middleware.HTTP: the Meter is nil")
	}
	if opts.Tenant == nil {
		opts.Tenant = FromContext()
	}
	if opts.Resource == "" {
		opts.Resource = "requests"
	}
	if err := (billing.Event{Tenant: "t", Resource: opts.Resource, Quantity: 1}).Validate(); err != nil {
		panic(fmt.Sprintf("middleware.HTTP: Options.Resource %q: %v", opts.Resource, err))
	}
	if opts.Counted == nil {
		opts.Counted = func(status int) bool { return status >= 200 && status < 400 }
	}
	if opts.QuotaExceededStatus == 0 {
		opts.QuotaExceededStatus = http.StatusTooManyRequests
	}
	if opts.QuotaExceededStatus < 400 || opts.QuotaExceededStatus > 499 {
		panic(fmt.Sprintf("middleware.HTTP: Options.QuotaExceededStatus must be a 4xx status such as 429 or 402 (got %d)",
			opts.QuotaExceededStatus))
	}
	if opts.SoftLimitCheck == 0 {
		opts.SoftLimitCheck = DefaultSoftLimitCheck
	}
	commits := newCommitter(opts.WaitDurable, opts.Pending, opts.MaxPending, opts.OnError)
	var soft *softWarnings
	if opts.SoftLimitCheck > 0 {
		soft = &softWarnings{m: m, every: opts.SoftLimitCheck}
	}
	return func(next http.Handler) http.Handler {
		return &metered{m: m, opts: opts, next: next, commits: commits, soft: soft}
	}
}

// metered is the handler HTTP returns.
type metered struct {
	m       *billing.Meter
	opts    Options
	next    http.Handler
	commits *committer
	soft    *softWarnings
}

// ServeHTTP implements http.Handler: one request, metered (see HTTP).
func (h *metered) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tenant, err := h.opts.Tenant(r)
	if err == nil {
		err = checkTenant(tenant)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := billing.WithTenant(r.Context(), tenant)
	r = r.WithContext(ctx)
	var n int64 = 1
	if h.opts.Quantity != nil {
		n = h.opts.Quantity(r)
	}
	if n < 1 {
		h.next.ServeHTTP(w, r)
		return
	}

	d, err := h.m.Allow(ctx, tenant, h.opts.Resource, n)
	SetRateLimitHeaders(w.Header(), d)
	if err == nil {
		err = d.Err()
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.m.Reserve(ctx, tenant, h.opts.Resource, n)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if h.soft != nil {
		if v := h.soft.header(ctx, tenant); v != "" {
			w.Header().Set(HeaderQuotaWarning, v)
		}
	}

	sw := &statusWriter{ResponseWriter: w}
	finished := false
	defer func() {
		if finished {
			return
		}
		// The handler panicked. A response aborted with http.ErrAbortHandler after a counted
		// status (a stream whose client left) was usage; anything else releases the units. The
		// panic goes on up either way.
		v := recover()
		if v == nil { // runtime.Goexit, not a panic: let it go on
			_ = res.Cancel(context.WithoutCancel(ctx))
			return
		}
		if v == http.ErrAbortHandler && sw.status != 0 && h.opts.Counted(sw.status) {
			h.commits.run(ctx, func(ctx context.Context) error { return res.Commit(ctx, n) })
		} else {
			_ = res.Cancel(context.WithoutCancel(ctx))
		}
		panic(v)
	}()
	h.next.ServeHTTP(sw, r)
	finished = true

	if !h.opts.Counted(sw.code()) {
		_ = res.Cancel(ctx)
		return
	}
	h.commits.run(ctx, func(ctx context.Context) error { return res.Commit(ctx, n) })
}

// fail answers a refused or failed request with its problem, and reports server-side failures.
func (h *metered) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(err, h.opts.QuotaExceededStatus, time.Now())
	if p.Status >= 500 {
		h.commits.onError(fmt.Errorf("billing middleware: %s %s: %w", r.Method, r.URL.Path, err))
	}
	writeProblem(w, r, p)
}
