package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
)

// testPlans checks the PlanStore part: plans stored, replaced and listed; tenant records created
// and changed by UpdateTenant (atomically, under concurrency; an error of fn changes nothing) and
// listed page by page.
func testPlans(t *testing.T, newStore func(t *testing.T) billing.Store) {
	t.Run("Plans", func(t *testing.T) { testPlanPutGet(t, newStore(t)) })
	t.Run("Tenants", func(t *testing.T) { testTenantUpdate(t, newStore(t)) })
	t.Run("TenantsAbort", func(t *testing.T) { testTenantAbort(t, newStore(t)) })
	t.Run("TenantsConcurrent", func(t *testing.T) { testTenantConcurrent(t, newStore(t)) })
	t.Run("ListTenants", func(t *testing.T) { testTenantList(t, newStore(t)) })
}

// planPro is a plan using every field, with amounts whose digits must survive exactly.
func planPro() billing.Plan {
	return billing.Plan{
		ID: "pro", Name: "Pro ✓ \"quoted\"", Currency: "EUR",
		Quotas: []billing.QuotaRule{
			{Resource: "requests", Period: billing.PeriodDay, Limit: 10_000, Hard: true, NotifyAt: []int{80, 100}},
			{Resource: "tokens.output", Period: billing.PeriodMonth, Limit: 5_000_000, NotifyAt: []int{50}},
		},
		Rates: []billing.RatePolicy{{Resource: "requests", Limit: 100, Window: time.Minute, Burst: 20}},
		Prices: []billing.Price{
			{Resource: "requests", Model: billing.PerUnit, UnitPrice: decimal.RequireFromString("0.000123456789012345")},
			{Resource: "tokens.output", Match: map[string]string{"model": "gpt-4o"}, Model: billing.Graduated,
				Tiers: []billing.Tier{{UpTo: 1000, UnitPrice: decimal.RequireFromString("0.01")},
					{UnitPrice: decimal.RequireFromString("0.005"), FlatPrice: decimal.RequireFromString("2.50")}}},
		},
		BaseFee: decimal.RequireFromString("49.90"),
		Minimum: decimal.RequireFromString("100"),
	}
}

func testPlanPutGet(t *testing.T, st billing.Store) {
	ctx := context.Background()
	if _, err := st.GetPlan(ctx, "pro"); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("GetPlan of a missing plan: %v, want ErrNotFound", err)
	}
	if plans, err := st.ListPlans(ctx); err != nil || len(plans) != 0 {
		t.Errorf("ListPlans of an empty store = %v, %v; want none", plans, err)
	}
	pro := planPro()
	if err := st.PutPlan(ctx, pro); err != nil {
		t.Fatalf("PutPlan: %v", err)
	}
	got, err := st.GetPlan(ctx, "pro")
	if err != nil {
		t.Fatalf("GetPlan: %v", err)
	}
	if diff := cmp.Diff(pro, got, invCmpOpts); diff != "" {
		t.Errorf("stored plan (-put +stored):\n%s", diff)
	}
	if !got.BaseFee.Equal(pro.BaseFee) || got.Prices[0].UnitPrice.String() != "0.000123456789012345" {
		t.Errorf("amounts changed: base fee %s, unit price %s", got.BaseFee, got.Prices[0].UnitPrice)
	}

	// PutPlan replaces the whole plan: fields left out of the new one are gone.
	lean := billing.Plan{ID: "pro", Name: "Pro 2", Quotas: []billing.QuotaRule{
		{Resource: "requests", Period: billing.PeriodHour, Limit: 7}}}
	if err := st.PutPlan(ctx, lean); err != nil {
		t.Fatalf("PutPlan (replace): %v", err)
	}
	got, err = st.GetPlan(ctx, "pro")
	if err != nil {
		t.Fatalf("GetPlan after replace: %v", err)
	}
	if diff := cmp.Diff(lean, got, invCmpOpts); diff != "" {
		t.Errorf("replaced plan (-put +stored):\n%s", diff)
	}

	// ListPlans orders by ID as Go compares strings (byte-wise): upper case before lower case.
	for _, id := range []string{"zeta", "Team", "free", "ünlimited", "enterprise"} {
		p := planPro()
		p.ID, p.Name = id, "plan "+id
		if err := st.PutPlan(ctx, p); err != nil {
			t.Fatalf("PutPlan(%s): %v", id, err)
		}
	}
	plans, err := st.ListPlans(ctx)
	if err != nil {
		t.Fatalf("ListPlans: %v", err)
	}
	var ids []string
	for _, p := range plans {
		ids = append(ids, p.ID)
		if p.ID != "pro" && (p.Name != "plan "+p.ID || !p.BaseFee.Equal(pro.BaseFee)) {
			t.Errorf("listed plan %s = %+v", p.ID, p)
		}
	}
	if want := []string{"Team", "enterprise", "free", "pro", "zeta", "ünlimited"}; !slices.Equal(ids, want) {
		t.Errorf("ListPlans IDs = %q, want %q", ids, want)
	}
	if _, err := st.GetPlan(ctx, "Pro"); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("GetPlan(\"Pro\") (IDs are case-sensitive): %v, want ErrNotFound", err)
	}
}

