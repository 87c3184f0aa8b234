package billing_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
)

// Shared helpers of the invoice tests (invoicer_test.go, invoice_lifecycle_test.go,
// invoice_property_test.go, payment_test.go, invoice_bench_test.go) are prefixed "inv".

// invClock is a settable clock for Config.Now, safe for concurrent use (Run reads it from its
// own goroutine while the test moves it).
type invClock struct {
	mu  sync.Mutex
	now time.Time
}

func invNewClock(t time.Time) *invClock { return &invClock{now: t} }

func (c *invClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *invClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// invFeb is February 2026 in UTC, the invoice period of most tests; invInGrace is an instant
// within the default one-hour grace after it, when February's late events are still accepted.
var (
	invFeb     = billing.MonthOf(time.Date(2026, time.February, 10, 0, 0, 0, 0, time.UTC), time.UTC)
	invInGrace = invFeb.End.Add(10 * time.Minute)
)

// invD parses a decimal literal.
func invD(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// invAt is an instant of February 2026 (UTC).
func invAt(day, hour, min int) time.Time {
	return time.Date(2026, time.February, day, hour, min, 0, 0, time.UTC)
}

// invMeter builds a Meter (newMeter) whose clock is the returned invClock, starting at now.
func invMeter(t testing.TB, cfg billing.Config, now time.Time) (*billing.Meter, *invClock) {
	t.Helper()
	clock := invNewClock(now)
	cfg.Now = clock.Now
	return newMeter(t, cfg), clock
}

// invSetPlan stores plan and assigns it to tenants.
func invSetPlan(t testing.TB, m *billing.Meter, plan billing.Plan, tenants ...string) {
	t.Helper()
	ctx := context.Background()
	if err := m.SetPlan(ctx, plan); err != nil {
		t.Fatalf("SetPlan(%s): %v", plan.ID, err)
	}
	for _, tenant := range tenants {
		if err := m.AssignPlan(ctx, tenant, plan.ID); err != nil {
			t.Fatalf("AssignPlan(%s, %s): %v", tenant, plan.ID, err)
		}
	}
}

// invTrack tracks events and fails the test on error.
func invTrack(t testing.TB, m *billing.Meter, events ...billing.Event) {
	t.Helper()
	if err := m.Track(context.Background(), events...); err != nil {
		t.Fatalf("Track: %v", err)
	}
}

// invEv is an event of tenant acme; attrs are key, value pairs.
func invEv(resource string, qty int64, at time.Time, attrs ...string) billing.Event {
	e := billing.Event{Tenant: "acme", Resource: resource, Quantity: qty, Time: at}
	if len(attrs) > 0 {
		e.Attrs = map[string]string{}
		for i := 0; i+1 < len(attrs); i += 2 {
			e.Attrs[attrs[i]] = attrs[i+1]
		}
	}
	return e
}

// invLine is what a test checks of an invoice line: everything but the tier breakdown (checked
// against Exact by invCheck) and, for minimum lines, the description.
type invLine struct {
	Kind        billing.LineKind
	Description string
	Resource    string
	Match       map[string]string
	Quantity    int64
	Included    int64
	Billable    int64
	Amount      decimal.Decimal
}

func invLines(inv *billing.Invoice) []invLine {
	out := make([]invLine, len(inv.Lines))
	for i, l := range inv.Lines {
		out[i] = invLine{Kind: l.Kind, Description: l.Description, Resource: l.Resource, Match: l.Match,
			Quantity: l.Quantity, Included: l.Included, Billable: l.Billable, Amount: l.Amount}
		if l.Kind == billing.LineMinimum {
			out[i].Description = ""
		}
	}
	return out
}

// invCmp compares decimals by value (1.50 equals 1.5), times by instant, and nil like empty.
var invCmp = cmp.Options{
	cmp.Comparer(func(a, b decimal.Decimal) bool { return a.Equal(b) }),
	cmpopts.EquateEmpty(),
}

// invDigits are the minor units of the currencies the tests use, written out here rather than
// taken from the code under test.
var invDigits = map[string]int32{"USD": 2, "EUR": 2, "JPY": 0, "BHD": 3, "KWD": 3}

// invCheck checks what must hold of every invoice: each line's Amount is its Exact rounded half
// up to the currency's minor unit, a usage line's quantity splits into included and billable
// units and its tiers add up to its Exact and cover its billable units, the subtotal is the sum
// of the rounded lines, and the total equals it.
func invCheck(t testing.TB, inv *billing.Invoice) {
	t.Helper()
	digits, ok := invDigits[inv.Currency]
	if !ok {
		t.Fatalf("invoice %s: currency %q not in invDigits", inv.ID, inv.Currency)
	}
	sum := decimal.Zero
	for i, l := range inv.Lines {
		if want := l.Exact.Round(digits); !l.Amount.Equal(want) {
			t.Errorf("invoice %s line %d (%s): amount %s, want exact %s rounded to %d places = %s",
				inv.ID, i, l.Description, l.Amount, l.Exact, digits, want)
		}
		if l.Description == "" {
			t.Errorf("invoice %s line %d: empty description", inv.ID, i)
		}
		sum = sum.Add(l.Amount)
		if l.Kind != billing.LineUsage {
			continue
		}
		if l.Included+l.Billable != l.Quantity || l.Included < 0 || l.Billable < 0 {
			t.Errorf("invoice %s line %d (%s): quantity %d != included %d + billable %d",
				inv.ID, i, l.Description, l.Quantity, l.Included, l.Billable)
		}
		tiers := decimal.Zero
		for _, tc := range l.Tiers {
			tiers = tiers.Add(tc.Amount)
		}
		if !tiers.Equal(l.Exact) {
			t.Errorf("invoice %s line %d (%s): tiers add up to %s, exact is %s", inv.ID, i, l.Description, tiers, l.Exact)
		}
		if n := len(l.Tiers); l.Billable > 0 && (n == 0 || l.Tiers[n-1].Last != l.Billable) {
			t.Errorf("invoice %s line %d (%s): tiers %+v do not end at billable unit %d", inv.ID, i, l.Description, l.Tiers, l.Billable)
		}
	}
	if !inv.Subtotal.Equal(sum) {
		t.Errorf("invoice %s: subtotal %s, want the sum of the rounded lines %s", inv.ID, inv.Subtotal, sum)
	}
	if !inv.Total.Equal(inv.Subtotal) {
		t.Errorf("invoice %s: total %s != subtotal %s", inv.ID, inv.Total, inv.Subtotal)
	}
}

// invPublished are the tiers of the published case: 1-5 at 7.00, 6-10 at 6.50, 11+ at 6.00.
func invPublished() []billing.Tier {
	return []billing.Tier{{UpTo: 5, UnitPrice: invD("7")}, {UpTo: 10, UnitPrice: invD("6.50")}, {UnitPrice: invD("6")}}
}

func TestInvoicerAmounts(t *testing.T) {
	usage := func(resource string, match map[string]string, qty, included int64, amount string) invLine {
		desc := resource
		if len(match) > 0 {
			desc = resource + " ("
			first := true
			for _, k := range []string{"model", "region"} { // the keys these cases use, in order
				if v, ok := match[k]; ok {
					if !first {
						desc += ", "
					}
					desc += k + "=" + v
					first = false
				}
			}
			desc += ")"
		}
		inc := min(included, qty)
		return invLine{Kind: billing.LineUsage, Description: desc, Resource: resource, Match: match, Quantity: qty,
			Included: inc, Billable: qty - inc, Amount: invD(amount)}
	}
	gpt4o := map[string]string{"model": "gpt-4o"}
	cases := []struct {
		name         string
		plan         billing.Plan
		events       []billing.Event
		want         []invLine
		subtotal     string
		wantMinimum  bool
		descriptions map[int]string // overrides of want[i].Description
	}{
		{
			name: "per-model price before a catch-all",
			plan: billing.Plan{ID: "p", Currency: "USD", Prices: []billing.Price{
				{Resource: "tokens.output", Match: gpt4o, Model: billing.PerUnit, UnitPrice: invD("0.00001")},
				{Resource: "tokens.output", Model: billing.PerUnit, UnitPrice: invD("0.000002")},
				{Resource: "tokens.input", Model: billing.PerUnit, UnitPrice: invD("0.0000025")},
			}},
			events: []billing.Event{
				invEv("tokens.output", 600_000, invAt(3, 10, 0), "model", "gpt-4o"),
				invEv("tokens.output", 400_000, invAt(27, 23, 59), "model", "gpt-4o"),
				invEv("tokens.output", 100_000, invAt(5, 0, 0), "model", "gpt-4o", "region", "eu"), // extra keys still match
				invEv("tokens.output", 500_000, invAt(6, 0, 0), "model", "gpt-4o-mini"),
				invEv("tokens.output", 250_000, invAt(7, 0, 0)),
				invEv("tokens.input", 1_234_567, invAt(8, 0, 0), "model", "gpt-4o"),
			},
			want: []invLine{
				usage("tokens.output", gpt4o, 1_100_000, 0, "11.00"), // 1.1M x 0.00001
				usage("tokens.output", nil, 750_000, 0, "1.50"),      // 750k x 0.000002
				usage("tokens.input", nil, 1_234_567, 0, "3.09"),     // 3.0864175
			},
			subtotal: "15.59",
		},
		{
			name: "included units",
			plan: billing.Plan{ID: "p", Currency: "USD", Prices: []billing.Price{
				{Resource: "requests", Model: billing.PerUnit, UnitPrice: invD("0.01"), Included: 1000},
				{Resource: "messages", Model: billing.PerUnit, UnitPrice: invD("0.05"), Included: 100},
				{Resource: "seats", Model: billing.Graduated, Tiers: invPublished(), Included: 3},
			}},
			events: []billing.Event{
				invEv("requests", 1500, invAt(1, 0, 0)),
				invEv("messages", 40, invAt(2, 0, 0)),
				invEv("seats", 15, invAt(2, 0, 0)), // 12 billable: 5 x 7 + 5 x 6.50 + 2 x 6
			},
			want: []invLine{
				usage("requests", nil, 1500, 1000, "5.00"),
				usage("messages", nil, 40, 100, "0.00"),
				usage("seats", nil, 15, 3, "79.50"),
			},
			subtotal: "84.50",
		},
		{
			name: "the published case and tier boundaries",
			plan: billing.Plan{ID: "p", Currency: "USD", Prices: []billing.Price{
				{Resource: "graduated", Model: billing.Graduated, Tiers: invPublished()},
				{Resource: "volume", Model: billing.Volume, Tiers: invPublished()},
				{Resource: "graduated.at5", Model: billing.Graduated, Tiers: invPublished()},
				{Resource: "volume.at10", Model: billing.Volume, Tiers: invPublished()},
				{Resource: "volume.at11", Model: billing.Volume, Tiers: invPublished()},
				{Resource: "flat", Model: billing.Graduated, Tiers: []billing.Tier{
					{UpTo: 100, FlatPrice: invD("10")}, {UnitPrice: invD("0.10"), FlatPrice: invD("5")}}},
				{Resource: "packages", Model: billing.Package, UnitPrice: invD("2.50"), PackageSize: 1000},
			}},
			events: []billing.Event{
				invEv("graduated", 7, invAt(1, 0, 0)), invEv("graduated", 5, invAt(28, 23, 0)),
				invEv("volume", 12, invAt(14, 12, 0)),
				invEv("graduated.at5", 5, invAt(14, 12, 0)),
				invEv("volume.at10", 10, invAt(14, 12, 0)),
				invEv("volume.at11", 11, invAt(14, 12, 0)),
				invEv("flat", 150, invAt(14, 12, 0)),
				invEv("packages", 2001, invAt(14, 12, 0)),
			},
			want: []invLine{
				usage("graduated", nil, 12, 0, "79.50"),
				usage("volume", nil, 12, 0, "72.00"),
				usage("graduated.at5", nil, 5, 0, "35.00"), // exactly at up_to: the first tier only
				usage("volume.at10", nil, 10, 0, "65.00"),  // 10 x 6.50
				usage("volume.at11", nil, 11, 0, "66.00"),  // 11 x 6
				usage("flat", nil, 150, 0, "20.00"),        // 10 flat + 50 x 0.10 + 5 flat
				usage("packages", nil, 2001, 0, "7.50"),    // 3 started packages
			},
			subtotal: "345.00",
		},
		{
			name: "zero usage lines and a base fee",
			plan: billing.Plan{ID: "p", Name: "Pro", Currency: "USD", BaseFee: invD("29"), Prices: []billing.Price{
				{Resource: "requests", Model: billing.PerUnit, UnitPrice: invD("0.01"), Description: "API requests"},
				{Resource: "seats", Model: billing.Volume, Tiers: []billing.Tier{{UpTo: 1, FlatPrice: invD("99")}, {UnitPrice: invD("1")}}},
			}},
			want: []invLine{
				usage("requests", nil, 0, 0, "0"),
				usage("seats", nil, 0, 0, "0"), // no usage reaches no tier: no flat fee
				{Kind: billing.LineBaseFee, Description: "Base fee (Pro)", Amount: invD("29.00")},
			},
			descriptions: map[int]string{0: "API requests"},
			subtotal:     "29.00",
		},
		{
			name: "minimum commitment true-up",
			plan: billing.Plan{ID: "p", Currency: "USD", BaseFee: invD("10"), Minimum: invD("50"), Prices: []billing.Price{
				{Resource: "requests", Model: billing.PerUnit, UnitPrice: invD("0.01")},
			}},
			events: []billing.Event{invEv("requests", 1150, invAt(10, 0, 0))},
			want: []invLine{
				usage("requests", nil, 1150, 0, "11.50"),
				{Kind: billing.LineBaseFee, Description: "Base fee (p)", Amount: invD("10.00")},
				{Kind: billing.LineMinimum, Amount: invD("38.50")}, // 50 - 11.50 of usage (the base fee is not usage)
			},
			wantMinimum: true,
			subtotal:    "60.00",
		},
		{
			name: "no true-up when usage exceeds the minimum",
			plan: billing.Plan{ID: "p", Currency: "USD", Minimum: invD("5"), Prices: []billing.Price{
				{Resource: "requests", Model: billing.PerUnit, UnitPrice: invD("0.01")},
			}},
			events:   []billing.Event{invEv("requests", 1150, invAt(10, 0, 0))},
			want:     []invLine{usage("requests", nil, 1150, 0, "11.50")},
			subtotal: "11.50",
		},
		{
			name: "no true-up when usage equals the minimum",
			plan: billing.Plan{ID: "p", Currency: "USD", Minimum: invD("11.5"), Prices: []billing.Price{
				{Resource: "requests", Model: billing.PerUnit, UnitPrice: invD("0.01")},
			}},
			events:   []billing.Event{invEv("requests", 1150, invAt(10, 0, 0))},
			want:     []invLine{usage("requests", nil, 1150, 0, "11.50")},
			subtotal: "11.50",
		},
		{
			name: "USD rounds each line half up",
			plan: billing.Plan{ID: "p", Currency: "USD", Prices: []billing.Price{
				{Resource: "a", Model: billing.PerUnit, UnitPrice: invD("0.0125")},
				{Resource: "b", Model: billing.PerUnit, UnitPrice: invD("0.0115")},
				{Resource: "c", Model: billing.PerUnit, UnitPrice: invD("0.001")},
			}},
			events: []billing.Event{
				invEv("a", 10, invAt(1, 0, 0)), // 0.125 -> 0.13 (not 0.12, as banker's rounding would give)
				invEv("b", 10, invAt(1, 0, 0)), // 0.115 -> 0.12
				invEv("c", 4, invAt(1, 0, 0)),  // 0.004 -> 0.00
			},
			want:     []invLine{usage("a", nil, 10, 0, "0.13"), usage("b", nil, 10, 0, "0.12"), usage("c", nil, 4, 0, "0.00")},
			subtotal: "0.25", // the sum of rounded lines; the exact sum 0.244 would round to 0.24
		},
		{
			name: "JPY has no minor unit",
			plan: billing.Plan{ID: "p", Currency: "JPY", BaseFee: invD("980.5"), Prices: []billing.Price{
				{Resource: "a", Model: billing.PerUnit, UnitPrice: invD("0.5")},
				{Resource: "b", Model: billing.PerUnit, UnitPrice: invD("0.5")},
				{Resource: "c", Model: billing.PerUnit, UnitPrice: invD("0.3")},
			}},
			events: []billing.Event{
				invEv("a", 3, invAt(1, 0, 0)), // 1.5 -> 2
				invEv("b", 3, invAt(1, 0, 0)), // 1.5 -> 2
				invEv("c", 7, invAt(1, 0, 0)), // 2.1 -> 2
			},
			want: []invLine{
				usage("a", nil, 3, 0, "2"), usage("b", nil, 3, 0, "2"), usage("c", nil, 7, 0, "2"),
				{Kind: billing.LineBaseFee, Description: "Base fee (p)", Amount: invD("981")},
			},
			subtotal: "987", // 2 + 2 + 2 + 981; the exact sum 985.6 would round to 986
		},
		{
			name: "BHD has three decimal places",
			plan: billing.Plan{ID: "p", Currency: "BHD", Minimum: invD("1.0104"), Prices: []billing.Price{
				{Resource: "a", Model: billing.PerUnit, UnitPrice: invD("0.0005")},
				{Resource: "b", Model: billing.PerUnit, UnitPrice: invD("0.0005")},
				{Resource: "c", Model: billing.PerUnit, UnitPrice: invD("1.0005")},
			}},
			events: []billing.Event{
				invEv("a", 3, invAt(1, 0, 0)), // 0.0015 -> 0.002
				invEv("b", 3, invAt(1, 0, 0)), // 0.0015 -> 0.002
				invEv("c", 1, invAt(1, 0, 0)), // 1.0005 -> 1.001
			},
			want: []invLine{
				usage("a", nil, 3, 0, "0.002"), usage("b", nil, 3, 0, "0.002"), usage("c", nil, 1, 0, "1.001"),
				{Kind: billing.LineMinimum, Amount: invD("0.005")}, // 1.0104 - 1.005 = 0.0054 -> 0.005
			},
			wantMinimum: true,
			subtotal:    "1.010",
		},
		{
			name: "unpriced usage is free",
			plan: billing.Plan{ID: "p", Currency: "EUR", Prices: []billing.Price{
				{Resource: "requests", Model: billing.PerUnit, UnitPrice: invD("0.01")},
				{Resource: "tokens.output", Match: map[string]string{"model": "claude"}, Model: billing.PerUnit, UnitPrice: invD("1")},
			}},
			events: []billing.Event{
				invEv("requests", 100, invAt(1, 0, 0)),
				invEv("storage.bytes", 1_000_000_000, invAt(1, 0, 0)),           // no price for the resource
				invEv("tokens.output", 5000, invAt(1, 0, 0), "model", "gpt-4o"), // no price matches the model
				invEv("tokens.output", 5000, invAt(1, 0, 0)),                    // nor usage without a model
			},
			want: []invLine{
				usage("requests", nil, 100, 0, "1.00"),
				usage("tokens.output", map[string]string{"model": "claude"}, 0, 0, "0"),
			},
			subtotal: "1.00",
		},
		{
			name: "only usage inside the span",
			plan: billing.Plan{ID: "p", Currency: "USD", Prices: []billing.Price{
				{Resource: "requests", Model: billing.PerUnit, UnitPrice: invD("1")},
			}},
			events: []billing.Event{
				invEv("requests", 1, invFeb.Start.Add(-time.Nanosecond)), // January
				invEv("requests", 10, invFeb.Start),                      // first instant of February
				invEv("requests", 100, invFeb.End.Add(-time.Nanosecond)), // last instant of February
				invEv("requests", 1000, invFeb.End),                      // March
			},
			want:     []invLine{usage("requests", nil, 110, 0, "110.00")},
			subtotal: "110.00",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			m, _ := invMeter(t, billing.Config{}, invInGrace)
			invSetPlan(t, m, tc.plan, "acme")
			if len(tc.events) > 0 {
				invTrack(t, m, tc.events...)
			}
			inv, err := m.GenerateInvoice(ctx, "acme", invFeb)
			if err != nil {
				t.Fatalf("GenerateInvoice: %v", err)
			}
			for i, d := range tc.descriptions {
				tc.want[i].Description = d
			}
			if diff := cmp.Diff(tc.want, invLines(inv), invCmp); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			if !inv.Subtotal.Equal(invD(tc.subtotal)) || !inv.Total.Equal(invD(tc.subtotal)) {
				t.Errorf("subtotal %s, total %s, want %s", inv.Subtotal, inv.Total, tc.subtotal)
			}
			invCheck(t, inv)
			for _, l := range inv.Lines {
				if l.Kind == billing.LineMinimum && !strings.HasPrefix(l.Description, "Minimum commitment") {
					t.Errorf("minimum line described %q", l.Description)
				}
			}
			if inv.Status != billing.InvoiceDraft || inv.Number != "" || inv.ID == "" || inv.Tenant != "acme" ||
				inv.PlanID != "p" || inv.Currency != tc.plan.Currency || !inv.Start.Equal(invFeb.Start) ||
				!inv.End.Equal(invFeb.End) || !inv.Created.Equal(invInGrace) {
				t.Errorf("draft header: %+v", inv)
			}
			// The stored draft is what GenerateInvoice returned.
			stored, err := m.Invoice(ctx, inv.ID)
			if err != nil {
				t.Fatalf("Invoice(%s): %v", inv.ID, err)
			}
			if diff := cmp.Diff(inv, stored, invCmp); diff != "" {
				t.Errorf("stored draft differs from the returned one (-returned +stored):\n%s", diff)
			}
		})
	}
}

// TestInvoicerTierBreakdown checks the explanation a graduated line carries, tier by tier.
func TestInvoicerTierBreakdown(t *testing.T) {
	m, _ := invMeter(t, billing.Config{}, invInGrace)
	invSetPlan(t, m, billing.Plan{ID: "p", Currency: "USD", Prices: []billing.Price{
		{Resource: "seats", Model: billing.Graduated, Tiers: invPublished(), Included: 3},
	}}, "acme")
	invTrack(t, m, invEv("seats", 15, invAt(2, 0, 0)))
	inv, err := m.GenerateInvoice(context.Background(), "acme", invFeb)
	if err != nil {
		t.Fatal(err)
	}
	want := []billing.TierCharge{
		{Tier: 0, First: 1, Last: 5, Units: 5, UnitPrice: invD("7"), Amount: invD("35")},
		{Tier: 1, First: 6, Last: 10, Units: 5, UnitPrice: invD("6.5"), Amount: invD("32.5")},
		{Tier: 2, First: 11, Last: 12, Units: 2, UnitPrice: invD("6"), Amount: invD("12")},
	}
	if diff := cmp.Diff(want, inv.Lines[0].Tiers, invCmp); diff != "" {
		t.Errorf("tiers (-want +got):\n%s", diff)
	}
	if l := inv.Lines[0]; !l.Exact.Equal(invD("79.5")) || l.Model != billing.Graduated {
		t.Errorf("line %+v", l)
	}
}

func TestInvoicerPlans(t *testing.T) {
	ctx := context.Background()
	basic := billing.Plan{ID: "basic", Currency: "USD", Prices: []billing.Price{
		{Resource: "requests", Model: billing.PerUnit, UnitPrice: invD("0.01")}}}
	pro := billing.Plan{ID: "pro", Currency: "EUR", BaseFee: invD("20"), Prices: []billing.Price{
		{Resource: "requests", Model: billing.PerUnit, UnitPrice: invD("0.02")}}}

	t.Run("no plan", func(t *testing.T) {
		m, _ := invMeter(t, billing.Config{}, invInGrace)
		invSetPlan(t, m, basic) // exists, but nobody is on it
		invTrack(t, m, invEv("requests", 5, invAt(1, 0, 0)))
		for _, tenant := range []string{"acme", "never-seen"} {
			_, err := m.GenerateInvoice(ctx, tenant, invFeb)
			if !errors.Is(err, billing.ErrNotFound) {
				t.Errorf("GenerateInvoice(%s) without a plan: %v, want ErrNotFound", tenant, err)
			} else if !strings.Contains(err.Error(), "DefaultPlan") {
				t.Errorf("error %q does not suggest a fix", err)
			}
		}
		if invs, err := m.Invoices(ctx, billing.InvoiceQuery{}); err != nil || len(invs) != 0 {
			t.Errorf("Invoices = %d, %v; want none stored", len(invs), err)
		}
	})

	t.Run("DefaultPlan", func(t *testing.T) {
		m, _ := invMeter(t, billing.Config{DefaultPlan: "basic"}, invInGrace)
		invSetPlan(t, m, basic)
		invSetPlan(t, m, pro, "globex")
		ev := invEv("requests", 100, invAt(1, 0, 0))
		ev2 := ev
		ev2.Tenant = "globex"
		invTrack(t, m, ev, ev2)
		acme, err := m.GenerateInvoice(ctx, "acme", invFeb)
		if err != nil {
			t.Fatal(err)
		}
		globex, err := m.GenerateInvoice(ctx, "globex", invFeb)
		if err != nil {
			t.Fatal(err)
		}
		if acme.PlanID != "basic" || acme.Currency != "USD" || !acme.Total.Equal(invD("1")) {
			t.Errorf("acme (default plan): plan %s, %s %s; want basic, USD 1.00", acme.PlanID, acme.Currency, acme.Total)
		}
		if globex.PlanID != "pro" || globex.Currency != "EUR" || !globex.Total.Equal(invD("22")) {
			t.Errorf("globex (assigned pro): plan %s, %s %s; want pro, EUR 22.00", globex.PlanID, globex.Currency, globex.Total)
		}
		// A tenant without usage on the default plan still gets an invoice (of zero usage).
		idle, err := m.GenerateInvoice(ctx, "idle", invFeb)
		if err != nil || !idle.Total.IsZero() || len(idle.Lines) != 1 || idle.Lines[0].Quantity != 0 {
			t.Errorf("idle tenant: %+v, %v", idle, err)
		}
	})

	t.Run("bad tenant", func(t *testing.T) {
		m, _ := invMeter(t, billing.Config{DefaultPlan: "basic"}, invInGrace)
		invSetPlan(t, m, basic)
		_, err := m.GenerateInvoice(ctx, "", invFeb)
		requireFieldError(t, err, billing.ErrInvalidConfig, "tenant", "required")
	})
}

func TestInvoicerSpans(t *testing.T) {
	ctx := context.Background()
	kolkata, err := time.LoadLocation("Asia/Kolkata") // UTC+5:30: its whole hours are at :30 UTC
	if err != nil {
		t.Fatal(err)
	}
	plan := billing.Plan{ID: "p", Currency: "USD", Prices: []billing.Price{
		{Resource: "requests", Model: billing.PerUnit, UnitPrice: invD("1")}}}

	t.Run("refused", func(t *testing.T) {
		m, _ := invMeter(t, billing.Config{DefaultPlan: "p"}, invInGrace)
		invSetPlan(t, m, plan)
		half := 30 * time.Minute
		for _, tc := range []struct {
			name  string
			span  billing.Span
			field string
			rule  string
		}{
			{"start off the hour", billing.Span{Start: invFeb.Start.Add(half), End: invFeb.End}, "span.start", "whole hour"},
			{"end off the hour", billing.Span{Start: invFeb.Start, End: invFeb.End.Add(-time.Second)}, "span.end", "whole hour"},
			{"start after end", billing.Span{Start: invFeb.End, End: invFeb.Start}, "span", "start before its end"},
			{"empty", billing.Span{Start: invFeb.Start, End: invFeb.Start}, "span", "start before its end"},
			{"zero", billing.Span{}, "span", "start before its end"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := m.GenerateInvoice(ctx, "acme", tc.span)
				requireFieldError(t, err, billing.ErrInvalidQuery, tc.field, tc.rule)
				_, err = m.GenerateInvoices(ctx, tc.span)
				requireFieldError(t, err, billing.ErrInvalidQuery, tc.field, tc.rule)
			})
		}
		if invs, _ := m.Invoices(ctx, billing.InvoiceQuery{}); len(invs) != 0 {
			t.Errorf("%d invoices stored after refused spans", len(invs))
		}
	})

	t.Run("whole hours of the location", func(t *testing.T) {
		m, _ := invMeter(t, billing.Config{DefaultPlan: "p", Location: kolkata}, invInGrace)
		invSetPlan(t, m, plan)
		month := billing.MonthOf(invAt(10, 0, 0), kolkata) // Jan 31 18:30Z to Feb 28 18:30Z
		invTrack(t, m,
			invEv("requests", 1, month.Start.Add(-time.Nanosecond)),
			invEv("requests", 10, month.Start),
			invEv("requests", 100, month.End.Add(-time.Nanosecond)),
			invEv("requests", 1000, month.End))
		inv, err := m.GenerateInvoice(ctx, "acme", month)
		if err != nil {
			t.Fatal(err)
		}
		if q := inv.Lines[0].Quantity; q != 110 {
			t.Errorf("Kolkata February: quantity %d, want 110", q)
		}
		// A UTC month is not on Kolkata's whole hours.
		_, err = m.GenerateInvoice(ctx, "acme", invFeb)
		requireFieldError(t, err, billing.ErrInvalidQuery, "span.start", "whole hour")
		// A span of whole hours, not days: usage is summed from hour buckets.
		hours := billing.Span{Start: month.End.Add(-2 * time.Hour), End: month.End.Add(time.Hour)}
		inv, err = m.GenerateInvoice(ctx, "acme", hours)
		if err != nil {
			t.Fatal(err)
		}
		if q := inv.Lines[0].Quantity; q != 1100 {
			t.Errorf("three hours around the month's end: quantity %d, want 1100", q)
		}
	})
}

