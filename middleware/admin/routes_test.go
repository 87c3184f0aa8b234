package admin_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/middleware/admin"
)

type tenantPage struct {
	Data       []billing.Tenant `json:"data"`
	NextCursor string           `json:"next_cursor"`
}

func TestListTenantsPaginates(t *testing.T) {
	f := newFixture(t)
	var ids []string
	cursor, pages := "", 0
	for {
		var p tenantPage
		f.ok(t, tokViewer, "GET", "/v1/tenants?limit=2&cursor="+cursor, "", &p)
		pages++
		for _, tn := range p.Data {
			ids = append(ids, tn.ID)
			if tn.PlanID != "pro" {
				t.Errorf("tenant %s plan %q, want pro", tn.ID, tn.PlanID)
			}
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if diff := cmp.Diff([]string{"acme", "globex", "initech"}, ids); diff != "" || pages != 2 {
		t.Errorf("tenants over %d pages (-want +got):\n%s", pages, diff)
	}
	var all tenantPage
	f.ok(t, tokAdmin, "GET", "/v1/tenants", "", &all)
	if len(all.Data) != 3 || all.NextCursor != "" {
		t.Errorf("unpaged list = %+v", all)
	}
	if p := f.problem(t, tokAdmin, "GET", "/v1/tenants?limit=0", "", 400); p.Param != "limit" {
		t.Errorf("limit=0: param %q", p.Param)
	}
	if p := f.problem(t, tokAdmin, "GET", "/v1/tenants?page=2", "", 400); p.Param != "page" {
		t.Errorf("unknown query parameter: param %q, detail %q", p.Param, p.Detail)
	}
}

func TestSummary(t *testing.T) {
	f := newFixture(t)
	var s admin.Summary
	f.ok(t, tokAcme, "GET", "/v1/tenants/acme/summary", "", &s)
	if s.Tenant.PlanID != "pro" {
		t.Errorf("plan %q", s.Tenant.PlanID)
	}
	used := map[string]int64{}
	for _, q := range s.Quotas {
		used[q.Rule.Resource+"/"+string(q.Rule.Period)] = q.Used
		if q.Rule.Resource == "tokens.output" && (q.Rule.Hard || q.Percent != 85) {
			t.Errorf("tokens.output state %+v, want soft at 85%%", q)
		}
	}
	if diff := cmp.Diff(map[string]int64{"requests/day": 2, "tokens.output/day": 850}, used); diff != "" {
		t.Errorf("quota usage (-want +got):\n%s", diff)
	}
	if len(s.RateLimits) != 1 || s.RateLimits[0].Resource != "requests" || s.RateLimits[0].Limit != 10 {
		t.Errorf("rate limits %+v", s.RateLimits)
	}
	if len(s.Invoices) != 1 || s.Invoices[0].ID != f.invoices["acme"] || s.Invoices[0].Status != billing.InvoiceDraft {
		t.Errorf("invoices %+v", s.Invoices)
	}
}

func TestUsageFilters(t *testing.T) {
	f := newFixture(t)
	type rows struct {
		Data []billing.UsageRow `json:"data"`
	}
	sums := func(rs rows) map[string]int64 {
		out := map[string]int64{}
		for _, r := range rs.Data {
			k := r.Resource + "@" + r.Start.Format("15:04")
			if m, ok := r.Group["model"]; ok {
				k += "/" + m
			}
			out[k] += r.Sum
		}
		return out
	}
	for _, tc := range []struct {
		query string
		want  map[string]int64
	}{
		{"", map[string]int64{"requests@00:00": 2, "tokens.output@00:00": 850}},
		{"?window=hour&resource=tokens.output&group_by=model",
			map[string]int64{"tokens.output@10:00/gpt-a": 600, "tokens.output@11:00/gpt-b": 250}},
		{"?window=hour&from=2026-03-15T11:00:00Z&to=2026-03-15T12:00:00Z",
			map[string]int64{"requests@11:00": 1, "tokens.output@11:00": 250}},
		{"?window=total&resource=requests", map[string]int64{"requests@00:00": 2}},
	} {
		var rs rows
		f.ok(t, tokViewer, "GET", "/v1/tenants/acme/usage"+tc.query, "", &rs)
		if diff := cmp.Diff(tc.want, sums(rs)); diff != "" {
			t.Errorf("usage%s (-want +got):\n%s", tc.query, diff)
		}
		for _, r := range rs.Data {
			if r.Tenant != "acme" {
				t.Errorf("usage%s returned a row of %s", tc.query, r.Tenant)
			}
		}
	}
	if p := f.problem(t, tokAdmin, "GET", "/v1/tenants/acme/usage?from=yesterday", "", 400); p.Param != "from" {
		t.Errorf("bad from: %+v", p)
	}
	if p := f.problem(t, tokAdmin, "GET", "/v1/tenants/acme/usage?window=week", "", 400); !strings.Contains(p.Detail, "window") {
		t.Errorf("bad window: %+v", p)
	}
}

func TestAggregate(t *testing.T) {
	f := newFixture(t)
	f.ok(t, tokAdmin, "POST", "/v1/aggregate", `{"tenant":"acme","from":"2026-03-01T00:00:00Z","to":"2026-04-01T00:00:00Z"}`, nil)
	var rs struct{ Data []billing.UsageRow }
	f.ok(t, tokAdmin, "GET", "/v1/tenants/acme/usage?window=total&resource=tokens.output", "", &rs)
	if len(rs.Data) != 1 || rs.Data[0].Sum != 850 {
		t.Errorf("usage after rebuild %+v, want 850", rs.Data)
	}
	if p := f.problem(t, tokAdmin, "POST", "/v1/aggregate", `{"from":"2026-03-01T00:00:00Z"}`, 400); p.Param != "from" {
		t.Errorf("missing to: %+v", p)
	}
}

func TestRateLimits(t *testing.T) {
	f := newFixture(t)
	for range 10 {
		if _, err := f.m.Allow(t.Context(), "acme", "requests", 1); err != nil {
			t.Fatal(err)
		}
	}
	var rs struct{ Data []billing.RateLimitState }
	f.ok(t, tokViewer, "GET", "/v1/tenants/acme/rate-limits", "", &rs)
	if len(rs.Data) != 1 || rs.Data[0].Remaining != 0 {
		t.Fatalf("after 10 requests: %+v, want 0 remaining", rs.Data)
	}
	f.ok(t, tokAdmin, "DELETE", "/v1/tenants/acme/rate-limits/requests", "", &rs)
	if rs.Data[0].Remaining != 10 {
		t.Errorf("after clearing requests: %+v, want 10 remaining", rs.Data)
	}
	for range 3 {
		f.m.Allow(t.Context(), "acme", "requests", 1)
	}
	f.ok(t, tokAdmin, "DELETE", "/v1/tenants/acme/rate-limits", "", &rs)
	if rs.Data[0].Remaining != 10 {
		t.Errorf("after clearing all: %+v, want 10 remaining", rs.Data)
	}
}

func TestQuotas(t *testing.T) {
	f := newFixture(t)
	var qs admin.Quotas
	f.ok(t, tokViewer, "GET", "/v1/tenants/acme/quotas", "", &qs)
	if len(qs.Rules) != 2 || len(qs.Own) != 0 {
		t.Fatalf("quotas %+v, want 2 plan rules and none of its own", qs)
	}
	var rule billing.QuotaRule
	f.ok(t, tokAdmin, "PUT", "/v1/tenants/acme/quotas/requests/hour", `{"limit":5,"hard":true,"notify_at":[50]}`, &rule)
	want := billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodHour, Limit: 5, Hard: true, NotifyAt: []int{50}}
	if diff := cmp.Diff(want, rule); diff != "" {
		t.Errorf("PUT answer (-want +got):\n%s", diff)
	}
	f.ok(t, tokViewer, "GET", "/v1/tenants/acme/quotas/requests/hour", "", &rule)
	if diff := cmp.Diff(want, rule); diff != "" {
		t.Errorf("GET after PUT (-want +got):\n%s", diff)
	}
	f.ok(t, tokViewer, "GET", "/v1/tenants/acme/quotas", "", &qs)
	if len(qs.Rules) != 3 || len(qs.Own) != 1 {
		t.Errorf("quotas after PUT %+v", qs)
	}
	if p := f.problem(t, tokAdmin, "PUT", "/v1/tenants/acme/quotas/requests/hour", `{"limit":5,"hrad":true}`, 400); p.Param != "hrad" || !strings.Contains(p.Detail, `"hrad"`) {
		t.Errorf("unknown field: %+v", p)
	}
	if p := f.problem(t, tokAdmin, "PUT", "/v1/tenants/acme/quotas/requests/hour", `{"hard":true}`, 400); p.Param != "limit" {
		t.Errorf("missing limit: %+v", p)
	}
	if p := f.problem(t, tokAdmin, "PUT", "/v1/tenants/acme/quotas/requests/hour", ``, 400); !strings.Contains(p.Type, "invalid-json") {
		t.Errorf("empty body: %+v", p)
	}
	if p := f.problem(t, tokAdmin, "PUT", "/v1/tenants/acme/quotas/requests/hour", `{"limit":1}{}`, 400); !strings.Contains(p.Detail, "after") {
		t.Errorf("trailing data: %+v", p)
	}
	if p := f.problem(t, tokAdmin, "PUT", "/v1/tenants/acme/quotas/requests/hour", `{"limit":"5"}`, 400); p.Param != "limit" {
		t.Errorf("wrong type: %+v", p)
	}
	if p := f.problem(t, tokAdmin, "PUT", "/v1/tenants/acme/quotas/requests/hour", `{"limit":-1}`, 400); !strings.Contains(p.Detail, "limit") {
		t.Errorf("negative limit: %+v", p)
	}
	if p := f.problem(t, tokAdmin, "PUT", "/v1/tenants/acme/quotas/requests/week", `{"limit":1}`, 400); !strings.Contains(p.Detail, "period") {
		t.Errorf("bad period: %+v", p)
	}
	huge := `{"limit":1,"notify_at":[` + strings.Repeat("1,", admin.MaxBody/2) + `1]}`
	if p := f.problem(t, tokAdmin, "PUT", "/v1/tenants/acme/quotas/requests/hour", huge, 400); !strings.Contains(p.Type, "body-too-large") {
		t.Errorf("huge body: %+v", p)
	}
	if res := f.do(t, tokAdmin, "DELETE", "/v1/tenants/acme/quotas/requests/hour", ""); res.Status != 204 {
		t.Errorf("DELETE = %d %s", res.Status, res.Body)
	}
	f.problem(t, tokAdmin, "DELETE", "/v1/tenants/acme/quotas/requests/hour", "", 404)
	f.problem(t, tokAdmin, "GET", "/v1/tenants/acme/quotas/requests/hour", "", 404)
}

func TestPlans(t *testing.T) {
	f := newFixture(t)
	var ps struct{ Data []billing.Plan }
	f.ok(t, tokViewer, "GET", "/v1/plans", "", &ps)
	if len(ps.Data) != 2 || ps.Data[0].ID != "free" || ps.Data[1].ID != "pro" {
		t.Errorf("plans %+v", ps.Data)
	}
	var p billing.Plan
	f.ok(t, tokAdmin, "PUT", "/v1/plans/team", `{"name":"Team","currency":"EUR","quotas":[{"resource":"requests","period":"day","limit":50,"hard":true,"notify_at":null}]}`, &p)
	if p.ID != "team" || p.Currency != "EUR" || len(p.Quotas) != 1 {
		t.Errorf("PUT plan = %+v", p)
	}
	f.ok(t, tokViewer, "GET", "/v1/plans/team", "", &p)
	if p.Name != "Team" {
		t.Errorf("GET plan = %+v", p)
	}
	f.problem(t, tokViewer, "GET", "/v1/plans/nope", "", 404)
	if pr := f.problem(t, tokAdmin, "PUT", "/v1/plans/team", `{"id":"other"}`, 400); pr.Param != "id" {
		t.Errorf("id mismatch: %+v", pr)
	}
	if pr := f.problem(t, tokAdmin, "PUT", "/v1/plans/team", `{"quotas":[{"resource":"requests","period":"day","limit":5,"colour":1}]}`, 400); !strings.Contains(pr.Detail, "colour") {
		t.Errorf("nested unknown field: %+v", pr)
	}
	var tn billing.Tenant
	f.ok(t, tokAdmin, "PUT", "/v1/tenants/acme/plan", `{"plan_id":"team"}`, &tn)
	if tn.PlanID != "team" {
		t.Errorf("assigned plan %+v", tn)
	}
	f.problem(t, tokAdmin, "PUT", "/v1/tenants/acme/plan", `{"plan_id":"nope"}`, 404)
	if pr := f.problem(t, tokAdmin, "PUT", "/v1/tenants/acme/plan", `{}`, 400); pr.Param != "plan_id" {
		t.Errorf("missing plan_id: %+v", pr)
	}
}

func TestInvoices(t *testing.T) {
	f := newFixture(t)
	type invPage struct{ Data []billing.Invoice }
	var ip invPage
	f.ok(t, tokAcme, "GET", "/v1/tenants/acme/invoices", "", &ip)
	if len(ip.Data) != 1 || ip.Data[0].Tenant != "acme" || ip.Data[0].Total.String() != "8.5" {
		t.Fatalf("acme invoices %+v", ip.Data)
	}
	id := ip.Data[0].ID
	f.ok(t, tokAdmin, "GET", "/v1/tenants/acme/invoices?status=paid", "", &ip)
	if len(ip.Data) != 0 {
		t.Errorf("paid invoices %+v, want none", ip.Data)
	}
	f.problem(t, tokAdmin, "GET", "/v1/tenants/acme/invoices?status=lost", "", 400)

	for format, ct := range map[string]string{"json": "application/json", "csv": "text/csv", "html": "text/html", "pdf": "application/pdf"} {
		res := f.do(t, tokAcme, "GET", "/v1/invoices/"+id+"?format="+format, "")
		if res.Status != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), ct) || len(res.Body) == 0 {
			t.Errorf("format=%s: %d %q", format, res.Status, res.Header.Get("Content-Type"))
		}
	}
	req, _ := http.NewRequest("GET", f.srv.URL+"/admin/v1/invoices/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+tokAdmin)
	req.Header.Set("Accept", "application/pdf")
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var head [5]byte
	res.Body.Read(head[:])
	res.Body.Close()
	if !bytes.Equal(head[:], []byte("%PDF-")) {
		t.Errorf("Accept: application/pdf answered %q", head)
	}
	f.problem(t, tokAdmin, "GET", "/v1/invoices/"+id+"?format=docx", "", 400)
	f.problem(t, tokAdmin, "GET", "/v1/invoices/nope", "", 404)

	// Lifecycle: void and pay need a finalized invoice; finalize numbers it.
	f.problem(t, tokAdmin, "POST", "/v1/invoices/"+id+"/pay", "", 409)
	var inv billing.Invoice
	f.ok(t, tokAdmin, "POST", "/v1/invoices/"+id+"/finalize", "", &inv)
	if inv.Status != billing.InvoiceFinalized || inv.Number == "" {
		t.Errorf("finalized %+v", inv)
	}
	f.ok(t, tokAdmin, "POST", "/v1/invoices/"+id+"/pay", "", &inv)
	if inv.Status != billing.InvoicePaid {
		t.Errorf("paid %+v", inv)
	}
	f.problem(t, tokAdmin, "POST", "/v1/invoices/"+id+"/void", "", 409)

	gid := f.invoices["globex"]
	f.ok(t, tokAdmin, "POST", "/v1/invoices/"+gid+"/finalize", "", nil)
	f.ok(t, tokAdmin, "POST", "/v1/invoices/"+gid+"/void", "", &inv)
	if inv.Status != billing.InvoiceVoid {
		t.Errorf("voided %+v", inv)
	}
	// A new draft for the voided period, by explicit span and by default (the current cycle).
	f.ok(t, tokAdmin, "POST", "/v1/tenants/globex/invoices", `{"start":"2026-03-01T00:00:00Z","end":"2026-04-01T00:00:00Z"}`, &inv)
	if inv.Status != billing.InvoiceDraft || inv.ID == gid || inv.Total.String() != "0.4" {
		t.Errorf("regenerated %+v", inv)
	}
	var again billing.Invoice
	f.ok(t, tokAdmin, "POST", "/v1/tenants/globex/invoices", `{}`, &again)
	if again.ID != inv.ID {
		t.Errorf("default period draft %s, want the same draft %s", again.ID, inv.ID)
	}
	if pr := f.problem(t, tokAdmin, "POST", "/v1/tenants/globex/invoices", `{"start":"2026-03-01T00:30:00Z","end":"2026-04-01T00:00:00Z"}`, 400); !strings.Contains(pr.Detail, "span.start") {
		t.Errorf("odd span: %+v", pr)
	}
}