func testTenantUpdate(t *testing.T, st billing.Store) {
	ctx := context.Background()
	if _, err := st.GetTenant(ctx, "acme"); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("GetTenant of a missing tenant: %v, want ErrNotFound", err)
	}
	since := time.Date(2026, time.March, 3, 10, 20, 30, 123456789, time.UTC)
	calls := 0
	created, err := st.UpdateTenant(ctx, "acme", func(tn *billing.Tenant) error {
		calls++
		if diff := cmp.Diff(billing.Tenant{ID: "acme"}, *tn, cmpOpts); diff != "" {
			t.Errorf("UpdateTenant of a new tenant passed fn (-want +got):\n%s", diff)
		}
		tn.PlanID, tn.PlanSince, tn.AnchorDay, tn.Updated = "pro", since, 15, since
		tn.Quotas = []billing.QuotaRule{{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: 5, Hard: true}}
		tn.Rates = []billing.RatePolicy{{Resource: "requests", Limit: 10, Window: time.Second}}
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateTenant (create): %v", err)
	}
	if calls != 1 {
		t.Errorf("UpdateTenant called fn %d times without contention, want 1", calls)
	}
	want := billing.Tenant{ID: "acme", PlanID: "pro", PlanSince: since, AnchorDay: 15, Updated: since,
		Quotas: []billing.QuotaRule{{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: 5, Hard: true}},
		Rates:  []billing.RatePolicy{{Resource: "requests", Limit: 10, Window: time.Second}}}
	if diff := cmp.Diff(want, created, cmpOpts); diff != "" {
		t.Errorf("UpdateTenant result (-want +got):\n%s", diff)
	}
	got, err := st.GetTenant(ctx, "acme")
	if err != nil {
		t.Fatalf("GetTenant: %v", err)
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("stored tenant (-want +stored):\n%s", diff)
	}

	// fn sees the stored record; what it returns is stored whole, under the tenant's ID even if
	// fn changed the ID.
	later := since.Add(time.Hour)
	updated, err := st.UpdateTenant(ctx, "acme", func(tn *billing.Tenant) error {
		if diff := cmp.Diff(want, *tn, cmpOpts); diff != "" {
			t.Errorf("UpdateTenant passed fn (-stored +got):\n%s", diff)
		}
		tn.ID = "someone-else"
		tn.PlanID, tn.Quotas, tn.Updated = "", nil, later
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateTenant: %v", err)
	}
	want.PlanID, want.Quotas, want.Updated = "", nil, later
	if diff := cmp.Diff(want, updated, cmpOpts); diff != "" {
		t.Errorf("UpdateTenant result (-want +got):\n%s", diff)
	}
	if got, err := st.GetTenant(ctx, "acme"); err != nil {
		t.Fatalf("GetTenant: %v", err)
	} else if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("stored tenant after update (-want +stored):\n%s", diff)
	}
	if _, err := st.GetTenant(ctx, "someone-else"); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("fn's change of the ID created tenant someone-else: %v", err)
	}
	// Tenants are independent.
	if _, err := st.UpdateTenant(ctx, "globex", func(tn *billing.Tenant) error { tn.PlanID = "free"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := st.GetTenant(ctx, "acme"); err != nil || got.PlanID != "" {
		t.Errorf("acme after globex's update: %+v, %v", got, err)
	}
	if got, err := st.GetTenant(ctx, "globex"); err != nil || got.PlanID != "free" || got.ID != "globex" {
		t.Errorf("globex: %+v, %v", got, err)
	}
}

func testTenantAbort(t *testing.T, st billing.Store) {
	ctx := context.Background()
	errVeto := errors.New("vetoed by fn")
	// An error from fn is returned as is and creates nothing.
	_, err := st.UpdateTenant(ctx, "new", func(tn *billing.Tenant) error {
		tn.PlanID = "pro"
		return errVeto
	})
	if err != errVeto {
		t.Errorf("UpdateTenant with a failing fn (new tenant) = %v, want fn's error as is", err)
	}
	if _, err := st.GetTenant(ctx, "new"); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("GetTenant after an aborted creation: %v, want ErrNotFound", err)
	}
	if list, err := st.ListTenants(ctx, "", 0); err != nil || len(list) != 0 {
		t.Errorf("ListTenants after an aborted creation = %+v, %v; want none", list, err)
	}
	// ...and changes nothing of an existing record.
	before, err := st.UpdateTenant(ctx, "old", func(tn *billing.Tenant) error { tn.PlanID, tn.AnchorDay = "free", 3; return nil })
	if err != nil {
		t.Fatal(err)
	}
	wrapped := fmt.Errorf("plan check: %w", errVeto)
	_, err = st.UpdateTenant(ctx, "old", func(tn *billing.Tenant) error {
		tn.PlanID, tn.AnchorDay = "pro", 9
		return wrapped
	})
	if err != wrapped {
		t.Errorf("UpdateTenant with a failing fn = %v, want fn's error as is", err)
	}
	got, err := st.GetTenant(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, got, cmpOpts); diff != "" {
		t.Errorf("an aborted update changed the tenant (-before +after):\n%s", diff)
	}
	// The store still works for the tenant afterwards.
	if _, err := st.UpdateTenant(ctx, "new", func(tn *billing.Tenant) error { tn.PlanID = "pro"; return nil }); err != nil {
		t.Fatalf("UpdateTenant after an aborted one: %v", err)
	}
}

