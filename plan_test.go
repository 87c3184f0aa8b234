package billing_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

// qRuleKey is what identifies a merged rule in these tests.
type qRuleKey struct {
	Resource string
	Period   billing.Period
	Limit    int64
	Hard     bool
}

func qRuleKeys(t *testing.T, m *billing.Meter, tenant string) []qRuleKey {
	t.Helper()
	rules, err := m.Quotas(context.Background(), tenant)
	if err != nil {
		t.Fatalf("Quotas(%q): %v", tenant, err)
	}
	out := []qRuleKey{}
	for _, r := range rules {
		if r.Tenant != tenant {
			t.Errorf("Quotas(%q) returned a rule with Tenant %q", tenant, r.Tenant)
		}
		out = append(out, qRuleKey{r.Resource, r.Period, r.Limit, r.Hard})
	}
	return out
}

// TestPlanOverridesAndDelete: a tenant's own rule replaces its plan's rule of the same resource
// and period (and only that one); DeleteQuota brings the plan's back.
func TestPlanOverridesAndDelete(t *testing.T) {
	ctx := context.Background()
	m := qNewMeter(t, billing.Config{Now: qNewClock(qT0).Now})
	pro := billing.Plan{ID: "pro", Name: "Pro", Currency: "USD", Quotas: []billing.QuotaRule{
		{Resource: "requests", Period: billing.PeriodDay, Limit: 100, Hard: true},
		{Resource: "requests", Period: billing.PeriodMonth, Limit: 2000, Hard: true},
		{Resource: "tokens", Period: billing.PeriodMonth, Limit: 1_000_000},
	}}
	if err := m.SetPlan(ctx, pro); err != nil {
		t.Fatal(err)
	}
	got, err := m.Plan(ctx, "pro")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pro, got); diff != "" {
		t.Errorf("Plan(pro) round trip (-want +got):\n%s", diff)
	}
	if err := m.AssignPlan(ctx, "acme", "pro"); err != nil {
		t.Fatal(err)
	}
	planRules := []qRuleKey{
		{"requests", billing.PeriodDay, 100, true},
		{"requests", billing.PeriodMonth, 2000, true},
		{"tokens", billing.PeriodMonth, 1_000_000, false},
	}
	if diff := cmp.Diff(planRules, qRuleKeys(t, m, "acme")); diff != "" {
		t.Errorf("rules on the plan (-want +got):\n%s", diff)
	}
	// The plan's daily limit applies.
	r, err := m.Reserve(ctx, "acme", "requests", 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reserve(ctx, "acme", "requests", 1); !errors.Is(err, billing.ErrQuotaExceeded) {
		t.Fatalf("Reserve beyond the plan's daily limit: %v", err)
	}
	r.Cancel(ctx)

	// Override the daily rule only.
	qSetQuota(t, m, billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: 5, Hard: true})
	overridden := []qRuleKey{
		{"requests", billing.PeriodDay, 5, true},
		{"requests", billing.PeriodMonth, 2000, true},
		{"tokens", billing.PeriodMonth, 1_000_000, false},
	}
	if diff := cmp.Diff(overridden, qRuleKeys(t, m, "acme")); diff != "" {
		t.Errorf("rules with the override (-want +got):\n%s", diff)
	}
	r, err = m.Reserve(ctx, "acme", "requests", 5)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Reserve(ctx, "acme", "requests", 1)
	var qe *billing.QuotaExceededError
	if !errors.As(err, &qe) || qe.Limit != 5 || qe.Rule.Period != billing.PeriodDay {
		t.Fatalf("Reserve beyond the override: %v, want a refusal by the daily limit of 5", err)
	}
	r.Cancel(ctx)
	// Replacing the override keeps one rule per resource and period.
	qSetQuota(t, m, billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: 7, Hard: false})
	overridden[0] = qRuleKey{"requests", billing.PeriodDay, 7, false}
	if diff := cmp.Diff(overridden, qRuleKeys(t, m, "acme")); diff != "" {
		t.Errorf("rules with the replaced override (-want +got):\n%s", diff)
	}
	info, err := m.TenantInfo(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if info.PlanID != "pro" || len(info.Quotas) != 1 {
		t.Errorf("TenantInfo = %+v, want plan pro and one own rule", info)
	}

	// Delete the override: the plan's rule is back.
	if err := m.DeleteQuota(ctx, "acme", "requests", billing.PeriodDay); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(planRules, qRuleKeys(t, m, "acme")); diff != "" {
		t.Errorf("rules after DeleteQuota (-want +got):\n%s", diff)
	}
	if _, err := m.Reserve(ctx, "acme", "requests", 50); err != nil {
		t.Errorf("Reserve under the plan's restored limit: %v", err)
	}
	if err := m.DeleteQuota(ctx, "acme", "requests", billing.PeriodDay); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("DeleteQuota of a missing rule: %v, want ErrNotFound", err)
	}

	// A plan change reaches its tenants at once.
	pro.Quotas[0].Limit = 60
	if err := m.SetPlan(ctx, pro); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reserve(ctx, "acme", "requests", 11); !errors.Is(err, billing.ErrQuotaExceeded) {
		t.Errorf("Reserve after lowering the plan to 60 with 50 held: %v, want ErrQuotaExceeded", err)
	}

	// An own rule for a resource the plan does not cover adds to the plan's.
	qSetQuota(t, m, billing.QuotaRule{Tenant: "acme", Resource: "messages", Period: billing.PeriodHour, Limit: 3, Hard: true})
	keys := qRuleKeys(t, m, "acme")
	if len(keys) != 4 || keys[0] != (qRuleKey{"messages", billing.PeriodHour, 3, true}) {
		t.Errorf("rules with an extra own rule = %+v", keys)
	}

	// Back to no plan: only the own rule is left.
	if err := m.AssignPlan(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]qRuleKey{{"messages", billing.PeriodHour, 3, true}}, qRuleKeys(t, m, "acme")); diff != "" {
		t.Errorf("rules without a plan (-want +got):\n%s", diff)
	}
	plans, err := m.Plans(ctx)
	if err != nil || len(plans) != 1 || plans[0].ID != "pro" {
		t.Errorf("Plans = %+v, %v; want [pro]", plans, err)
	}
}

