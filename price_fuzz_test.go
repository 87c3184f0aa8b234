package billing_test

import (
	"errors"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
)

// FuzzPriceAmount: whatever the price and quantity, Validate, Amount and Explain never panic or
// hang; a price Validate refuses is refused by Amount too; and a priced quantity is never
// negative and always equals the sum of its breakdown.
func FuzzPriceAmount(f *testing.F) {
	f.Add(uint8(1), "7", "0", int64(5), "7.00", int64(10), "6.50", int64(0), "6.00", "0", int64(0), int64(0), int64(12))
	f.Add(uint8(2), "0", "0", int64(5), "7.00", int64(10), "6.50", int64(0), "6.00", "2", int64(3), int64(0), int64(12))
	f.Add(uint8(0), "0.000002", "0", int64(0), "", int64(0), "", int64(0), "", "", int64(1000), int64(0), int64(1_234_567))
	f.Add(uint8(3), "2.5", "0", int64(0), "", int64(0), "", int64(0), "", "", int64(0), int64(1000), int64(2501))
	f.Add(uint8(1), "0", "5", int64(10), "1", int64(20), "0.5", int64(30), "0.1", "2", int64(0), int64(0), int64(31))
	f.Add(uint8(2), "0", "0", int64(9223372036854775807), "1", int64(0), "1", int64(0), "", "", int64(0), int64(0), int64(9223372036854775807))
	f.Add(uint8(0), "1e-9999", "-1", int64(-1), "1e9999", int64(0), "-0", int64(0), "x", "", int64(-5), int64(-1), int64(-1))
	f.Fuzz(func(t *testing.T, model uint8, unit, flat0 string, up0 int64, price0 string, up1 int64, price1 string,
		up2 int64, price2, flat2 string, included, packageSize, quantity int64) {
		num := func(s string) decimal.Decimal {
			d, err := decimal.NewFromString(s)
			if err != nil {
				return decimal.Zero
			}
			return d
		}
		models := []billing.PricingModel{billing.PerUnit, billing.Graduated, billing.Volume, billing.Package, "", "bogus"}
		p := billing.Price{
			Resource:    "tokens.output",
			Model:       models[int(model)%len(models)],
			UnitPrice:   num(unit),
			PackageSize: packageSize,
			Included:    included,
		}
		if p.Model == billing.Graduated || p.Model == billing.Volume {
			p.Tiers = []billing.Tier{
				{UpTo: up0, UnitPrice: num(price0), FlatPrice: num(flat0)},
				{UpTo: up1, UnitPrice: num(price1)},
				{UpTo: up2, UnitPrice: num(price2), FlatPrice: num(flat2)},
			}[:1+int(model/8)%3]
		}
		verr := p.Validate()
		amount, err := p.Amount(quantity)
		billable, tiers, exact, xerr := p.Explain(quantity)
		if (err == nil) != (xerr == nil) {
			t.Fatalf("Amount error %v, Explain error %v", err, xerr)
		}
		if verr != nil {
			if err == nil {
				t.Fatalf("Validate refused the price (%v) but Amount(%d) = %s", verr, quantity, amount)
			}
			return
		}
		if quantity < 0 {
			if !errors.Is(err, billing.ErrInvalidQuery) {
				t.Fatalf("Amount(%d) error = %v, want ErrInvalidQuery", quantity, err)
			}
			return
		}
		if err != nil {
			var fe *billing.FieldError
			if !errors.Is(err, billing.ErrInvalidConfig) || !errors.As(err, &fe) || p.Model == billing.PerUnit || p.Model == billing.Package {
				t.Fatalf("Amount(%d) of a valid %s price: %v", quantity, p.Model, err)
			}
			if last := p.Tiers[len(p.Tiers)-1]; last.UpTo == 0 {
				t.Fatalf("Amount(%d) of a price with an open last tier: %v", quantity, err)
			}
			return
		}
		if amount.IsNegative() {
			t.Fatalf("Amount(%d) = %s < 0", quantity, amount)
		}
		if want := max(0, quantity-max(0, included)); billable != want {
			t.Fatalf("billable = %d, want %d", billable, want)
		}
		if !exact.Equal(amount) {
			t.Fatalf("Explain exact %s != Amount %s", exact, amount)
		}
		checkBreakdown(t, p, billable, tiers, exact)
	})
}
