package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// TestOpenAPIMatchesRoutes checks that the document describes exactly the registered routes:
// every documented operation resolves to its own pattern in the handler's mux, and every
// registered pattern is documented.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	st, err := sqlite.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := billing.New(billing.Config{Store: st, Now: func() time.Time { return time.Unix(0, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	hh, err := NewHandler(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := hh.(*handler)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/openapi.json", nil))
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("openapi.json: %v\n%s", err, rec.Body)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	param := regexp.MustCompile(`\{[a-z]+\}`)
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			pattern := strings.ToUpper(method) + " " + path
			documented[pattern] = true
			concrete := param.ReplaceAllString(path, "x")
			_, got := h.mux.Handler(httptest.NewRequest(strings.ToUpper(method), concrete, nil))
			if got != pattern {
				t.Errorf("documented %s: %s %s is served by pattern %q", pattern, strings.ToUpper(method), concrete, got)
			}
		}
	}
	registered := []string{"GET " + openAPIPath}
	for _, rt := range h.routes() {
		registered = append(registered, rt.Method+" "+rt.Path)
	}
	sort.Strings(registered)
	for _, p := range registered {
		if !documented[p] {
			t.Errorf("registered route %s is not documented", p)
		}
	}
	if len(documented) != len(registered) {
		t.Errorf("%d documented operations, %d registered routes", len(documented), len(registered))
	}
	// The list of routes, spelled out, so that a route cannot silently disappear.
	want := []string{
		"DELETE /v1/tenants/{tenant}/quotas/{resource}/{period}", "DELETE /v1/tenants/{tenant}/rate-limits",
		"DELETE /v1/tenants/{tenant}/rate-limits/{resource}", "GET /v1/alerts", "GET /v1/audit",
		"GET /v1/invoices/{id}", "GET /v1/openapi.json", "GET /v1/plans", "GET /v1/plans/{id}", "GET /v1/tenants",
		"GET /v1/tenants/{tenant}/invoices", "GET /v1/tenants/{tenant}/quotas",
		"GET /v1/tenants/{tenant}/quotas/{resource}/{period}", "GET /v1/tenants/{tenant}/rate-limits",
		"GET /v1/tenants/{tenant}/summary", "GET /v1/tenants/{tenant}/usage", "GET /v1/webhooks/deliveries",
		"POST /v1/aggregate", "POST /v1/invoices/{id}/finalize", "POST /v1/invoices/{id}/pay",
		"POST /v1/invoices/{id}/void", "POST /v1/tenants/{tenant}/invoices", "PUT /v1/plans/{id}",
		"PUT /v1/tenants/{tenant}/plan", "PUT /v1/tenants/{tenant}/quotas/{resource}/{period}",
	}
	if strings.Join(want, "\n") != strings.Join(registered, "\n") {
		t.Errorf("registered routes:\n%s\nwant:\n%s", strings.Join(registered, "\n"), strings.Join(want, "\n"))
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" || rec.Code != http.StatusOK {
		t.Errorf("openapi.json: %d %q", rec.Code, ct)
	}
}
