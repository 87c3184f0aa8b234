package billing_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
)

// dec parses a decimal literal of a test.
func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// publishedTiers are the tiers of the published case: units 1-5 at 7.00, 6-10 at 6.50, 11 and
// up at 6.00.
func publishedTiers() []billing.Tier {
	return []billing.Tier{
		{UpTo: 5, UnitPrice: dec("7.00")},
		{UpTo: 10, UnitPrice: dec("6.50")},
		{UpTo: 0, UnitPrice: dec("6.00")},
	}
}

// flatTiers have a flat fee on every tier: 1-10 at 1 + 5 flat, 11-20 at 0.5 + 3 flat, 21 and up
// at 0.1 + 2 flat.
func flatTiers() []billing.Tier {
	return []billing.Tier{
		{UpTo: 10, UnitPrice: dec("1"), FlatPrice: dec("5")},
		{UpTo: 20, UnitPrice: dec("0.5"), FlatPrice: dec("3")},
		{UpTo: 0, UnitPrice: dec("0.1"), FlatPrice: dec("2")},
	}
}

func tiered(model billing.PricingModel, tiers []billing.Tier, included int64) billing.Price {
	return billing.Price{Resource: "tokens.output", Model: model, Tiers: tiers, Included: included}
}

// TestPricePublishedCase: tiers 1-5 at 7.00, 6-10 at 6.50, 11+ at 6.00 and 12 units cost 72.00
// by volume and 79.50 graduated.
func TestPricePublishedCase(t *testing.T) {
	for _, tc := range []struct {
		model billing.PricingModel
		want  string
	}{
		{billing.Volume, "72.00"},    // 12 x 6.00
		{billing.Graduated, "79.50"}, // 5 x 7.00 + 5 x 6.50 + 2 x 6.00 = 35 + 32.5 + 12
	} {
		got, err := tiered(tc.model, publishedTiers(), 0).Amount(12)
		if err != nil {
			t.Fatalf("%s: %v", tc.model, err)
		}
		if !got.Equal(dec(tc.want)) {
			t.Errorf("%s Amount(12) = %s, want %s", tc.model, got, tc.want)
		}
	}
}