func testTenantConcurrent(t *testing.T, st billing.Store) {
	ctx := context.Background()
	const workers = 50
	// Every worker adds its own rule to one tenant created by the race itself, and bumps a
	// counter of another existing tenant: an update lost to a concurrent one shows as a missing
	// rule or a low count.
	if _, err := st.UpdateTenant(ctx, "counter", func(tn *billing.Tenant) error { return nil }); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			<-start
			res := fmt.Sprintf("r%02d", w)
			if _, err := st.UpdateTenant(ctx, "hot", func(tn *billing.Tenant) error {
				tn.Quotas = append(tn.Quotas, billing.QuotaRule{Tenant: "hot", Resource: res, Period: billing.PeriodDay, Limit: int64(w + 1)})
				return nil
			}); err != nil {
				t.Errorf("UpdateTenant(hot) by worker %d: %v", w, err)
			}
			if _, err := st.UpdateTenant(ctx, "counter", func(tn *billing.Tenant) error {
				tn.AnchorDay++
				return nil
			}); err != nil {
				t.Errorf("UpdateTenant(counter) by worker %d: %v", w, err)
			}
		})
	}
	close(start)
	wg.Wait()
	hot, err := st.GetTenant(ctx, "hot")
	if err != nil {
		t.Fatalf("GetTenant(hot): %v", err)
	}
	var got []string
	for _, q := range hot.Quotas {
		got = append(got, q.Resource)
	}
	slices.Sort(got)
	var want []string
	for w := range workers {
		want = append(want, fmt.Sprintf("r%02d", w))
	}
	if !slices.Equal(got, want) {
		t.Errorf("after %d concurrent updates the tenant has %d rules (lost updates):\ngot  %v\nwant %v", workers, len(got), got, want)
	}
	counter, err := st.GetTenant(ctx, "counter")
	if err != nil {
		t.Fatalf("GetTenant(counter): %v", err)
	}
	if counter.AnchorDay != workers {
		t.Errorf("after %d concurrent increments the counter is %d (lost updates)", workers, counter.AnchorDay)
	}
}

func testTenantList(t *testing.T, st billing.Store) {
	ctx := context.Background()
	if list, err := st.ListTenants(ctx, "", 0); err != nil || len(list) != 0 {
		t.Errorf("ListTenants of an empty store = %+v, %v; want none", list, err)
	}
	var ids []string
	for i := range 25 {
		ids = append(ids, fmt.Sprintf("t%02d", i))
	}
	// Byte-wise order, like Go strings: upper case, then lower case, then non-ASCII.
	ids = append(ids, "Zed", "t05-x", "ñandú")
	slices.Sort(ids)
	shuffled := slices.Clone(ids)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, id := range shuffled {
		if _, err := st.UpdateTenant(ctx, id, func(tn *billing.Tenant) error { tn.PlanID = "plan-" + id; return nil }); err != nil {
			t.Fatalf("UpdateTenant(%s): %v", id, err)
		}
	}
	list := func(after string, limit int) []string {
		t.Helper()
		ts, err := st.ListTenants(ctx, after, limit)
		if err != nil {
			t.Fatalf("ListTenants(%q, %d): %v", after, limit, err)
		}
		var out []string
		for _, tn := range ts {
			if tn.PlanID != "plan-"+tn.ID {
				t.Errorf("listed tenant %s has plan %q, want plan-%s", tn.ID, tn.PlanID, tn.ID)
			}
			out = append(out, tn.ID)
		}
		return out
	}
	if got := list("", 0); !slices.Equal(got, ids) {
		t.Errorf("ListTenants(\"\", 0) = %q\nwant %q", got, ids)
	}
	// Paging: each page starts after the last ID of the one before.
	var paged []string
	after := ""
	for range len(ids) {
		page := list(after, 10)
		if len(page) > 10 {
			t.Fatalf("ListTenants(%q, 10) returned %d tenants", after, len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1]
	}
	if !slices.Equal(paged, ids) {
		t.Errorf("ListTenants page by page = %q\nwant %q", paged, ids)
	}
	for _, tc := range []struct {
		after string
		limit int
		want  []string
	}{
		{"t05", 3, []string{"t05-x", "t06", "t07"}},
		{"t05-", 2, []string{"t05-x", "t06"}}, // after need not be an ID
		{"t23", 0, []string{"t24", "ñandú"}},
		{"ñandú", 5, nil},
		{"", 1, []string{"Zed"}},
		{"Zed", 1, []string{"t00"}},
	} {
		if got := list(tc.after, tc.limit); !slices.Equal(got, tc.want) {
			t.Errorf("ListTenants(%q, %d) = %q, want %q", tc.after, tc.limit, got, tc.want)
		}
	}
}