// TestPlanDefaultPlan: Config.DefaultPlan applies to tenants never assigned a plan, and not to
// tenants assigned another.
func TestPlanDefaultPlan(t *testing.T) {
	ctx := context.Background()
	st := qOpenStore(t, ":memory:")
	m := qNewMeter(t, billing.Config{Store: st, Now: qNewClock(qT0).Now, DefaultPlan: "free"})
	// The default plan need not exist yet: until it does, unassigned tenants are unlimited.
	if keys := qRuleKeys(t, m, "newcomer"); len(keys) != 0 {
		t.Errorf("rules before the default plan exists: %+v", keys)
	}
	free := billing.Plan{ID: "free", Quotas: []billing.QuotaRule{{Resource: "requests", Period: billing.PeriodDay, Limit: 3, Hard: true}}}
	big := billing.Plan{ID: "big", Quotas: []billing.QuotaRule{{Resource: "requests", Period: billing.PeriodDay, Limit: 1000, Hard: true}}}
	for _, p := range []billing.Plan{free, big} {
		if err := m.SetPlan(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.AssignPlan(ctx, "whale", "big"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r, err := m.Reserve(ctx, "newcomer", "requests", 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Commit(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	_, err := m.Reserve(ctx, "newcomer", "requests", 1)
	var qe *billing.QuotaExceededError
	if !errors.As(err, &qe) || qe.Limit != 3 || qe.Rule.Tenant != "newcomer" {
		t.Errorf("Reserve beyond the default plan: %v, want a refusal by the limit of 3 for newcomer", err)
	}
	if _, err := m.Reserve(ctx, "whale", "requests", 500); err != nil {
		t.Errorf("a tenant on another plan is not held to the default plan: %v", err)
	}
	// A tenant assigned "" goes back to the default plan.
	if err := m.AssignPlan(ctx, "whale", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reserve(ctx, "whale", "requests", 4); !errors.Is(err, billing.ErrQuotaExceeded) {
		t.Errorf("whale back on the default plan: %v, want ErrQuotaExceeded", err)
	}
}

// TestPlanUnlimitedTenant: no plan and no rule means no limit.
func TestPlanUnlimitedTenant(t *testing.T) {
	ctx := context.Background()
	m := qNewMeter(t, billing.Config{Now: qNewClock(qT0).Now})
	if err := m.SetPlan(ctx, billing.Plan{ID: "free", Quotas: []billing.QuotaRule{{Resource: "requests", Period: billing.PeriodDay, Limit: 1, Hard: true}}}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		r, err := m.Reserve(ctx, "anyone", "requests", billing.MaxQuantity)
		if err != nil {
			t.Fatalf("Reserve #%d of MaxQuantity for an unlimited tenant: %v", i, err)
		}
		if i == 0 {
			if err := r.Commit(ctx, billing.MaxQuantity); err != nil {
				t.Fatal(err)
			}
		}
	}
	states, err := m.QuotaStatus(ctx, "anyone")
	if err != nil || len(states) != 0 {
		t.Errorf("QuotaStatus of an unlimited tenant = %+v, %v; want no rules", states, err)
	}
}

// TestPlanAssignMissing: assigning a plan that does not exist fails, naming the field, and
// changes nothing.
func TestPlanAssignMissing(t *testing.T) {
	ctx := context.Background()
	m := qNewMeter(t, billing.Config{Now: qNewClock(qT0).Now})
	err := m.AssignPlan(ctx, "acme", "nope")
	qWantFieldError(t, err, billing.ErrInvalidConfig, "plan")
	info, err := m.TenantInfo(ctx, "acme")
	if err != nil || info.PlanID != "" {
		t.Errorf("TenantInfo after a failed AssignPlan = %+v, %v; want no plan", info, err)
	}
	qWantFieldError(t, m.AssignPlan(ctx, "", "nope"), billing.ErrInvalidConfig, "tenant")
	if _, err := m.Plan(ctx, "nope"); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("Plan(nope): %v, want ErrNotFound", err)
	}
	if _, err := billing.New(billing.Config{Store: qOpenStore(t, ":memory:"), DefaultPlan: "bad plan"}); err == nil {
		t.Error("New with DefaultPlan \"bad plan\": nil error")
	} else {
		qWantFieldError(t, err, billing.ErrInvalidConfig, "DefaultPlan")
	}
}

// TestPlanValidation: every invalid plan is refused with an error naming the field, and the
// stored plan is kept.
func TestPlanValidation(t *testing.T) {
	ctx := context.Background()
	m := qNewMeter(t, billing.Config{Now: qNewClock(qT0).Now})
	good := func() billing.Plan {
		return billing.Plan{ID: "pro", Currency: "EUR", Quotas: []billing.QuotaRule{
			{Resource: "requests", Period: billing.PeriodDay, Limit: 100, Hard: true},
			{Resource: "tokens", Period: billing.PeriodMonth, Limit: 1000, NotifyAt: []int{50, 100}},
		}}
	}
	if err := m.SetPlan(ctx, good()); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		edit  func(*billing.Plan)
		field string
	}{
		{"empty id", func(p *billing.Plan) { p.ID = "" }, "plan.id"},
		{"bad id", func(p *billing.Plan) { p.ID = "pro plan" }, "plan.id"},
		{"lower-case currency", func(p *billing.Plan) { p.Currency = "eur" }, "plan.currency"},
		{"long currency", func(p *billing.Plan) { p.Currency = "EURO" }, "plan.currency"},
		{"tenant in a plan rule", func(p *billing.Plan) { p.Quotas[1].Tenant = "acme" }, "plan.quotas[1].tenant"},
		{"negative limit", func(p *billing.Plan) { p.Quotas[0].Limit = -100 }, "plan.quotas[0].limit"},
		{"unknown period", func(p *billing.Plan) { p.Quotas[1].Period = "year" }, "plan.quotas[1].period"},
		{"empty resource", func(p *billing.Plan) { p.Quotas[0].Resource = "" }, "plan.quotas[0].resource"},
		{"threshold 0", func(p *billing.Plan) { p.Quotas[1].NotifyAt = []int{0, 100} }, "plan.quotas[1].notify_at[0]"},
		{"threshold 1001", func(p *billing.Plan) { p.Quotas[1].NotifyAt = []int{50, 1001} }, "plan.quotas[1].notify_at[1]"},
		{"duplicate threshold", func(p *billing.Plan) { p.Quotas[1].NotifyAt = []int{50, 50} }, "plan.quotas[1].notify_at[1]"},
		{"two rules for one resource and period", func(p *billing.Plan) {
			p.Quotas = append(p.Quotas, billing.QuotaRule{Resource: "requests", Period: billing.PeriodDay, Limit: 5})
		}, "plan.quotas[2]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := good()
			p.Quotas[0].Limit = 1 // would be visible if the plan were stored
			tc.edit(&p)
			qWantFieldError(t, p.Validate(), billing.ErrInvalidConfig, tc.field)
			qWantFieldError(t, m.SetPlan(ctx, p), billing.ErrInvalidConfig, tc.field)
		})
	}
	got, err := m.Plan(ctx, "pro")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(good(), got); diff != "" {
		t.Errorf("stored plan changed by refused SetPlans (-want +got):\n%s", diff)
	}
}