// TestPriceAmount: hand-checked amounts for every model, at and around tier boundaries, with
// included units, flat fees, zero usage and tiny unit prices.
func TestPriceAmount(t *testing.T) {
	perToken := billing.Price{Resource: "tokens.input", Model: billing.PerUnit, UnitPrice: dec("0.000002")}
	pkg := billing.Price{Resource: "messages", Model: billing.Package, UnitPrice: dec("2.50"), PackageSize: 1000}
	withIncluded := func(p billing.Price, n int64) billing.Price { p.Included = n; return p }
	cases := []struct {
		name     string
		price    billing.Price
		quantity int64
		billable int64
		want     string
	}{
		// Graduated, published tiers.
		{"graduated zero", tiered(billing.Graduated, publishedTiers(), 0), 0, 0, "0"},
		{"graduated one unit", tiered(billing.Graduated, publishedTiers(), 0), 1, 1, "7"},
		{"graduated at first up_to", tiered(billing.Graduated, publishedTiers(), 0), 5, 5, "35"},
		{"graduated one past first up_to", tiered(billing.Graduated, publishedTiers(), 0), 6, 6, "41.5"},
		{"graduated at second up_to", tiered(billing.Graduated, publishedTiers(), 0), 10, 10, "67.5"},
		{"graduated one past second up_to", tiered(billing.Graduated, publishedTiers(), 0), 11, 11, "73.5"},
		{"graduated 12", tiered(billing.Graduated, publishedTiers(), 0), 12, 12, "79.5"},
		{"graduated 1000", tiered(billing.Graduated, publishedTiers(), 0), 1000, 1000, "6007.5"}, // 67.5 + 990 x 6
		// Volume, published tiers.
		{"volume zero", tiered(billing.Volume, publishedTiers(), 0), 0, 0, "0"},
		{"volume one unit", tiered(billing.Volume, publishedTiers(), 0), 1, 1, "7"},
		{"volume at first up_to", tiered(billing.Volume, publishedTiers(), 0), 5, 5, "35"},
		{"volume one past first up_to", tiered(billing.Volume, publishedTiers(), 0), 6, 6, "39"},
		{"volume at second up_to", tiered(billing.Volume, publishedTiers(), 0), 10, 10, "65"},
		{"volume one past second up_to", tiered(billing.Volume, publishedTiers(), 0), 11, 11, "66"},
		{"volume 12", tiered(billing.Volume, publishedTiers(), 0), 12, 12, "72"},
		// Included units come off before pricing; the billable units start at tier 1.
		{"graduated included spanning tiers", tiered(billing.Graduated, publishedTiers(), 7), 19, 12, "79.5"},
		{"graduated included leaves 9", tiered(billing.Graduated, publishedTiers(), 3), 12, 9, "61"}, // 35 + 4 x 6.5
		{"graduated all included", tiered(billing.Graduated, publishedTiers(), 12), 12, 0, "0"},
		{"graduated more included than used", tiered(billing.Graduated, publishedTiers(), 100), 12, 0, "0"},
		{"volume included leaves 9", tiered(billing.Volume, publishedTiers(), 3), 12, 9, "58.5"}, // 9 x 6.5
		{"volume all included", tiered(billing.Volume, publishedTiers(), 12), 12, 0, "0"},
		// Flat fees: graduated charges the flat fee of every tier reached; volume only the landing tier's.
		{"graduated flat zero", tiered(billing.Graduated, flatTiers(), 0), 0, 0, "0"},
		{"graduated flat 1", tiered(billing.Graduated, flatTiers(), 0), 1, 1, "6"},               // 1 + 5
		{"graduated flat 10", tiered(billing.Graduated, flatTiers(), 0), 10, 10, "15"},           // 10 + 5
		{"graduated flat 11", tiered(billing.Graduated, flatTiers(), 0), 11, 11, "18.5"},         // 15 + 0.5 + 3
		{"graduated flat 20", tiered(billing.Graduated, flatTiers(), 0), 20, 20, "23"},           // 15 + 5 + 3
		{"graduated flat 21", tiered(billing.Graduated, flatTiers(), 0), 21, 21, "25.1"},         // 23 + 0.1 + 2
		{"graduated flat 25", tiered(billing.Graduated, flatTiers(), 0), 25, 25, "25.5"},         // 23 + 0.5 + 2
		{"volume flat zero", tiered(billing.Volume, flatTiers(), 0), 0, 0, "0"},                  // no usage, no flat fee
		{"volume flat all included", tiered(billing.Volume, flatTiers(), 5), 5, 0, "0"},          // idem
		{"volume flat 10", tiered(billing.Volume, flatTiers(), 0), 10, 10, "15"},                 // 10 x 1 + 5
		{"volume flat 11", tiered(billing.Volume, flatTiers(), 0), 11, 11, "8.5"},                // 11 x 0.5 + 3
		{"volume flat 25", tiered(billing.Volume, flatTiers(), 0), 25, 25, "4.5"},                // 25 x 0.1 + 2
		{"volume flat 25 with 5 included", tiered(billing.Volume, flatTiers(), 5), 25, 20, "13"}, // 20 x 0.5 + 3
		// Per unit: unit prices keep full precision.
		{"per unit zero", perToken, 0, 0, "0"},
		{"per unit tiny price", perToken, 1_234_567, 1_234_567, "2.469134"},
		{"per unit included", withIncluded(perToken, 1000), 1_234_567, 1_233_567, "2.467134"},
		{"per unit one token", perToken, 1, 1, "0.000002"},
		{"per unit max quantity", perToken, math.MaxInt64, math.MaxInt64, "18446744073709.551614"},
		// Package: ceil(billable / size) packages.
		{"package zero", pkg, 0, 0, "0"},
		{"package one unit", pkg, 1, 1, "2.5"},
		{"package exactly full", pkg, 1000, 1000, "2.5"},
		{"package one past", pkg, 1001, 1001, "5"},
		{"package 2500", pkg, 2500, 2500, "7.5"},
		{"package included", withIncluded(pkg, 500), 1500, 1000, "2.5"},
		{"package included one past", withIncluded(pkg, 500), 1501, 1001, "5"},
		{"package max quantity", pkg, math.MaxInt64, math.MaxInt64, "23058430092136940"}, // ceil(9223372036854775807 / 1000) x 2.5
		// A single finite tier is enough while usage stays inside it.
		{"graduated inside the last finite tier", tiered(billing.Graduated, publishedTiers()[:2], 0), 10, 10, "67.5"},
		{"volume inside the last finite tier", tiered(billing.Volume, publishedTiers()[:2], 0), 10, 10, "65"},
		{"graduated finite tier with included", tiered(billing.Graduated, publishedTiers()[:2], 3), 13, 10, "67.5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.price.Amount(tc.quantity)
			if err != nil {
				t.Fatalf("Amount(%d): %v", tc.quantity, err)
			}
			if !got.Equal(dec(tc.want)) {
				t.Errorf("Amount(%d) = %s, want %s", tc.quantity, got, tc.want)
			}
			billable, tiers, exact, err := tc.price.Explain(tc.quantity)
			if err != nil {
				t.Fatalf("Explain(%d): %v", tc.quantity, err)
			}
			if billable != tc.billable {
				t.Errorf("Explain(%d) billable = %d, want %d", tc.quantity, billable, tc.billable)
			}
			if !exact.Equal(got) {
				t.Errorf("Explain(%d) exact = %s, Amount = %s", tc.quantity, exact, got)
			}
			checkBreakdown(t, tc.price, billable, tiers, exact)
		})
	}
}

