package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/middleware/admin"
	"github.com/meterplane/billing/store/sqlite"
)

// The fixed instant of every test, and the tokens of each principal.
var (
	now = time.Date(2026, 3, 15, 12, 30, 0, 0, time.UTC)

	tokAdmin  = "admin-token-0123456789"
	tokViewer = "viewer-token-0123456789"
	tokAcme   = "acme-token-0123456789"
	tokGlobex = "globex-token-0123456789"
	tokWrong  = "wrong-token-0123456789"
)

// fixture is a Meter with two tenants, usage, an alert and a draft invoice each, served by the
// admin handler under /admin/.
type fixture struct {
	m        *billing.Meter
	srv      *httptest.Server
	invoices map[string]string // tenant -> draft invoice id
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := sqlite.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := billing.New(billing.Config{Store: st, Now: func() time.Time { return now }, NoDelivery: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ctx := context.Background()
	pro := billing.Plan{ID: "pro", Name: "Pro", Currency: "USD",
		Quotas: []billing.QuotaRule{
			{Resource: "requests", Period: billing.PeriodDay, Limit: 100, Hard: true},
			{Resource: "tokens.output", Period: billing.PeriodDay, Limit: 1000},
		},
		Rates: []billing.RatePolicy{{Resource: "requests", Limit: 10, Window: time.Minute}},
		Prices: []billing.Price{{Resource: "tokens.output", Model: billing.PerUnit,
			UnitPrice: decimal.RequireFromString("0.01")}},
	}
	must(t, m.SetPlan(ctx, pro))
	must(t, m.SetPlan(ctx, billing.Plan{ID: "free", Currency: "USD"}))
	f := &fixture{m: m, invoices: map[string]string{}}
	for _, tenant := range []string{"acme", "globex", "initech"} {
		must(t, m.AssignPlan(ctx, tenant, "pro"))
	}
	at := func(h, min int) time.Time { return time.Date(2026, 3, 15, h, min, 0, 0, time.UTC) }
	must(t, m.Track(ctx,
		billing.Event{Tenant: "acme", Resource: "requests", Quantity: 1, Time: at(10, 5)},
		billing.Event{Tenant: "acme", Resource: "requests", Quantity: 1, Time: at(11, 10)},
		billing.Event{Tenant: "acme", Resource: "tokens.output", Quantity: 600, Time: at(10, 5), Attrs: map[string]string{"model": "gpt-a"}},
		billing.Event{Tenant: "acme", Resource: "tokens.output", Quantity: 250, Time: at(11, 10), Attrs: map[string]string{"model": "gpt-b"}},
		billing.Event{Tenant: "globex", Resource: "requests", Quantity: 7, Time: at(9, 0)},
		billing.Event{Tenant: "globex", Resource: "tokens.output", Quantity: 40, Time: at(9, 0), Attrs: map[string]string{"model": "gpt-a"}},
	))
	if _, err := m.CheckQuotas(ctx); err != nil { // acme crosses 80% of its soft tokens.output
		t.Fatal(err)
	}
	for _, tenant := range []string{"acme", "globex"} {
		inv, err := m.GenerateInvoice(ctx, tenant, billing.MonthOf(now, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		f.invoices[tenant] = inv.ID
	}
	h := admin.Handler(m, admin.Options{Tokens: map[string]string{
		tokAdmin: "admin=alice", tokViewer: "viewer", tokAcme: "tenant:acme", tokGlobex: "tenant:globex"}})
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", h))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// response is an answer of the API.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// do calls the API at path (relative to /admin) with token (none when empty).
func (f *fixture) do(t *testing.T, token, method, path, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+"/admin"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// ok calls the API as admin (or token) and decodes a 2xx JSON answer into v.
func (f *fixture) ok(t *testing.T, token, method, path, body string, v any) {
	t.Helper()
	res := f.do(t, token, method, path, body)
	if res.Status/100 != 2 {
		t.Fatalf("%s %s = %d, want 2xx: %s", method, path, res.Status, res.Body)
	}
	if v != nil {
		if err := json.Unmarshal(res.Body, v); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, res.Body, err)
		}
	}
}

// problem decodes a problem+json answer.
type problem struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Param  string `json:"param"`
}

func (f *fixture) problem(t *testing.T, token, method, path, body string, status int) problem {
	t.Helper()
	res := f.do(t, token, method, path, body)
	if res.Status != status {
		t.Fatalf("%s %s = %d, want %d: %s", method, path, res.Status, status, res.Body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s %s: Content-Type %q, want application/problem+json", method, path, ct)
	}
	var p problem
	if err := json.Unmarshal(res.Body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}