func TestAlertsAndDeliveries(t *testing.T) {
	f := newFixture(t)
	var as struct{ Data []billing.Alert }
	f.ok(t, tokViewer, "GET", "/v1/alerts", "", &as)
	if len(as.Data) != 1 || as.Data[0].Tenant != "acme" || as.Data[0].Threshold != 80 {
		t.Fatalf("alerts %+v", as.Data)
	}
	f.ok(t, tokViewer, "GET", "/v1/alerts?tenant=globex", "", &as)
	if len(as.Data) != 0 {
		t.Errorf("globex alerts %+v", as.Data)
	}
	var ds struct{ Data []billing.Delivery }
	f.ok(t, tokViewer, "GET", "/v1/webhooks/deliveries?status=pending", "", &ds)
	if len(ds.Data) != 1 || ds.Data[0].Alert.Tenant != "acme" {
		t.Errorf("pending deliveries %+v", ds.Data)
	}
	f.ok(t, tokViewer, "GET", "/v1/webhooks/deliveries?status=dead&tenant=acme&limit=5", "", &ds)
	if len(ds.Data) != 0 {
		t.Errorf("dead deliveries %+v", ds.Data)
	}
	f.problem(t, tokViewer, "GET", "/v1/webhooks/deliveries?status=lost", "", 400)
}

