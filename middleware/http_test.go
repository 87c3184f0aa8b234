package middleware

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterplane/billing"
)

func TestHTTPMetersRequestsAndSetsTenant(t *testing.T) {
	m := newMeter(t, billing.Config{})
	opts, wg := pendingOpts(Options{Tenant: FromHeader("X-Tenant")})
	var seen []string
	var mu sync.Mutex
	h := HTTP(m, opts)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, _ := billing.TenantFrom(r.Context())
		mu.Lock()
		seen = append(seen, tenant)
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	for range 3 {
		if w := serve(h, "GET", "/x", "", map[string]string{"X-Tenant": "acme"}); w.Code != http.StatusCreated {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	wg.Wait()
	if got := total(t, m, "acme", "requests"); got != 3 {
		t.Errorf("requests tracked = %d, want 3", got)
	}
	if len(seen) != 3 || seen[0] != "acme" {
		t.Errorf("tenants seen by the handler = %q, want acme three times", seen)
	}
}

func TestHTTPOptionsResourceAndQuantity(t *testing.T) {
	m := newMeter(t, billing.Config{})
	opts, wg := pendingOpts(Options{
		Tenant:   FromHeader("X-Tenant"),
		Resource: "bytes.in",
		Quantity: func(r *http.Request) int64 {
			if r.URL.Path == "/healthz" {
				return 0 // identified, not metered
			}
			return r.ContentLength
		},
	})
	var tenantOnHealth string
	h := HTTP(m, opts)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			tenantOnHealth, _ = billing.TenantFrom(r.Context())
		}
	}))
	serve(h, "POST", "/upload", strings.Repeat("x", 1234), map[string]string{"X-Tenant": "acme"})
	serve(h, "GET", "/healthz", "", map[string]string{"X-Tenant": "acme"})
	wg.Wait()
	if got := total(t, m, "acme", "bytes.in"); got != 1234 {
		t.Errorf("bytes.in tracked = %d, want 1234", got)
	}
	if tenantOnHealth != "acme" {
		t.Errorf("unmetered request's tenant = %q, want acme", tenantOnHealth)
	}
}