func TestInvoicerAnchoredCycle(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, time.March, 15, 0, 30, 0, 0, time.UTC)
	m, _ := invMeter(t, billing.Config{}, now)
	invSetPlan(t, m, billing.Plan{ID: "p", Currency: "USD", Prices: []billing.Price{
		{Resource: "requests", Model: billing.PerUnit, UnitPrice: invD("1")}}}, "acme", "calendar", "late")
	if err := m.SetAnchorDay(ctx, "acme", 15); err != nil {
		t.Fatal(err)
	}
	if err := m.SetAnchorDay(ctx, "late", 31); err != nil {
		t.Fatal(err)
	}
	mar15 := time.Date(2026, time.March, 15, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		tenant string
		at     time.Time
		want   billing.Span
	}{
		{"acme", invAt(20, 10, 0), billing.Span{Start: invAt(15, 0, 0), End: mar15}},
		{"acme", invAt(15, 0, 0), billing.Span{Start: invAt(15, 0, 0), End: mar15}},
		{"acme", invAt(14, 23, 0), billing.Span{Start: time.Date(2026, time.January, 15, 0, 0, 0, 0, time.UTC), End: invAt(15, 0, 0)}},
		{"calendar", invAt(20, 10, 0), invFeb},
		{"never-seen", invAt(20, 10, 0), invFeb},
		// An anchor past the month's end starts the cycle on its last day.
		{"late", invAt(10, 0, 0), billing.Span{Start: time.Date(2026, time.January, 31, 0, 0, 0, 0, time.UTC), End: invAt(28, 0, 0)}},
		{"late", invAt(28, 0, 0), billing.Span{Start: invAt(28, 0, 0), End: time.Date(2026, time.March, 31, 0, 0, 0, 0, time.UTC)}},
	} {
		got, err := m.BillingCycle(ctx, tc.tenant, tc.at)
		if err != nil {
			t.Fatalf("BillingCycle(%s, %s): %v", tc.tenant, tc.at, err)
		}
		if !got.Equal(tc.want) {
			t.Errorf("BillingCycle(%s, %s) = %s, want %s", tc.tenant, tc.at.Format(time.RFC3339), got, tc.want)
		}
	}
	cycle, _ := m.BillingCycle(ctx, "acme", invAt(20, 10, 0))
	invTrack(t, m,
		invEv("requests", 1, cycle.Start.Add(-time.Nanosecond)),
		invEv("requests", 10, cycle.Start),
		invEv("requests", 100, invAt(28, 23, 0)),
		invEv("requests", 1000, cycle.End.Add(-time.Minute)),
		invEv("requests", 10000, cycle.End),
	)
	inv, err := m.GenerateInvoice(ctx, "acme", cycle)
	if err != nil {
		t.Fatal(err)
	}
	if q := inv.Lines[0].Quantity; q != 1110 || !inv.Start.Equal(cycle.Start) || !inv.End.Equal(cycle.End) {
		t.Errorf("anchored cycle %s: quantity %d over %s/%s, want 1110", cycle, q, inv.Start, inv.End)
	}
	invCheck(t, inv)
}
