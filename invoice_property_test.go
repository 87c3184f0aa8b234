package billing_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
)

// invPropertySeed returns the seed of the property test: a fixed one, or INVOICE_SEED. It logs
// the seed so that a failure can be replayed.
func invPropertySeed(t *testing.T) uint64 {
	t.Helper()
	s := uint64(20260301)
	if env := os.Getenv("INVOICE_SEED"); env != "" {
		v, err := strconv.ParseUint(env, 10, 64)
		if err != nil {
			t.Fatalf("INVOICE_SEED=%q: %v", env, err)
		}
		s = v
	}
	t.Logf("seed %d (replay with INVOICE_SEED=%d)", s, s)
	return s
}

// invGen makes the random plans and events of one round of the property test.
type invGen struct {
	rng *rand.Rand
}

var (
	invPropResources = []string{"requests", "tokens.input", "tokens.output", "storage"}
	invPropModels    = []string{"gpt-4o", "gpt-4o-mini", "claude"}
	invPropRegions   = []string{"eu", "us"}
	invPropCurrency  = []string{"USD", "EUR", "JPY", "BHD", "KWD"}
)

func (g *invGen) pick(list []string) string { return list[g.rng.IntN(len(list))] }

// money is a random non-negative amount with up to 6 decimal places (often zero).
func (g *invGen) money() decimal.Decimal {
	if g.rng.IntN(6) == 0 {
		return decimal.Zero
	}
	places := int32(g.rng.IntN(7))
	return decimal.New(g.rng.Int64N(100_000), -places)
}

// match is a random price match over the dimensions events carry.
func (g *invGen) match() map[string]string {
	switch g.rng.IntN(6) {
	case 0, 1:
		return map[string]string{"model": g.pick(invPropModels)}
	case 2:
		return map[string]string{"model": g.pick(invPropModels), "region": g.pick(invPropRegions)}
	case 3:
		return map[string]string{"region": g.pick(invPropRegions)}
	}
	return nil
}

func (g *invGen) tiers() []billing.Tier {
	n := 1 + g.rng.IntN(4)
	tiers := make([]billing.Tier, n)
	var upTo int64
	for i := range tiers {
		if i < n-1 {
			upTo += 1 + g.rng.Int64N([]int64{10, 1000, 1_000_000}[g.rng.IntN(3)])
			tiers[i].UpTo = upTo
		}
		tiers[i].UnitPrice = g.money()
		if g.rng.IntN(3) == 0 {
			tiers[i].FlatPrice = g.money()
		}
	}
	return tiers
}

func (g *invGen) price() billing.Price {
	p := billing.Price{Resource: g.pick(invPropResources), Match: g.match()}
	switch g.rng.IntN(4) {
	case 0:
		p.Model, p.UnitPrice = billing.PerUnit, g.money()
	case 1:
		p.Model, p.UnitPrice, p.PackageSize = billing.Package, g.money(), 1+g.rng.Int64N(5000)
	case 2:
		p.Model, p.Tiers = billing.Graduated, g.tiers()
	case 3:
		p.Model, p.Tiers = billing.Volume, g.tiers()
	}
	if g.rng.IntN(3) == 0 {
		p.Included = g.rng.Int64N([]int64{10, 10_000, 1_000_000}[g.rng.IntN(3)])
	}
	return p
}

// plan is a random price book; prices the plan's validation refuses (one that an earlier price
// makes unreachable) are left out.
func (g *invGen) plan(id string) billing.Plan {
	p := billing.Plan{ID: id, Currency: g.pick(invPropCurrency)}
	if g.rng.IntN(3) == 0 {
		p.BaseFee = g.money()
	}
	if g.rng.IntN(3) == 0 {
		p.Minimum = g.money().Mul(decimal.NewFromInt(100))
	}
	for range 1 + g.rng.IntN(7) {
		next := p
		next.Prices = append(append([]billing.Price(nil), p.Prices...), g.price())
		if next.Validate() == nil {
			p = next
		}
	}
	return p
}

func (g *invGen) attrs() map[string]string {
	a := map[string]string{}
	if g.rng.IntN(4) != 0 {
		a["model"] = g.pick(invPropModels)
	}
	if g.rng.IntN(2) == 0 {
		a["region"] = g.pick(invPropRegions)
	}
	if g.rng.IntN(5) == 0 {
		a["request"] = strconv.Itoa(g.rng.IntN(1000)) // not a dimension when Config.Dimensions is set
	}
	if len(a) == 0 {
		return nil
	}
	return a
}