func TestHTTPUnauthorized(t *testing.T) {
	m := newMeter(t, billing.Config{})
	keys := NewKeyStore()
	if err := keys.Add("sk-test-0123456789abcdef", "acme"); err != nil {
		t.Fatal(err)
	}
	called := false
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true })
	byKey := HTTP(m, Options{Tenant: FromAPIKey(keys), WaitDurable: true})(next)
	byHeader := HTTP(m, Options{Tenant: FromHeader("X-Tenant"), WaitDurable: true})(next)
	byContext := HTTP(m, Options{WaitDurable: true})(next)
	for _, c := range []struct {
		name    string
		h       http.Handler
		header  map[string]string
		typ     string
		inError string
	}{
		{"no key", byKey, nil, ProblemTenantRequired, "Authorization: Bearer"},
		{"unknown key", byKey, map[string]string{"Authorization": "Bearer sk-nope-0123456789abcdef"}, ProblemInvalidAPIKey, "not valid"},
		{"no header", byHeader, nil, ProblemTenantRequired, "X-Tenant header is missing"},
		{"tenant too long", byHeader, map[string]string{"X-Tenant": strings.Repeat("a", 200)}, ProblemTenantRequired, "longer than 128"},
		{"no context tenant", byContext, nil, ProblemTenantRequired, "no tenant in the request context"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := serve(c.h, "GET", "/x", "", c.header)
			p := decodeProblem(t, w.Code, w.Header(), w.Body.Bytes(), http.StatusUnauthorized, c.typ)
			if !strings.Contains(p.Detail, c.inError) {
				t.Errorf("detail %q does not say %q", p.Detail, c.inError)
			}
			if w.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if called {
		t.Error("the handler was called for an unauthorized request")
	}
	// A valid key, as "Authorization: Bearer" or "X-API-Key".
	for _, hdr := range []map[string]string{{"Authorization": "Bearer sk-test-0123456789abcdef"},
		{"X-API-Key": "sk-test-0123456789abcdef"}} {
		if w := serve(byKey, "GET", "/x", "", hdr); w.Code != http.StatusOK {
			t.Errorf("valid key %v: status %d: %s", hdr, w.Code, w.Body)
		}
	}
	if got := total(t, m, "acme", "requests"); got != 2 {
		t.Errorf("requests tracked = %d, want 2 (the authorized ones)", got)
	}
}

func TestHTTPRateLimited(t *testing.T) {
	m := newMeter(t, billing.Config{RatePolicies: []billing.RatePolicy{
		{Resource: "requests", Limit: 2, Window: time.Minute}}})
	h := HTTP(m, Options{Tenant: FromHeader("X-Tenant"), WaitDurable: true})(okHandler)
	for i := range 2 {
		w := serve(h, "GET", "/x", "", map[string]string{"X-Tenant": "acme"})
		if w.Code != http.StatusOK {
			t.Fatalf("request %d: status %d", i, w.Code)
		}
		if w.Header().Get("RateLimit") == "" || w.Header().Get("RateLimit-Policy") != `"requests";q=2;w=60` {
			t.Errorf("request %d: RateLimit headers %v", i, w.Header())
		}
	}
	w := serve(h, "GET", "/x", "", map[string]string{"X-Tenant": "acme"})
	p := decodeProblem(t, w.Code, w.Header(), w.Body.Bytes(), http.StatusTooManyRequests, ProblemRateLimited)
	if ra := w.Header().Get("Retry-After"); ra != "30" || p.RetryAfter == nil || *p.RetryAfter != 30 {
		t.Errorf("Retry-After = %q, problem retry_after %v; want 30 (one unit per 30s)", ra, p.RetryAfter)
	}
	if p.Resource != "requests" || p.Limit == nil || *p.Limit != 2 {
		t.Errorf("problem = %+v", p)
	}
	if got := total(t, m, "acme", "requests"); got != 2 {
		t.Errorf("requests tracked = %d, want 2", got)
	}
}

// TestHTTPHardLimitUnderConcurrency sends 200 concurrent requests through a real server against
// a hard limit of 50 requests: exactly 50 pass, and 150 get a parseable 429 quota-exceeded
// problem with the RateLimit headers.
func TestHTTPHardLimitUnderConcurrency(t *testing.T) {
	m := newMeter(t, billing.Config{RatePolicies: []billing.RatePolicy{
		{Resource: "requests", Limit: 10_000, Window: time.Minute}}})
	setQuota(t, m, "acme", "requests", 50, true)
	opts, wg := pendingOpts(Options{Tenant: FromHeader("X-Tenant")})
	srv := httptest.NewServer(HTTP(m, opts)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond) // keep requests in flight together
		_, _ = w.Write([]byte("ok"))
	})))
	defer srv.Close()

	const n = 200
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}, Timeout: 30 * time.Second}
	type result struct {
		status int
		header http.Header
		body   []byte
		err    error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var done sync.WaitGroup
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			<-start
			req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
			req.Header.Set("X-Tenant", "acme")
			resp, err := client.Do(req)
			if err != nil {
				results[i].err = err
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			results[i] = result{resp.StatusCode, resp.Header, body, err}
		}()
	}
	close(start)
	done.Wait()

	ok, refused := 0, 0
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("request %d: %v", i, r.err)
		}
		if r.header.Get("RateLimit") == "" || r.header.Get("RateLimit-Policy") == "" {
			t.Errorf("request %d (status %d): no RateLimit headers", i, r.status)
		}
		switch r.status {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			refused++
			p := decodeProblem(t, r.status, r.header, r.body, http.StatusTooManyRequests, ProblemQuotaExceeded)
			if p.Tenant != "acme" || p.Resource != "requests" || p.Limit == nil || *p.Limit != 50 ||
				p.Reset == nil || p.Period != "day" {
				t.Errorf("request %d: problem %+v", i, p)
			}
			if r.header.Get("Retry-After") == "" {
				t.Errorf("request %d: 429 without Retry-After", i)
			}
		default:
			t.Errorf("request %d: status %d: %s", i, r.status, r.body)
		}
	}
	if ok != 50 || refused != 150 {
		t.Errorf("%d succeeded and %d were refused; want exactly 50 and 150", ok, refused)
	}
	srv.Close() // every handler has returned, so every commit has started
	wg.Wait()
	if got := total(t, m, "acme", "requests"); got != 50 {
		t.Errorf("requests tracked = %d, want 50", got)
	}
}