// checkBreakdown checks the invariants of an Explain result: the tiers cover billable units 1
// to billable without gap or overlap (Volume, PerUnit and Package in one charge), each amount is
// units x unit price + flat price, and exact is their sum.
func checkBreakdown(t testing.TB, p billing.Price, billable int64, tiers []billing.TierCharge, exact decimal.Decimal) {
	t.Helper()
	sum := decimal.Zero
	next := int64(1)
	for i, tc := range tiers {
		if tc.First != next || tc.Last < tc.First {
			t.Errorf("tiers[%d] covers %d..%d, want it to start at %d", i, tc.First, tc.Last, next)
		}
		next = tc.Last + 1
		wantUnits := tc.Last - tc.First + 1
		if p.Model == billing.Package {
			wantUnits = billable / p.PackageSize // ceil, without overflowing near MaxInt64
			if billable%p.PackageSize != 0 {
				wantUnits++
			}
		}
		if tc.Units != wantUnits {
			t.Errorf("tiers[%d].Units = %d, want %d", i, tc.Units, wantUnits)
		}
		if want := tc.UnitPrice.Mul(decimal.NewFromInt(tc.Units)).Add(tc.FlatPrice); !tc.Amount.Equal(want) {
			t.Errorf("tiers[%d].Amount = %s, want %s", i, tc.Amount, want)
		}
		if i > 0 && tc.Tier <= tiers[i-1].Tier {
			t.Errorf("tiers[%d].Tier = %d after %d", i, tc.Tier, tiers[i-1].Tier)
		}
		sum = sum.Add(tc.Amount)
	}
	if billable == 0 && len(tiers) != 0 {
		t.Errorf("zero billable units reached %d tiers: %+v", len(tiers), tiers)
	}
	if billable > 0 && next-1 != billable {
		t.Errorf("tiers end at unit %d, want %d", next-1, billable)
	}
	if p.Model != billing.Graduated && len(tiers) > 1 {
		t.Errorf("%s price explained in %d charges, want at most 1", p.Model, len(tiers))
	}
	if !sum.Equal(exact) {
		t.Errorf("sum of tier amounts = %s, exact = %s", sum, exact)
	}
}

