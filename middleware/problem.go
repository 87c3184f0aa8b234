package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meterplane/billing"
)

// Problem type URIs (RFC 9457 "type" members). Every error response of this package carries
// exactly one of them; clients branch on the type, people read the detail.
const (
	ProblemBase               = "https://meterplane.dev/problems/"
	ProblemTenantRequired     = ProblemBase + "tenant-required"      // 401
	ProblemInvalidAPIKey      = ProblemBase + "invalid-api-key"      // 401
	ProblemRateLimited        = ProblemBase + "rate-limited"         // 429
	ProblemExceedsBurst       = ProblemBase + "exceeds-burst"        // 429, no Retry-After
	ProblemQuotaExceeded      = ProblemBase + "quota-exceeded"       // 429, or 402 by option
	ProblemInvalidJSON        = ProblemBase + "invalid-json"         // 400
	ProblemBodyTooLarge       = ProblemBase + "body-too-large"       // 400
	ProblemUnknownModel       = ProblemBase + "unknown-model"        // 400
	ProblemInvalidParameter   = ProblemBase + "invalid-parameter"    // 400
	ProblemMethodNotAllowed   = ProblemBase + "method-not-allowed"   // 405
	ProblemUpstreamError      = ProblemBase + "upstream-unavailable" // 502
	ProblemServiceUnavailable = ProblemBase + "unavailable"          // 503
	ProblemInternal           = ProblemBase + "internal"             // 500
	ProblemNotFound           = ProblemBase + "not-found"            // 404
	ProblemForbidden          = ProblemBase + "forbidden"            // 403
	ProblemConflict           = ProblemBase + "conflict"             // 409
)

// ProblemContentType is the media type of problem bodies (RFC 9457).
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem details object: the body of every error response this package
// writes. Type, Title, Status and Detail are the standard members; the others are extension
// members, present when they apply. A plain value; safe to copy and to share.
type Problem struct {
	// Type is one of the Problem* URIs.
	Type string `json:"type"`
	// Title is a short summary of the type; the same for every problem of the type.
	Title string `json:"title"`
	// Status is the HTTP status code of the response.
	Status int `json:"status"`
	// Detail explains this occurrence: what was wrong and what to do.
	Detail string `json:"detail,omitempty"`
	// Instance identifies the occurrence; the request path when written for a request.
	Instance string `json:"instance,omitempty"`

	// Tenant is the tenant refused (quota problems).
	Tenant string `json:"tenant,omitempty"`
	// Resource is the metered resource that refused, such as "requests" or "tokens.output".
	Resource string `json:"resource,omitempty"`
	// Period is the quota rule's period (hour, day, month, total).
	Period string `json:"period,omitempty"`
	// Limit is the quota rule's limit, or the rate policy's units per window.
	Limit *int64 `json:"limit,omitempty"`
	// Used is the quota rule's usage in its current period.
	Used *int64 `json:"used,omitempty"`
	// Reserved is the quota rule's units held by requests in flight.
	Reserved *int64 `json:"reserved,omitempty"`
	// Requested is how many units the request asked for.
	Requested *int64 `json:"requested,omitempty"`
	// Remaining is how many units of a rate limit could be taken right now.
	Remaining *int64 `json:"remaining,omitempty"`
	// Reset is when the quota's period ends and usage starts again from zero.
	Reset *time.Time `json:"reset,omitempty"`
	// RetryAfter is how many seconds to wait before retrying; the Retry-After header says the same.
	RetryAfter *int64 `json:"retry_after,omitempty"`
	// Param names the request parameter at fault (bad requests).
	Param string `json:"param,omitempty"`

	// Error repeats the problem in the shape OpenAI-compatible clients read
	// ({"error": {"message", "type", "param", "code"}}), so their SDKs show the detail.
	Error *CompatError `json:"error,omitempty"`
}

// CompatError is the "error" member of a Problem, in the shape of OpenAI's error bodies.
type CompatError struct {
	// Message is the problem's Detail.
	Message string `json:"message"`
	// Type and Code are the last part of the problem's type URI with underscores, such as
	// "quota_exceeded".
	Type string `json:"type"`
	// Param is the problem's Param, or null.
	Param *string `json:"param"`
	// Code is the same as Type.
	Code string `json:"code"`
}