func TestHTTPQuotaPaymentRequired(t *testing.T) {
	m := newMeter(t, billing.Config{})
	setQuota(t, m, "acme", "requests", 0, true)
	h := HTTP(m, Options{Tenant: FromHeader("X-Tenant"), QuotaExceededStatus: http.StatusPaymentRequired})(okHandler)
	w := serve(h, "GET", "/x", "", map[string]string{"X-Tenant": "acme"})
	p := decodeProblem(t, w.Code, w.Header(), w.Body.Bytes(), http.StatusPaymentRequired, ProblemQuotaExceeded)
	if p.Used == nil || *p.Used != 0 || p.Requested == nil || *p.Requested != 1 {
		t.Errorf("problem = %+v", p)
	}
}

// TestHTTPUncountedAndPanics: an error status and a panic return the reserved unit, so a hard
// limit of 1 still admits the one request that succeeds; the panic is not swallowed.
func TestHTTPUncountedAndPanics(t *testing.T) {
	m := newMeter(t, billing.Config{})
	setQuota(t, m, "acme", "requests", 1, true)
	opts, wg := pendingOpts(Options{Tenant: FromHeader("X-Tenant")})
	h := HTTP(m, opts)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/panic":
			panic("handler bug")
		}
	}))
	hdr := map[string]string{"X-Tenant": "acme"}
	for range 3 {
		if w := serve(h, "GET", "/fail", "", hdr); w.Code != http.StatusInternalServerError {
			t.Fatalf("status %d", w.Code)
		}
	}
	func() {
		defer func() {
			if v := recover(); v != "handler bug" {
				t.Errorf("recovered %v, want the handler's panic", v)
			}
		}()
		serve(h, "GET", "/panic", "", hdr)
		t.Error("the panic was swallowed")
	}()
	if got := reserved(t, m, "acme", "requests"); got != 0 {
		t.Errorf("reserved after failures = %d, want 0", got)
	}
	if w := serve(h, "GET", "/ok", "", hdr); w.Code != http.StatusOK {
		t.Fatalf("the one request within the limit: status %d: %s", w.Code, w.Body)
	}
	wg.Wait()
	if got := total(t, m, "acme", "requests"); got != 1 {
		t.Errorf("requests tracked = %d, want 1", got)
	}
}

func TestHTTPCustomCounted(t *testing.T) {
	m := newMeter(t, billing.Config{})
	opts, wg := pendingOpts(Options{Tenant: FromHeader("X-Tenant"),
		Counted: func(status int) bool { return status < 500 }})
	h := HTTP(m, opts)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	}))
	serve(h, "GET", "/x", "", map[string]string{"X-Tenant": "acme"})
	wg.Wait()
	if got := total(t, m, "acme", "requests"); got != 1 {
		t.Errorf("requests tracked = %d, want 1 (404 counted by the option)", got)
	}
}

func TestHTTPSoftLimitWarning(t *testing.T) {
	m := newMeter(t, billing.Config{})
	setQuota(t, m, "acme", "requests", 2, false)
	h := HTTP(m, Options{Tenant: FromHeader("X-Tenant"), WaitDurable: true, SoftLimitCheck: time.Nanosecond})(okHandler)
	var warnings []string
	for range 4 {
		w := serve(h, "GET", "/x", "", map[string]string{"X-Tenant": "acme"})
		if w.Code != http.StatusOK {
			t.Fatalf("a soft limit refused: %d", w.Code)
		}
		warnings = append(warnings, w.Header().Get(HeaderQuotaWarning))
	}
	want := []string{"", "", `"requests";period=day;used=2;limit=2`, `"requests";period=day;used=3;limit=2`}
	for i := range want {
		if warnings[i] != want[i] {
			t.Errorf("request %d: %s = %q, want %q", i, HeaderQuotaWarning, warnings[i], want[i])
		}
	}
}