// TestPriceExplain: the tier-by-tier breakdown of each model.
func TestPriceExplain(t *testing.T) {
	type tc = billing.TierCharge
	cases := []struct {
		name     string
		price    billing.Price
		quantity int64
		want     []billing.TierCharge
	}{
		{"graduated published", tiered(billing.Graduated, publishedTiers(), 0), 12, []tc{
			{Tier: 0, First: 1, Last: 5, Units: 5, UnitPrice: dec("7"), Amount: dec("35")},
			{Tier: 1, First: 6, Last: 10, Units: 5, UnitPrice: dec("6.5"), Amount: dec("32.5")},
			{Tier: 2, First: 11, Last: 12, Units: 2, UnitPrice: dec("6"), Amount: dec("12")},
		}},
		{"graduated exactly at up_to reaches no further tier", tiered(billing.Graduated, flatTiers(), 0), 10, []tc{
			{Tier: 0, First: 1, Last: 10, Units: 10, UnitPrice: dec("1"), FlatPrice: dec("5"), Amount: dec("15")},
		}},
		{"graduated flat fee of every tier reached", tiered(billing.Graduated, flatTiers(), 4), 25, []tc{
			{Tier: 0, First: 1, Last: 10, Units: 10, UnitPrice: dec("1"), FlatPrice: dec("5"), Amount: dec("15")},
			{Tier: 1, First: 11, Last: 20, Units: 10, UnitPrice: dec("0.5"), FlatPrice: dec("3"), Amount: dec("8")},
			{Tier: 2, First: 21, Last: 21, Units: 1, UnitPrice: dec("0.1"), FlatPrice: dec("2"), Amount: dec("2.1")},
		}},
		{"volume published", tiered(billing.Volume, publishedTiers(), 0), 12, []tc{
			{Tier: 2, First: 1, Last: 12, Units: 12, UnitPrice: dec("6"), Amount: dec("72")},
		}},
		{"volume landing tier's flat fee only", tiered(billing.Volume, flatTiers(), 0), 11, []tc{
			{Tier: 1, First: 1, Last: 11, Units: 11, UnitPrice: dec("0.5"), FlatPrice: dec("3"), Amount: dec("8.5")},
		}},
		{"per unit", billing.Price{Resource: "requests", Model: billing.PerUnit, UnitPrice: dec("0.001"), Included: 1000}, 2500, []tc{
			{Tier: 0, First: 1, Last: 1500, Units: 1500, UnitPrice: dec("0.001"), Amount: dec("1.5")},
		}},
		{"package counts packages", billing.Price{Resource: "messages", Model: billing.Package, UnitPrice: dec("2.5"), PackageSize: 1000}, 2500, []tc{
			{Tier: 0, First: 1, Last: 2500, Units: 3, UnitPrice: dec("2.5"), Amount: dec("7.5")},
		}},
		{"zero usage", tiered(billing.Graduated, flatTiers(), 0), 0, nil},
		{"usage within included", tiered(billing.Volume, flatTiers(), 10), 10, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			billable, got, exact, err := c.price.Explain(c.quantity)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("Explain(%d) tiers (-want +got):\n%s", c.quantity, diff)
			}
			checkBreakdown(t, c.price, billable, got, exact)
		})
	}
}

// TestPriceNoTier: a graduated or volume price whose last tier has an end cannot price usage past
// it; the error names the first unit without a tier and the up_to to fix.
func TestPriceNoTier(t *testing.T) {
	finite := publishedTiers()[:2] // 1-5, 6-10
	for _, model := range []billing.PricingModel{billing.Graduated, billing.Volume} {
		for _, tc := range []struct {
			quantity, included int64
		}{{11, 0}, {12, 0}, {14, 3}, {math.MaxInt64, 0}} {
			p := tiered(model, finite, tc.included)
			if err := p.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			amount, err := p.Amount(tc.quantity)
			requireFieldError(t, err, billing.ErrInvalidConfig, "tiers[1].up_to", "no tier for unit 11", "up_to 0")
			if !amount.IsZero() {
				t.Errorf("%s Amount(%d) = %s with an error, want 0", model, tc.quantity, amount)
			}
			billable, tiers, exact, err := p.Explain(tc.quantity)
			if err == nil || billable != 0 || tiers != nil || !exact.IsZero() {
				t.Errorf("%s Explain(%d) = %d, %v, %s, %v; want zero values and an error", model, tc.quantity, billable, tiers, exact, err)
			}
		}
	}
}