// invExpect is the brute-force invoice of one tenant: computed from the raw events with the
// test's own matching, quantities and rounding; only Price.Amount (tested on its own) is shared
// with the code under test.
func invExpect(t *testing.T, plan billing.Plan, span billing.Span, events []billing.Event) ([]invPropLine, decimal.Decimal) {
	t.Helper()
	digits := invDigits[plan.Currency]
	qty := make([]int64, len(plan.Prices))
	for _, e := range events {
		if e.Time.Before(span.Start) || !e.Time.Before(span.End) {
			continue
		}
		for i, p := range plan.Prices {
			if p.Resource != e.Resource {
				continue
			}
			ok := true
			for k, v := range p.Match {
				if got, has := e.Attrs[k]; !has || got != v {
					ok = false
					break
				}
			}
			if ok {
				qty[i] += e.Quantity
				break
			}
		}
	}
	var lines []invPropLine
	usage, subtotal := decimal.Zero, decimal.Zero
	for i, p := range plan.Prices {
		exact, err := p.Amount(qty[i])
		if err != nil {
			t.Fatalf("Amount(%d) of %+v: %v", qty[i], p, err)
		}
		included := min(p.Included, qty[i])
		amount := exact.Round(digits)
		lines = append(lines, invPropLine{Kind: billing.LineUsage, Resource: p.Resource, Match: p.Match,
			Quantity: qty[i], Included: included, Billable: qty[i] - included, Exact: exact, Amount: amount})
		usage, subtotal = usage.Add(amount), subtotal.Add(amount)
	}
	if plan.BaseFee.IsPositive() {
		amount := plan.BaseFee.Round(digits)
		lines = append(lines, invPropLine{Kind: billing.LineBaseFee, Exact: plan.BaseFee, Amount: amount})
		subtotal = subtotal.Add(amount)
	}
	if plan.Minimum.GreaterThan(usage) {
		exact := plan.Minimum.Sub(usage)
		amount := exact.Round(digits)
		lines = append(lines, invPropLine{Kind: billing.LineMinimum, Exact: exact, Amount: amount})
		subtotal = subtotal.Add(amount)
	}
	return lines, subtotal
}

// invPropLine is what the property test compares of a line.
type invPropLine struct {
	Kind     billing.LineKind
	Resource string
	Match    map[string]string
	Quantity int64
	Included int64
	Billable int64
	Exact    decimal.Decimal
	Amount   decimal.Decimal
}

func invPropLines(inv *billing.Invoice) []invPropLine {
	out := make([]invPropLine, len(inv.Lines))
	for i, l := range inv.Lines {
		out[i] = invPropLine{Kind: l.Kind, Resource: l.Resource, Match: l.Match, Quantity: l.Quantity,
			Included: l.Included, Billable: l.Billable, Exact: l.Exact, Amount: l.Amount}
	}
	return out
}

// TestInvoiceProperty: for random events and random price books, every finalized invoice's lines
// equal a brute-force recomputation from the raw events, and its subtotal the sum of its lines.
func TestInvoiceProperty(t *testing.T) {
	seed := invPropertySeed(t)
	rounds := 12
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		t.Run(fmt.Sprintf("round%02d", round), func(t *testing.T) {
			invPropertyRound(t, seed+uint64(round))
		})
	}
}

