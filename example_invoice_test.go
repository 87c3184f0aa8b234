package billing_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// An invoice is computed from the month's usage and the tenant's plan, then finalized with the
// next number of a gap-free sequence.
func ExampleMeter_GenerateInvoice() {
	ctx := context.Background()
	st, err := sqlite.Open(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	m, err := billing.New(billing.Config{Store: st, Now: func() time.Time { return now }})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	d := decimal.RequireFromString
	err = m.SetPlan(ctx, billing.Plan{ID: "pro", Currency: "USD", BaseFee: d("20"), Prices: []billing.Price{{
		Resource: "tokens.output", Model: billing.Graduated, Included: 2,
		Tiers: []billing.Tier{{UpTo: 5, UnitPrice: d("7")}, {UpTo: 10, UnitPrice: d("6.50")}, {UnitPrice: d("6")}},
	}}})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.AssignPlan(ctx, "acme", "pro"); err != nil {
		log.Fatal(err)
	}
	if err := m.Track(ctx, billing.Event{Tenant: "acme", Resource: "tokens.output", Quantity: 14}); err != nil {
		log.Fatal(err)
	}
	draft, err := m.GenerateInvoice(ctx, "acme", billing.MonthOf(now, time.UTC))
	if err != nil {
		log.Fatal(err)
	}
	inv, err := m.FinalizeInvoice(ctx, draft.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(inv.Number, inv.Status, inv.Start.Format("2006-01-02"), "to", inv.End.Format("2006-01-02"))
	for _, l := range inv.Lines {
		fmt.Printf("%-14s qty %2d included %d amount %s\n", l.Description, l.Quantity, l.Included, l.Amount.StringFixed(2))
		for _, t := range l.Tiers {
			fmt.Printf("  units %2d-%2d: %d x %s\n", t.First, t.Last, t.Units, t.UnitPrice)
		}
	}
	fmt.Println("total", inv.Total.StringFixed(2), inv.Currency)
	// Output:
	// INV-2026-000001 finalized 2026-11-01 to 2026-12-01
	// tokens.output  qty 14 included 2 amount 79.50
	//   units  1- 5: 5 x 7
	//   units  6-10: 5 x 6.5
	//   units 11-12: 2 x 6
	// Base fee (pro) qty  0 included 0 amount 20.00
	// total 99.50 USD
}