// TestPriceValidate: every invalid price is refused by Validate, Amount and Explain with an error
// matching ErrInvalidConfig that names the field.
func TestPriceValidate(t *testing.T) {
	good := func() billing.Price { return tiered(billing.Graduated, flatTiers(), 0) }
	cases := []struct {
		name  string
		edit  func(*billing.Price)
		field string
		rule  string
	}{
		{"empty resource", func(p *billing.Price) { p.Resource = "" }, "resource", "required"},
		{"bad resource", func(p *billing.Price) { p.Resource = "tokens out" }, "resource", "ASCII"},
		{"no model", func(p *billing.Price) { p.Model = "" }, "model", "required"},
		{"unknown model", func(p *billing.Price) { p.Model = "tiered" }, "model", `"tiered"`},
		{"no tiers", func(p *billing.Price) { p.Tiers = nil }, "tiers", "at least one tier"},
		{"unsorted tiers", func(p *billing.Price) { p.Tiers[1].UpTo = 5 }, "tiers[1].up_to", "increasing"},
		{"overlapping tiers", func(p *billing.Price) { p.Tiers[1].UpTo = 10 }, "tiers[1].up_to", "greater than tiers[0].up_to (10)"},
		{"non-final infinite tier", func(p *billing.Price) { p.Tiers[1].UpTo = 0 }, "tiers[1].up_to", "last tier only"},
		{"first tier infinite", func(p *billing.Price) { p.Tiers[0].UpTo = 0 }, "tiers[0].up_to", "last tier only"},
		{"negative up_to", func(p *billing.Price) { p.Tiers[0].UpTo = -1 }, "tiers[0].up_to", ">= 0"},
		{"negative tier unit price", func(p *billing.Price) { p.Tiers[1].UnitPrice = dec("-0.5") }, "tiers[1].unit_price", ">= 0"},
		{"negative flat price", func(p *billing.Price) { p.Tiers[2].FlatPrice = dec("-2") }, "tiers[2].flat_price", ">= 0"},
		{"unit price on a tiered price", func(p *billing.Price) { p.UnitPrice = dec("1") }, "unit_price", "tiers[i].unit_price"},
		{"package size on a tiered price", func(p *billing.Price) { p.PackageSize = 10 }, "package_size", "package prices only"},
		{"negative included", func(p *billing.Price) { p.Included = -1 }, "included", ">= 0"},
		{"too many decimal places", func(p *billing.Price) { p.Tiers[0].UnitPrice = dec("0.0000000000000000001") }, "tiers[0].unit_price", "decimal places"},
		{"absurd exponent", func(p *billing.Price) { p.Tiers[0].UnitPrice = decimal.New(1, -2_000_000_000) }, "tiers[0].unit_price", "decimal places"},
		{"too large", func(p *billing.Price) { p.Tiers[0].FlatPrice = dec("1e15") }, "tiers[0].flat_price", "less than 10^15"},
		{"absurdly large", func(p *billing.Price) { p.Tiers[0].FlatPrice = decimal.New(1, 2_000_000_000) }, "tiers[0].flat_price", "less than 10^15"},
		{"bad match key", func(p *billing.Price) { p.Match = map[string]string{"mo del": "x"} }, "match", `key "mo del"`},
		{"empty match key", func(p *billing.Price) { p.Match = map[string]string{"": "x"} }, "match", "empty"},
		{"control char in match value", func(p *billing.Price) { p.Match = map[string]string{"model": "gpt\n4"} }, "match[model]", "control"},
		{"long match value", func(p *billing.Price) { p.Match = map[string]string{"model": strings.Repeat("x", 257)} }, "match[model]", "256"},
		{"too many match keys", func(p *billing.Price) {
			p.Match = map[string]string{}
			for i := range 17 {
				p.Match[fmt.Sprintf("k%d", i)] = "v"
			}
		}, "match", "16"},
		{"control char in description", func(p *billing.Price) { p.Description = "GPT\x00" }, "description", "control"},
		{"per unit negative price", func(p *billing.Price) {
			*p = billing.Price{Resource: "requests", Model: billing.PerUnit, UnitPrice: dec("-0.01")}
		}, "unit_price", ">= 0"},
		{"per unit with tiers", func(p *billing.Price) {
			*p = billing.Price{Resource: "requests", Model: billing.PerUnit, UnitPrice: dec("0.01"), Tiers: publishedTiers()}
		}, "tiers", "only graduated and volume"},
		{"per unit with package size", func(p *billing.Price) {
			*p = billing.Price{Resource: "requests", Model: billing.PerUnit, UnitPrice: dec("0.01"), PackageSize: 100}
		}, "package_size", "package prices only"},
		{"package size 0", func(p *billing.Price) {
			*p = billing.Price{Resource: "messages", Model: billing.Package, UnitPrice: dec("2.5")}
		}, "package_size", "> 0"},
		{"negative package size", func(p *billing.Price) {
			*p = billing.Price{Resource: "messages", Model: billing.Package, UnitPrice: dec("2.5"), PackageSize: -10}
		}, "package_size", "> 0"},
		{"package negative price", func(p *billing.Price) {
			*p = billing.Price{Resource: "messages", Model: billing.Package, UnitPrice: dec("-2.5"), PackageSize: 10}
		}, "unit_price", ">= 0"},
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("good price: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := good()
			p.Tiers = flatTiers() // a private copy to edit
			tc.edit(&p)
			requireFieldError(t, p.Validate(), billing.ErrInvalidConfig, tc.field, tc.rule)
			_, err := p.Amount(5)
			requireFieldError(t, err, billing.ErrInvalidConfig, tc.field, tc.rule)
			_, _, _, err = p.Explain(0)
			requireFieldError(t, err, billing.ErrInvalidConfig, tc.field, tc.rule)
		})
	}
}