// ProblemFor returns the problem an error is answered with; quota refusals get 429. It is the
// package's single mapping from errors to HTTP statuses and problem bodies: the middleware, the
// Chat wrapper and WriteError all use it. Unknown errors map to a 500 whose detail does not
// reveal the error. Safe for concurrent use; it never panics.
func ProblemFor(err error) Problem { return problemFor(err, http.StatusTooManyRequests, time.Now()) }

// WriteError answers a request with the problem of err (see ProblemFor): status, headers
// (Content-Type application/problem+json, Retry-After when a wait helps, WWW-Authenticate on
// 401) and the JSON body. Handlers below the middleware can use it for their own errors.
func WriteError(w http.ResponseWriter, err error) {
	writeProblem(w, nil, problemFor(err, http.StatusTooManyRequests, time.Now()))
}

// problemFor chooses the status and body of every error this package answers. quotaStatus is the
// status of quota refusals (429, or 402 by option); now dates Retry-After.
func problemFor(err error, quotaStatus int, now time.Time) Problem {
	var (
		qe *billing.QuotaExceededError
		rl *billing.RateLimitedError
		re *RequestError
		fe *billing.FieldError
	)
	switch {
	case err == nil:
		return newProblem(ProblemInternal, "Internal error", http.StatusInternalServerError,
			"the server failed without an error; please report it")
	case errors.As(err, &qe):
		p := newProblem(ProblemQuotaExceeded, "Quota exceeded", quotaStatus, quotaDetail(qe))
		p.Tenant, p.Resource, p.Period = qe.Rule.Tenant, qe.Rule.Resource, string(qe.Rule.Period)
		p.Limit, p.Used, p.Reserved, p.Requested = ptr(qe.Limit), ptr(qe.Used), ptr(qe.Reserved), ptr(qe.Requested)
		if !qe.ResetAt.IsZero() {
			reset := qe.ResetAt.UTC()
			p.Reset = &reset
			p.RetryAfter = ptr(max(ceilSeconds(qe.ResetAt.Sub(now)), 1))
		}
		return p
	case errors.As(err, &rl):
		d := rl.Decision
		pol := d.Policy
		p := newProblem(ProblemRateLimited, "Rate limit exceeded", http.StatusTooManyRequests,
			fmt.Sprintf("%q allows %d per %v (bursts of %d); retry after %v", pol.Resource, pol.Limit, pol.Window,
				pol.EffectiveBurst(), d.RetryAfter.Round(time.Millisecond)))
		p.Resource, p.Limit, p.Remaining = pol.Resource, ptr(d.Limit), ptr(max(d.Remaining, 0))
		if d.RetryAfter > 0 {
			p.RetryAfter = ptr(ceilSeconds(d.RetryAfter))
		}
		return p
	case errors.Is(err, billing.ErrExceedsBurst):
		return newProblem(ProblemExceedsBurst, "Request exceeds the rate limit's burst", http.StatusTooManyRequests,
			strings.TrimPrefix(err.Error(), "billing: ")+"; waiting does not help")
	case errors.Is(err, ErrInvalidAPIKey):
		return newProblem(ProblemInvalidAPIKey, "Invalid API key", http.StatusUnauthorized,
			"the API key is not valid; send a key you were issued as \"Authorization: Bearer <key>\"")
	case errors.Is(err, ErrNoTenant):
		return newProblem(ProblemTenantRequired, "Tenant required", http.StatusUnauthorized, stripPrefix(err))
	case errors.Is(err, ErrForbidden):
		return newProblem(ProblemForbidden, "Forbidden", http.StatusForbidden, stripPrefix(err))
	case errors.Is(err, ErrConflict), errors.Is(err, billing.ErrPeriodClosed):
		return newProblem(ProblemConflict, "Conflict", http.StatusConflict, stripPrefix(err))
	case errors.Is(err, billing.ErrNotFound):
		return newProblem(ProblemNotFound, "Not found", http.StatusNotFound,
			strings.TrimPrefix(stripPrefix(err), "billing: "))
	case errors.As(err, &fe) && (errors.Is(err, billing.ErrInvalidQuery) || errors.Is(err, billing.ErrInvalidConfig)):
		p := newProblem(ProblemInvalidParameter, "Invalid parameter", http.StatusBadRequest, fe.Field+": "+fe.Rule)
		p.Param = fe.Field
		return p
	case errors.As(err, &re):
		p := requestProblem(re)
		p.Param = re.Param
		return p
	case errors.Is(err, ErrUpstream):
		return newProblem(ProblemUpstreamError, "Upstream unavailable", http.StatusBadGateway,
			"the model endpoint could not be reached or did not answer; retry later")
	case errors.Is(err, billing.ErrClosed), errors.Is(err, billing.ErrBackpressure),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		p := newProblem(ProblemServiceUnavailable, "Service unavailable", http.StatusServiceUnavailable,
			"usage metering is busy or shutting down; retry shortly")
		p.RetryAfter = ptr(int64(1))
		return p
	default:
		return newProblem(ProblemInternal, "Internal error", http.StatusInternalServerError,
			"the server could not meter this request; the error was logged")
	}
}