func TestHTTPWaitDurable(t *testing.T) {
	m := newMeter(t, billing.Config{})
	h := HTTP(m, Options{Tenant: FromHeader("X-Tenant"), WaitDurable: true})(okHandler)
	serve(h, "GET", "/x", "", map[string]string{"X-Tenant": "acme"})
	if got := total(t, m, "acme", "requests"); got != 1 { // no wait: recorded before the response ended
		t.Errorf("requests tracked right after the response = %d, want 1", got)
	}
}

func TestHTTPFlushAndUnwrapPassThrough(t *testing.T) {
	m := newMeter(t, billing.Config{})
	h := HTTP(m, Options{Tenant: FromHeader("X-Tenant"), WaitDurable: true})(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			if _, ok := w.(http.Flusher); !ok {
				t.Error("the middleware's writer is not an http.Flusher")
			}
			_, _ = w.Write([]byte("a"))
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("ResponseController.Flush: %v", err)
			}
		}))
	w := serve(h, "GET", "/x", "", map[string]string{"X-Tenant": "acme"})
	if !w.Flushed || w.Body.String() != "a" {
		t.Errorf("flushed %v, body %q", w.Flushed, w.Body)
	}
}

// TestHTTPAfterMeterClose: a request after Meter.Close is refused with a problem, or its lost usage
// is reported to OnError; never lost silently.
func TestHTTPAfterMeterClose(t *testing.T) {
	m := newMeter(t, billing.Config{})
	var logged []error
	h := HTTP(m, Options{Tenant: FromHeader("X-Tenant"), WaitDurable: true,
		OnError: func(err error) { logged = append(logged, err) }})(okHandler)
	setQuota(t, m, "acme", "requests", 10, true)
	m.Close()
	w := serve(h, "GET", "/x", "", map[string]string{"X-Tenant": "acme"})
	if w.Code == http.StatusOK && len(logged) == 0 {
		t.Errorf("a request after Close succeeded and no error was reported")
	}
	if w.Code != http.StatusOK {
		decodeProblem(t, w.Code, w.Header(), w.Body.Bytes(), w.Code, ProblemFor(billing.ErrClosed).Type)
	}
}

func TestHTTPSetupPanics(t *testing.T) {
	m := newMeter(t, billing.Config{})
	for _, o := range []Options{{Resource: "bad resource"}, {QuotaExceededStatus: 200}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("HTTP(%+v) did not panic", o)
				}
			}()
			HTTP(m, o)
		}()
	}
}

func TestProblemBodyIsJSON(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, context.DeadlineExceeded)
	var p map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, body %s: %v", w.Code, w.Body, err)
	}
	for _, k := range []string{"type", "title", "status", "detail"} {
		if _, ok := p[k]; !ok {
			t.Errorf("problem lacks %q: %s", k, w.Body)
		}
	}
}

func TestHTTPReadFromCounts(t *testing.T) {
	m := newMeter(t, billing.Config{})
	h := HTTP(m, Options{Tenant: FromHeader("X-Tenant"), WaitDurable: true})(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			if _, ok := w.(io.ReaderFrom); !ok {
				t.Error("the middleware's writer is not an io.ReaderFrom")
			}
			_, _ = io.Copy(w, strings.NewReader("abc"))
		}))
	if w := serve(h, "GET", "/x", "", map[string]string{"X-Tenant": "acme"}); w.Body.String() != "abc" {
		t.Errorf("body %q", w.Body)
	}
	if got := total(t, m, "acme", "requests"); got != 1 {
		t.Errorf("requests = %d, want 1", got)
	}
}