// TestPriceNegativeQuantity: a negative quantity is a bad request, not a bad price.
func TestPriceNegativeQuantity(t *testing.T) {
	p := tiered(billing.Volume, publishedTiers(), 0)
	_, err := p.Amount(-1)
	requireFieldError(t, err, billing.ErrInvalidQuery, "quantity", ">= 0", "-1")
	if errors.Is(err, billing.ErrInvalidConfig) {
		t.Errorf("negative quantity error %v matches ErrInvalidConfig", err)
	}
}

// TestPriceMatches: every key of Match must be present in the group with the same value.
func TestPriceMatches(t *testing.T) {
	p := billing.Price{Resource: "tokens.output", Model: billing.PerUnit, UnitPrice: dec("0.00001"),
		Match: map[string]string{"model": "gpt-4o", "region": "eu"}}
	cases := []struct {
		group map[string]string
		want  bool
	}{
		{map[string]string{"model": "gpt-4o", "region": "eu"}, true},
		{map[string]string{"model": "gpt-4o", "region": "eu", "tier": "batch"}, true},
		{map[string]string{"model": "gpt-4o"}, false},
		{map[string]string{"model": "gpt-4o", "region": "us"}, false},
		{map[string]string{"model": "GPT-4o", "region": "eu"}, false},
		{nil, false},
	}
	for _, tc := range cases {
		if got := p.Matches(tc.group); got != tc.want {
			t.Errorf("Matches(%v) = %v, want %v", tc.group, got, tc.want)
		}
	}
	empty := billing.Price{Match: map[string]string{"model": ""}}
	if empty.Matches(map[string]string{}) {
		t.Error(`Match {"model": ""} matched a group without the key`)
	}
	if !empty.Matches(map[string]string{"model": ""}) {
		t.Error(`Match {"model": ""} did not match {"model": ""}`)
	}
	all := billing.Price{}
	for _, g := range []map[string]string{nil, {}, {"model": "x"}} {
		if !all.Matches(g) {
			t.Errorf("empty Match did not match %v", g)
		}
	}
}

// TestPlanPricesValidate: Plan.Validate checks its prices (naming the field under
// plan.prices[i]), its base fee and minimum, and its currency when it charges money.
func TestPlanPricesValidate(t *testing.T) {
	good := func() billing.Plan {
		return billing.Plan{ID: "pro", Currency: "USD", BaseFee: dec("20"), Minimum: dec("50"),
			Prices: []billing.Price{
				{Resource: "tokens.output", Match: map[string]string{"model": "gpt-4o"}, Model: billing.Graduated, Tiers: publishedTiers()},
				{Resource: "tokens.output", Model: billing.PerUnit, UnitPrice: dec("0.000002")},
				{Resource: "requests", Model: billing.Volume, Tiers: flatTiers(), Included: 1000},
				{Resource: "messages", Model: billing.Package, UnitPrice: dec("2.5"), PackageSize: 1000},
			}}
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("good plan: %v", err)
	}
	cases := []struct {
		name  string
		edit  func(*billing.Plan)
		field string
		rule  string
	}{
		{"overlapping tier", func(p *billing.Plan) { p.Prices[2].Tiers[1].UpTo = 3 }, "plan.prices[2].tiers[1].up_to", "increasing"},
		{"negative price", func(p *billing.Plan) { p.Prices[1].UnitPrice = dec("-1") }, "plan.prices[1].unit_price", ">= 0"},
		{"non-final infinite tier", func(p *billing.Plan) { p.Prices[0].Tiers[0].UpTo = 0 }, "plan.prices[0].tiers[0].up_to", "last tier only"},
		{"package size 0", func(p *billing.Plan) { p.Prices[3].PackageSize = 0 }, "plan.prices[3].package_size", "> 0"},
		{"unknown model", func(p *billing.Plan) { p.Prices[3].Model = "flat" }, "plan.prices[3].model", "unknown"},
		{"bad match", func(p *billing.Plan) { p.Prices[0].Match = map[string]string{"model": "a\tb"} }, "plan.prices[0].match[model]", "control"},
		{"negative base fee", func(p *billing.Plan) { p.BaseFee = dec("-20") }, "plan.base_fee", ">= 0"},
		{"negative minimum", func(p *billing.Plan) { p.Minimum = dec("-0.01") }, "plan.minimum", ">= 0"},
		{"unknown currency", func(p *billing.Plan) { p.Currency = "XYZ" }, "plan.currency", `unknown ISO 4217 currency "XYZ"`},
		{"prices need a currency", func(p *billing.Plan) { p.Currency = ""; p.BaseFee, p.Minimum = decimal.Zero, decimal.Zero }, "plan.currency", "required"},
		{"base fee needs a currency", func(p *billing.Plan) { p.Currency = ""; p.Prices = nil; p.Minimum = decimal.Zero }, "plan.currency", "required"},
		{"minimum needs a currency", func(p *billing.Plan) { p.Currency = ""; p.Prices = nil; p.BaseFee = decimal.Zero }, "plan.currency", "required"},
		{"price shadowed by a broader one", func(p *billing.Plan) { p.Prices[0], p.Prices[1] = p.Prices[1], p.Prices[0] }, "plan.prices[1].match", "never used"},
		{"same price twice", func(p *billing.Plan) { p.Prices = append(p.Prices, p.Prices[3]) }, "plan.prices[4].match", "plan.prices[3]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := good()
			tc.edit(&p)
			requireFieldError(t, p.Validate(), billing.ErrInvalidConfig, tc.field, tc.rule)
		})
	}
	// A plan without money needs no currency, and a known currency with no prices is fine.
	for _, p := range []billing.Plan{{ID: "free"}, {ID: "yen", Currency: "JPY"}, {ID: "dinar", Currency: "BHD", BaseFee: dec("1.5")}} {
		if err := p.Validate(); err != nil {
			t.Errorf("plan %s: %v", p.ID, err)
		}
	}
}