// requestProblem maps a *RequestError's Kind to its problem.
func requestProblem(re *RequestError) Problem {
	switch re.Kind {
	case ErrMalformedJSON:
		return newProblem(ProblemInvalidJSON, "Malformed JSON", http.StatusBadRequest, re.Detail)
	case ErrBodyTooLarge:
		return newProblem(ProblemBodyTooLarge, "Request body too large", http.StatusBadRequest, re.Detail)
	case ErrUnknownModel:
		return newProblem(ProblemUnknownModel, "Unknown model", http.StatusBadRequest, re.Detail)
	case ErrMethodNotAllowed:
		return newProblem(ProblemMethodNotAllowed, "Method not allowed", http.StatusMethodNotAllowed, re.Detail)
	default:
		detail := re.Detail
		if re.Param != "" {
			detail = re.Param + ": " + detail
		}
		return newProblem(ProblemInvalidParameter, "Invalid parameter", http.StatusBadRequest, detail)
	}
}

func newProblem(typ, title string, status int, detail string) Problem {
	return Problem{Type: typ, Title: title, Status: status, Detail: detail}
}

func quotaDetail(qe *billing.QuotaExceededError) string {
	per := "in total"
	if qe.Rule.Period != billing.PeriodTotal {
		per = "per " + string(qe.Rule.Period)
	}
	msg := fmt.Sprintf("the hard quota of %d %s %s is reached: %d used, %d reserved by requests in flight, %d requested",
		qe.Limit, qe.Rule.Resource, per, qe.Used, qe.Reserved, qe.Requested)
	if !qe.ResetAt.IsZero() {
		msg += "; it resets at " + qe.ResetAt.UTC().Format(time.RFC3339)
	}
	return msg
}

// stripPrefix returns err's message without this package's "middleware: " prefix.
func stripPrefix(err error) string { return strings.TrimPrefix(err.Error(), "middleware: ") }

func ptr(v int64) *int64 { return &v }

// writeProblem writes p as the response. r, when not nil, names the instance.
func writeProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	if r != nil && p.Instance == "" {
		p.Instance = r.URL.Path
	}
	slug := strings.ReplaceAll(strings.TrimPrefix(p.Type, ProblemBase), "-", "_")
	p.Error = &CompatError{Message: p.Detail, Type: slug, Code: slug}
	if p.Param != "" {
		p.Error.Param = &p.Param
	}
	body, err := json.Marshal(p)
	if err != nil { // cannot happen: every member is a plain value
		body = []byte(`{"type":"` + ProblemInternal + `","title":"Internal error","status":500}`)
		p.Status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Encoding")
	if p.RetryAfter != nil {
		h.Set("Retry-After", strconv.FormatInt(*p.RetryAfter, 10))
	}
	if p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="api"`)
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}