func invPropertyRound(t *testing.T, seed uint64) {
	ctx := context.Background()
	g := &invGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	zones := []string{"UTC", "Europe/Berlin", "Asia/Kolkata", "America/Sao_Paulo"}
	loc, err := time.LoadLocation(g.pick(zones))
	if err != nil {
		t.Fatal(err)
	}
	// February, March (Berlin changes its clocks) or October (it changes them back) of 2026.
	month := []time.Month{time.February, time.March, time.October}[g.rng.IntN(3)]
	span := billing.MonthOf(time.Date(2026, month, 10, 12, 0, 0, 0, loc), loc)
	cfg := billing.Config{Location: loc, DefaultPlan: "plan0"}
	if g.rng.IntN(2) == 0 {
		cfg.Dimensions = []string{"model", "region"}
	}
	m, clock := invMeter(t, cfg, span.End.Add(10*time.Minute)) // within the grace
	t.Logf("zone %s, span %s, dimensions %v", loc, span, cfg.Dimensions)

	const nPlans, nTenants = 3, 6
	plans := make([]billing.Plan, nPlans)
	for i := range plans {
		plans[i] = g.plan(fmt.Sprintf("plan%d", i))
		invSetPlan(t, m, plans[i])
	}
	tenants := make([]string, nTenants)
	planOf := map[string]billing.Plan{}
	for i := range tenants {
		tenants[i] = fmt.Sprintf("tenant%d", i)
		planOf[tenants[i]] = plans[0] // the default plan
		if i > 0 && g.rng.IntN(4) != 0 {
			p := plans[g.rng.IntN(nPlans)]
			invSetPlan(t, m, p, tenants[i])
			planOf[tenants[i]] = p
		}
	}

	// Random events: inside the span, and a little before and after it.
	from, to := span.Start.Add(-3*time.Hour), span.End.Add(5*time.Minute)
	var tracked []billing.Event // each event once, as recorded
	seen := map[string]bool{}
	mkEvent := func(n int) billing.Event {
		at := from.Add(time.Duration(g.rng.Int64N(int64(to.Sub(from)))))
		switch g.rng.IntN(20) { // the span's bounds
		case 0:
			at = span.Start
		case 1:
			at = span.End.Add(-time.Nanosecond)
		case 2:
			at = span.End
		case 3:
			at = span.Start.Add(-time.Nanosecond)
		}
		qty := 1 + g.rng.Int64N([]int64{10, 1000, 100_000, 10_000_000}[g.rng.IntN(4)])
		return billing.Event{ID: fmt.Sprintf("e%d", n), Tenant: g.pick(tenants), Resource: g.pick(invPropResources),
			Quantity: qty, Time: at, Attrs: g.attrs()}
	}
	track := func(n int) {
		var batch []billing.Event
		for range 1 + g.rng.IntN(25) {
			if len(tracked) > 0 && g.rng.IntN(8) == 0 {
				batch = append(batch, tracked[g.rng.IntN(len(tracked))]) // a retry: a no-op
				continue
			}
			e := mkEvent(n)
			n++
			batch = append(batch, e)
		}
		invTrack(t, m, batch...)
		for _, e := range batch {
			if !seen[e.Tenant+"/"+e.ID] {
				seen[e.Tenant+"/"+e.ID] = true
				tracked = append(tracked, e)
			}
		}
	}
	n := 0
	for range 10 + g.rng.IntN(20) {
		track(n)
		n += 100
	}
	// Drafts of some tenants now, more usage, then the invoices: finalization must use it all.
	for _, tenant := range tenants {
		if g.rng.IntN(2) == 0 {
			invGenerate(t, m, tenant, span)
		}
	}
	for range 5 {
		track(n)
		n += 100
	}
	clock.Set(span.End.Add(time.Hour))
	var priced, lines int
	defer func() { t.Logf("%d events, %d lines, %d of them with usage", len(tracked), lines, priced) }()
	for _, tenant := range tenants {
		draft := invGenerate(t, m, tenant, span)
		fin := invFinalize(t, m, draft.ID)
		var mine []billing.Event
		for _, e := range tracked {
			if e.Tenant == tenant {
				mine = append(mine, e)
			}
		}
		want, subtotal := invExpect(t, planOf[tenant], span, mine)
		for _, l := range want {
			lines++
			if l.Quantity > 0 {
				priced++
			}
		}
		if diff := cmp.Diff(want, invPropLines(fin), invCmp); diff != "" {
			t.Errorf("tenant %s (plan %+v): finalized lines differ from the raw events (-raw +invoice):\n%s", tenant, planOf[tenant], diff)
		}
		if !fin.Subtotal.Equal(subtotal) || !fin.Total.Equal(subtotal) {
			t.Errorf("tenant %s: subtotal %s, total %s; want %s", tenant, fin.Subtotal, fin.Total, subtotal)
		}
		if fin.Status != billing.InvoiceFinalized || fin.Number == "" || fin.PlanID != planOf[tenant].ID ||
			fin.Currency != planOf[tenant].Currency {
			t.Errorf("tenant %s: header %+v", tenant, fin)
		}
		invCheck(t, fin)
		stored, err := m.Invoice(ctx, fin.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(fin, stored, invCmp); diff != "" {
			t.Errorf("tenant %s: stored invoice differs from the finalized one (-returned +stored):\n%s", tenant, diff)
		}
	}
	// Late events are refused now, and the invoices stay as they were.
	before, err := m.Invoices(ctx, billing.InvoiceQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		e := mkEvent(1_000_000 + i)
		e.Time = span.Start.Add(time.Duration(g.rng.Int64N(int64(span.End.Sub(span.Start)))))
		if err := m.Track(ctx, e); err == nil {
			t.Errorf("late event %+v in the finalized span was accepted", e)
		}
	}
	after, err := m.Invoices(ctx, billing.InvoiceQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after, invCmp); diff != "" {
		t.Errorf("invoices changed after late events (-before +after):\n%s", diff)
	}
}