// TestPriceProperty (seeded): for random valid tiered prices and quantities, Graduated equals a
// brute-force unit-by-unit sum, Volume equals the landing tier's price x units + flat, Package
// equals a package-by-package count, and Amount always equals the sum of Explain's tiers.
func TestPriceProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(20260315, 5))
	randMoney := func() decimal.Decimal {
		if rng.IntN(4) == 0 {
			return decimal.Zero
		}
		return decimal.New(rng.Int64N(10_000_000), -rng.Int32N(7)) // up to 9,999,999 with 0-6 places
	}
	for iter := range 3000 {
		n := 1 + rng.IntN(5)
		tiers := make([]billing.Tier, n)
		var upTo int64
		for i := range tiers {
			upTo += 1 + rng.Int64N(25)
			tiers[i] = billing.Tier{UpTo: upTo, UnitPrice: randMoney(), FlatPrice: randMoney()}
		}
		if rng.IntN(4) != 0 {
			tiers[n-1].UpTo = 0 // usually an open last tier
		}
		included := int64(0)
		if rng.IntN(2) == 0 {
			included = rng.Int64N(30)
		}
		quantity := rng.Int64N(160)
		billable := max(0, quantity-included)
		tierOf := func(unit int64) int { // the tier containing the unit-th billable unit, or -1
			for i, t := range tiers {
				if t.UpTo == 0 || unit <= t.UpTo {
					return i
				}
			}
			return -1
		}
		name := fmt.Sprintf("iter %d: tiers %+v, included %d, quantity %d", iter, tiers, included, quantity)

		// Graduated, unit by unit.
		want, reached, covered := decimal.Zero, map[int]bool{}, true
		for u := int64(1); u <= billable; u++ {
			i := tierOf(u)
			if i < 0 {
				covered = false
				break
			}
			want = want.Add(tiers[i].UnitPrice)
			if !reached[i] {
				reached[i] = true
				want = want.Add(tiers[i].FlatPrice)
			}
		}
		checkModel(t, name, tiered(billing.Graduated, tiers, included), quantity, billable, want, covered)

		// Volume: the landing tier.
		want, covered = decimal.Zero, true
		if billable > 0 {
			if i := tierOf(billable); i < 0 {
				covered = false
			} else {
				want = tiers[i].UnitPrice.Mul(decimal.NewFromInt(billable)).Add(tiers[i].FlatPrice)
			}
		}
		checkModel(t, name, tiered(billing.Volume, tiers, included), quantity, billable, want, covered)

		// Package and per unit.
		size := 1 + rng.Int64N(20)
		price := randMoney()
		want = decimal.Zero
		for filled := int64(0); filled < billable; filled += size {
			want = want.Add(price)
		}
		pkg := billing.Price{Resource: "messages", Model: billing.Package, UnitPrice: price, PackageSize: size, Included: included}
		checkModel(t, name+fmt.Sprintf(", package %d at %s", size, price), pkg, quantity, billable, want, true)
		want = decimal.Zero
		for range billable {
			want = want.Add(price)
		}
		per := billing.Price{Resource: "requests", Model: billing.PerUnit, UnitPrice: price, Included: included}
		checkModel(t, name+fmt.Sprintf(", per unit at %s", price), per, quantity, billable, want, true)

		// Large quantities: no brute force, but the breakdown must still add up.
		big := rng.Int64N(math.MaxInt64)
		for _, model := range []billing.PricingModel{billing.Graduated, billing.Volume} {
			p := tiered(model, tiers, included)
			b, ts, exact, err := p.Explain(big)
			if err != nil {
				if tiers[n-1].UpTo == 0 {
					t.Errorf("%s, %s Explain(%d): %v", name, model, big, err)
				}
				continue
			}
			checkBreakdown(t, p, b, ts, exact)
		}
	}
}

