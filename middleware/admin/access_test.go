package admin_test

import (
	"bytes"
	"strings"
	"testing"
)

// TestAccessMatrix calls every route as every kind of caller: no token, a wrong token, the
// tenant the route is about (acme), another tenant (globex), a viewer and an admin.
func TestAccessMatrix(t *testing.T) {
	const (
		ok   = 200
		none = 204
		unau = 401
		forb = 403
		hide = 404
	)
	acmeInv := func(f *fixture) string { return f.invoices["acme"] }
	finalize := func(t *testing.T, f *fixture) {
		f.ok(t, tokAdmin, "POST", "/v1/invoices/"+acmeInv(f)+"/finalize", "", nil)
	}
	type want struct{ own, other, viewer, admin int }
	read := want{own: forb, other: hide, viewer: ok, admin: ok}          // readAll on a tenant route
	readShared := want{own: forb, other: forb, viewer: ok, admin: ok}    // readAll, no tenant in path
	readTenant := want{own: ok, other: hide, viewer: ok, admin: ok}      // the tenant's own data
	write := want{own: forb, other: hide, viewer: forb, admin: ok}       // a change to a tenant
	writeShared := want{own: forb, other: forb, viewer: forb, admin: ok} // a change, no tenant in path
	rows := []struct {
		method, path, body string
		want               want
		prep               func(t *testing.T, f *fixture)
	}{
		{"GET", "/v1/tenants", "", readShared, nil},
		{"GET", "/v1/tenants/acme/summary", "", readTenant, nil},
		{"GET", "/v1/tenants/acme/usage?window=hour&group_by=model", "", readTenant, nil},
		{"POST", "/v1/aggregate", `{"from":"2026-03-01T00:00:00Z","to":"2026-03-16T00:00:00Z"}`, writeShared, nil},
		{"GET", "/v1/tenants/acme/rate-limits", "", read, nil},
		{"DELETE", "/v1/tenants/acme/rate-limits", "", write, nil},
		{"DELETE", "/v1/tenants/acme/rate-limits/requests", "", write, nil},
		{"GET", "/v1/tenants/acme/quotas", "", read, nil},
		{"GET", "/v1/tenants/acme/quotas/requests/day", "", read, nil},
		{"PUT", "/v1/tenants/acme/quotas/requests/day", `{"limit":5,"hard":true}`, write, nil},
		{"DELETE", "/v1/tenants/acme/quotas/requests/hour", "", want{forb, hide, forb, none}, func(t *testing.T, f *fixture) {
			f.ok(t, tokAdmin, "PUT", "/v1/tenants/acme/quotas/requests/hour", `{"limit":5}`, nil)
		}},
		{"GET", "/v1/plans", "", readShared, nil},
		{"GET", "/v1/plans/pro", "", readShared, nil},
		{"PUT", "/v1/plans/pro", `{"name":"Pro 2","currency":"USD"}`, writeShared, nil},
		{"PUT", "/v1/tenants/acme/plan", `{"plan_id":"free"}`, write, nil},
		{"GET", "/v1/tenants/acme/invoices", "", readTenant, nil},
		{"POST", "/v1/tenants/acme/invoices", `{}`, write, nil},
		{"GET", "/v1/invoices/{acme}", "", readTenant, nil},
		{"GET", "/v1/invoices/{acme}?format=pdf", "", readTenant, nil},
		{"POST", "/v1/invoices/{acme}/finalize", "", writeShared, nil},
		{"POST", "/v1/invoices/{acme}/void", "", writeShared, finalize},
		{"POST", "/v1/invoices/{acme}/pay", "", writeShared, finalize},
		{"GET", "/v1/alerts", "", readShared, nil},
		{"GET", "/v1/webhooks/deliveries", "", readShared, nil},
		{"GET", "/v1/audit", "", readShared, nil},
	}
	for _, row := range rows {
		t.Run(row.method+" "+row.path, func(t *testing.T) {
			f := newFixture(t)
			if row.prep != nil {
				row.prep(t, f)
			}
			path := strings.ReplaceAll(row.path, "{acme}", acmeInv(f))
			for _, c := range []struct {
				who, token string
				status     int
			}{
				{"no token", "", unau}, {"wrong token", tokWrong, unau},
				{"tenant:own", tokAcme, row.want.own}, {"tenant:other", tokGlobex, row.want.other},
				{"viewer", tokViewer, row.want.viewer}, {"admin", tokAdmin, row.want.admin},
			} {
				res := f.do(t, c.token, row.method, path, row.body)
				if res.Status != c.status {
					t.Errorf("%s: %d, want %d: %s", c.who, res.Status, c.status, res.Body)
				}
				if res.Status >= 400 && res.Header.Get("Content-Type") != "application/problem+json" {
					t.Errorf("%s: error as %q", c.who, res.Header.Get("Content-Type"))
				}
				if res.Status == 401 && res.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s: 401 without WWW-Authenticate", c.who)
				}
				if c.token == tokGlobex && bytes.Contains(res.Body, []byte("acme")) {
					t.Errorf("tenant:other saw acme's data: %s", res.Body)
				}
				if c.token == tokAcme && bytes.Contains(res.Body, []byte("globex")) {
					t.Errorf("tenant:own saw another tenant's data: %s", res.Body)
				}
			}
		})
	}
}

// TestTenantHiddenLikeMissing checks that another tenant's data and a tenant that does not
// exist answer a tenant token alike.
func TestTenantHiddenLikeMissing(t *testing.T) {
	f := newFixture(t)
	other := f.do(t, tokAcme, "GET", "/v1/tenants/globex/summary", "")
	missing := f.do(t, tokAcme, "GET", "/v1/tenants/nobody/summary", "")
	if other.Status != 404 || missing.Status != 404 || !bytes.Equal(other.Body, missing.Body) {
		t.Errorf("other tenant: %d %s\nmissing tenant: %d %s", other.Status, other.Body, missing.Status, missing.Body)
	}
	inv := f.do(t, tokAcme, "GET", "/v1/invoices/"+f.invoices["globex"], "")
	noInv := f.do(t, tokAcme, "GET", "/v1/invoices/nope", "")
	if inv.Status != 404 || noInv.Status != 404 {
		t.Errorf("other tenant's invoice: %d %s; missing invoice: %d %s", inv.Status, inv.Body, noInv.Status, noInv.Body)
	}
}
