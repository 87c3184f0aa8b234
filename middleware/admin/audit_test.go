package admin_test

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/meterplane/billing"
)

type auditPage struct {
	Data       []billing.AuditEntry `json:"data"`
	NextCursor string               `json:"next_cursor"`
}

// TestQuotaChangeIsAudited changes a quota twice through the API and finds both changes in
// /v1/audit, with who, when, and the rule before and after.
func TestQuotaChangeIsAudited(t *testing.T) {
	f := newFixture(t)
	f.ok(t, tokAdmin, "PUT", "/v1/tenants/acme/quotas/requests/hour", `{"limit":5,"hard":true}`, nil)
	f.ok(t, tokAdmin, "PUT", "/v1/tenants/acme/quotas/requests/hour", `{"limit":9,"hard":false}`, nil)

	var p auditPage
	f.ok(t, tokViewer, "GET", "/v1/audit?tenant=acme", "", &p)
	if len(p.Data) != 2 {
		t.Fatalf("audit entries %+v, want 2", p.Data)
	}
	latest, first := p.Data[0], p.Data[1]
	for _, e := range p.Data {
		if e.Principal != "alice" || e.Action != "quota.put" || e.Tenant != "acme" || e.Target != "quotas/requests/hour" || !e.At.Equal(now) {
			t.Errorf("entry %+v", e)
		}
	}
	limit := func(raw json.RawMessage) any {
		if raw == nil {
			return nil
		}
		var r billing.QuotaRule
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		return strconv.FormatInt(r.Limit, 10) + "/" + strconv.FormatBool(r.Hard)
	}
	if limit(first.Before) != nil || limit(first.After) != "5/true" {
		t.Errorf("first change: before %s after %s", first.Before, first.After)
	}
	if limit(latest.Before) != "5/true" || limit(latest.After) != "9/false" {
		t.Errorf("second change: before %s after %s", latest.Before, latest.After)
	}
	if latest.ID <= first.ID {
		t.Errorf("ids %d then %d: not newest first", latest.ID, first.ID)
	}

	// Refused changes are not audited; reads are not audited.
	f.problem(t, tokViewer, "PUT", "/v1/tenants/acme/quotas/requests/hour", `{"limit":1}`, 403)
	f.problem(t, tokAdmin, "PUT", "/v1/tenants/acme/quotas/requests/hour", `{"limit":-1}`, 400)
	f.ok(t, tokAdmin, "GET", "/v1/audit?tenant=acme", "", &p)
	if len(p.Data) != 2 {
		t.Errorf("after refused changes: %d entries", len(p.Data))
	}
}

// TestAuditPaginates checks that the audit log pages with limit and cursor and that every kind
// of change is recorded.
func TestAuditPaginates(t *testing.T) {
	f := newFixture(t)
	id := f.invoices["acme"]
	f.ok(t, tokAdmin, "PUT", "/v1/plans/team", `{"currency":"USD"}`, nil)
	f.ok(t, tokAdmin, "PUT", "/v1/tenants/globex/plan", `{"plan_id":"team"}`, nil)
	f.ok(t, tokAdmin, "DELETE", "/v1/tenants/acme/rate-limits", "", nil)
	f.ok(t, tokAdmin, "POST", "/v1/aggregate", `{"from":"2026-03-01T00:00:00Z","to":"2026-04-01T00:00:00Z"}`, nil)
	f.ok(t, tokAdmin, "POST", "/v1/invoices/"+id+"/finalize", "", nil)
	var actions []string
	cursor := ""
	for range 10 {
		var p auditPage
		f.ok(t, tokAdmin, "GET", "/v1/audit?limit=2&cursor="+cursor, "", &p)
		for _, e := range p.Data {
			actions = append(actions, e.Action)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	want := []string{"invoice.finalize", "rollups.rebuild", "rate_limit.clear", "plan.assign", "plan.put"}
	if len(actions) != len(want) {
		t.Fatalf("actions %v, want %v", actions, want)
	}
	for i := range want {
		if actions[i] != want[i] {
			t.Errorf("actions %v, want %v", actions, want)
			break
		}
	}
	f.problem(t, tokAdmin, "GET", "/v1/audit?cursor=abc", "", 400)
}