// checkModel compares p.Amount(quantity) with a brute-force amount (or, when !covered, with the
// no-tier error), and checks Explain against Amount.
func checkModel(t *testing.T, name string, p billing.Price, quantity, billable int64, want decimal.Decimal, covered bool) {
	t.Helper()
	got, err := p.Amount(quantity)
	if !covered {
		if !errors.Is(err, billing.ErrInvalidConfig) || !strings.Contains(err.Error(), "no tier for unit") {
			t.Fatalf("%s, %s: Amount = %s, %v; want the no-tier error", name, p.Model, got, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s, %s: Amount: %v", name, p.Model, err)
	}
	if !got.Equal(want) {
		t.Fatalf("%s, %s: Amount = %s, brute force = %s", name, p.Model, got, want)
	}
	b, tiers, exact, err := p.Explain(quantity)
	if err != nil {
		t.Fatalf("%s, %s: Explain: %v", name, p.Model, err)
	}
	if b != billable || !exact.Equal(got) {
		t.Fatalf("%s, %s: Explain = billable %d, exact %s; want %d, %s", name, p.Model, b, exact, billable, got)
	}
	checkBreakdown(t, p, b, tiers, exact)
}

func ExamplePrice_Amount() {
	tiers := []billing.Tier{
		{UpTo: 5, UnitPrice: decimal.RequireFromString("7.00")},
		{UpTo: 10, UnitPrice: decimal.RequireFromString("6.50")},
		{UpTo: 0, UnitPrice: decimal.RequireFromString("6.00")}, // 0: no end
	}
	graduated := billing.Price{Resource: "seats", Model: billing.Graduated, Tiers: tiers}
	volume := billing.Price{Resource: "seats", Model: billing.Volume, Tiers: tiers}
	g, _ := graduated.Amount(12)
	v, _ := volume.Amount(12)
	fmt.Println("graduated:", g.StringFixed(2))
	fmt.Println("volume:", v.StringFixed(2))

	perToken := billing.Price{Resource: "tokens.input", Model: billing.PerUnit,
		UnitPrice: decimal.RequireFromString("0.000002")}
	exact, _ := perToken.Amount(1_234_567)
	line, _ := billing.RoundMoney(exact, "USD")
	fmt.Println("tokens:", exact, "->", line.StringFixed(2), "USD")
	// Output:
	// graduated: 79.50
	// volume: 72.00
	// tokens: 2.469134 -> 2.47 USD
}

func ExamplePrice_Explain() {
	p := billing.Price{Resource: "seats", Model: billing.Graduated, Included: 2, Tiers: []billing.Tier{
		{UpTo: 5, UnitPrice: decimal.RequireFromString("7.00"), FlatPrice: decimal.RequireFromString("10")},
		{UpTo: 0, UnitPrice: decimal.RequireFromString("6.00")},
	}}
	billable, tiers, exact, _ := p.Explain(10)
	fmt.Println("billable:", billable)
	for _, t := range tiers {
		fmt.Printf("tier %d: units %d-%d, %d x %s + %s = %s\n", t.Tier, t.First, t.Last, t.Units,
			t.UnitPrice.StringFixed(2), t.FlatPrice.StringFixed(2), t.Amount.StringFixed(2))
	}
	fmt.Println("total:", exact.StringFixed(2))
	// Output:
	// billable: 8
	// tier 0: units 1-5, 5 x 7.00 + 10.00 = 45.00
	// tier 1: units 6-8, 3 x 6.00 + 0.00 = 18.00
	// total: 63.00
}