func TestUnknownRouteIsProblem(t *testing.T) {
	f := newFixture(t)
	f.problem(t, tokAdmin, "GET", "/v1/nothing", "", 404)
	f.problem(t, tokAdmin, "DELETE", "/v1/tenants", "", 405)
	res := f.do(t, tokAdmin, "POST", "/v1/tenants/acme/quotas/requests/day", "{}")
	if res.Status != 405 || res.Header.Get("Allow") != "GET, PUT, DELETE" {
		t.Errorf("POST on a quota: %d, Allow %q", res.Status, res.Header.Get("Allow"))
	}
}

// TestPrefix mounts the handler without http.StripPrefix, naming its prefix instead.
func TestPrefix(t *testing.T) {
	f := newFixture(t)
	h := admin.Handler(f.m, admin.Options{Prefix: "/ops/billing/", Tokens: map[string]string{tokAdmin: "admin"}})
	for path, want := range map[string]int{"/ops/billing/": 200, "/ops/billing/v1/tenants": 200, "/elsewhere/v1/tenants": 404} {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+tokAdmin)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("GET %s = %d, want %d", path, rec.Code, want)
		}
	}
}

func TestDashboardServed(t *testing.T) {
	f := newFixture(t)
	res := f.do(t, "", "GET", "/", "")
	if res.Status != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q", res.Status, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{"http://www.w3.org/2000/svg", "sessionStorage", "v1/tenants"} {
		if !bytes.Contains(res.Body, []byte(want)) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	for _, banned := range []string{"https://", "<script src", "<link"} {
		if bytes.Contains(res.Body, []byte(banned)) {
			t.Errorf("dashboard references %q", banned)
		}
	}
	if !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("no CSP: %v", res.Header)
	}
}
