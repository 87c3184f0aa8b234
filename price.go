package billing

import (
	"fmt"
	"sort"

	"github.com/shopspring/decimal"
)

// Limits on the money values of a Price (unit and flat prices) and a Plan (base fee, minimum).
// They keep every amount a price can produce exact and cheap to compute.
const (
	// MaxMoneyPlaces is the most decimal places a money value may have: 0.000002 has 6.
	MaxMoneyPlaces = 18
	// MaxMoneyDigits is the most digits a money value may have before its decimal point: values
	// stay below 10^15.
	MaxMoneyDigits = 15
)

// Validate checks p: a resource name, a known model with the fields it needs, non-negative
// prices, tiers in strictly increasing UpTo order with a 0 (no end) UpTo on the last tier only,
// a positive PackageSize for a package price, non-negative Included, and Match keys and values
// valid as Event attributes. Fields a model does not use must be empty (a UnitPrice on a
// graduated price, Tiers on a per-unit price, a PackageSize on anything but a package price), so
// that a misconfigured price fails here rather than charging something unexpected.
//
// The error matches ErrInvalidConfig and is a *FieldError naming the field, such as
// "tiers[1].up_to" or "match[model]". Validate is safe for concurrent use.
func (p Price) Validate() error {
	if fe := p.validate(""); fe != nil {
		return fe
	}
	return nil
}

func (p *Price) validate(prefix string) *FieldError {
	bad := func(field, format string, args ...any) *FieldError {
		return fieldErr(ErrInvalidConfig, prefix+field, format, args...)
	}
	if r := checkName(p.Resource); r != "" {
		return bad("resource", "%s", r)
	}
	if fe := checkMatch(p.Match, prefix); fe != nil {
		return fe
	}
	if r := checkText(p.Description); r != "" {
		return bad("description", "%s", r)
	}
	switch p.Model {
	case PerUnit, Package:
		if r := checkMoney(p.UnitPrice); r != "" {
			return bad("unit_price", "%s", r)
		}
		if len(p.Tiers) > 0 {
			return bad("tiers", "only graduated and volume prices have tiers (model is %s); use unit_price", p.Model)
		}
		if p.Model == Package && p.PackageSize <= 0 {
			return bad("package_size", "must be > 0 for a package price (got %d)", p.PackageSize)
		}
		if p.Model == PerUnit && p.PackageSize != 0 {
			return bad("package_size", "applies to package prices only (model is %s); remove it", p.Model)
		}
	case Graduated, Volume:
		if !p.UnitPrice.IsZero() {
			return bad("unit_price", "a %s price charges its tiers' unit prices; set tiers[i].unit_price instead", p.Model)
		}
		if p.PackageSize != 0 {
			return bad("package_size", "applies to package prices only (model is %s); remove it", p.Model)
		}
		if len(p.Tiers) == 0 {
			return bad("tiers", "a %s price needs at least one tier", p.Model)
		}
		last := len(p.Tiers) - 1
		var prev int64
		for i, t := range p.Tiers {
			f := fmt.Sprintf("tiers[%d].", i)
			switch {
			case t.UpTo < 0:
				return bad(f+"up_to", "must be >= 0, with 0 meaning no end (got %d)", t.UpTo)
			case t.UpTo == 0 && i != last:
				return bad(f+"up_to", "0 (no end) is allowed on the last tier only; give this tier its last unit")
			case t.UpTo != 0 && t.UpTo <= prev:
				return bad(f+"up_to", "must be greater than tiers[%d].up_to (%d): tiers go in increasing order and must not overlap (got %d)", i-1, prev, t.UpTo)
			}
			if r := checkMoney(t.UnitPrice); r != "" {
				return bad(f+"unit_price", "%s", r)
			}
			if r := checkMoney(t.FlatPrice); r != "" {
				return bad(f+"flat_price", "%s", r)
			}
			prev = t.UpTo
		}
	case "":
		return bad("model", "is required: one of per_unit, graduated, volume, package")
	default:
		return bad("model", "unknown pricing model %q: use per_unit, graduated, volume or package", p.Model)
	}
	if p.Included < 0 {
		return bad("included", "must be >= 0 (got %d)", p.Included)
	}
	return nil
}

// checkMatch validates the attributes of a price's Match like those of an Event, reporting the
// first bad entry in key order so that the error does not depend on map order.
func checkMatch(match map[string]string, prefix string) *FieldError {
	if len(match) > MaxAttrs {
		return fieldErr(ErrInvalidConfig, prefix+"match", "must have at most %d entries (got %d)", MaxAttrs, len(match))
	}
	keys := make([]string, 0, len(match))
	for k := range match {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := match[k]
		if r := checkKey(k); r != "" {
			return fieldErr(ErrInvalidConfig, prefix+"match", "key %q: %s", k, r)
		}
		if len(v) > MaxAttrValueLen {
			return fieldErr(ErrInvalidConfig, prefix+"match["+k+"]", "must be at most %d bytes (got %d)", MaxAttrValueLen, len(v))
		}
		if r := checkText(v); r != "" {
			return fieldErr(ErrInvalidConfig, prefix+"match["+k+"]", "%s", r)
		}
	}
	return nil
}

// checkMoney validates a price, fee or minimum: not negative, at most MaxMoneyPlaces decimal
// places and below 10^MaxMoneyDigits. It returns the broken rule or "". The bounds are checked
// before the value is printed or computed with, so a value such as 1e-9999 costs nothing.
func checkMoney(d decimal.Decimal) string {
	n := d.Normalize() // no trailing zeros: 1.500 has 1 decimal place
	if n.IsZero() {
		return ""
	}
	if exp := n.Exponent(); exp < -MaxMoneyPlaces {
		return fmt.Sprintf("must have at most %d decimal places (got %d)", MaxMoneyPlaces, -int64(exp))
	}
	if int64(n.NumDigits())+int64(n.Exponent()) > MaxMoneyDigits {
		return fmt.Sprintf("must be less than 10^%d", MaxMoneyDigits)
	}
	if n.IsNegative() {
		return "must be >= 0 (got " + d.String() + ")"
	}
	return ""
}

// Amount returns what quantity units of usage cost under p over one invoice period: exact, not
// rounded (invoices round each line once, with RoundMoney). Included units are taken off first;
// the rest is priced by the model (see Explain). Amount is a pure function of p and quantity, and
// equals the sum of the amounts of Explain's tier charges.
//
// Errors: an invalid p (see Validate) or a billable quantity beyond the last tier of a price
// without a final no-end tier match ErrInvalidConfig; a negative quantity matches
// ErrInvalidQuery. Amount is safe for concurrent use.
func (p Price) Amount(quantity int64) (decimal.Decimal, error) {
	_, _, exact, err := p.Explain(quantity)
	return exact, err
}

// Explain prices quantity units like Amount and says how: billable is quantity less the
// Included units (never below zero), tiers is the tier-by-tier breakdown and exact the total,
// the sum of the tiers' amounts, not rounded.
//
// By model, with b billable units:
//   - PerUnit: one charge of b units at UnitPrice.
//   - Package: one charge of ceil(b / PackageSize) packages at UnitPrice (First and Last span the
//     b units; Units counts packages).
//   - Graduated: one charge per tier reached (a tier is reached when b is at least its first
//     unit): the units of b inside the tier at its UnitPrice, plus its FlatPrice. Tier i covers
//     units Tiers[i-1].UpTo+1 through Tiers[i].UpTo.
//   - Volume: one charge for the tier b lands in (the first whose UpTo is 0 or at least b): all
//     b units at its UnitPrice, plus its FlatPrice.
//
// Zero billable units (no usage, or usage within Included) reach no tier: tiers is empty and
// exact is zero, whatever the model; a tier's flat fee is charged only when usage reaches it.
//
// A graduated or volume price whose last tier has an end (UpTo > 0) cannot price units past it:
// Explain then returns an error matching ErrInvalidConfig, on the last tier's up_to, that names
// the first unit without a tier. Validate cannot catch this, because it depends on the quantity;
// end the tiers with UpTo 0 to price any quantity. Other errors are those of Amount. On error,
// billable is 0, tiers nil and exact zero. Explain is safe for concurrent use.
func (p Price) Explain(quantity int64) (billable int64, tiers []TierCharge, exact decimal.Decimal, err error) {
	if fe := p.validate(""); fe != nil {
		return 0, nil, decimal.Zero, fe
	}
	if quantity < 0 {
		return 0, nil, decimal.Zero, fieldErr(ErrInvalidQuery, "quantity", "must be >= 0 (got %d)", quantity)
	}
	billable = quantity - min(quantity, p.Included)
	if billable == 0 {
		return 0, nil, decimal.Zero, nil
	}
	switch p.Model {
	case PerUnit:
		tiers = []TierCharge{tierCharge(0, 1, billable, billable, p.UnitPrice, decimal.Zero)}
	case Package:
		packages := billable / p.PackageSize
		if billable%p.PackageSize != 0 {
			packages++
		}
		tiers = []TierCharge{tierCharge(0, 1, billable, packages, p.UnitPrice, decimal.Zero)}
	case Volume:
		for i, t := range p.Tiers {
			if t.UpTo == 0 || billable <= t.UpTo {
				tiers = []TierCharge{tierCharge(i, 1, billable, billable, t.UnitPrice, t.FlatPrice)}
				break
			}
		}
	case Graduated:
		var prev int64 // the last unit of the previous tier
		for i, t := range p.Tiers {
			if billable <= prev {
				break
			}
			last := billable
			if t.UpTo != 0 && t.UpTo < billable {
				last = t.UpTo
			}
			tiers = append(tiers, tierCharge(i, prev+1, last, last-prev, t.UnitPrice, t.FlatPrice))
			prev = last
		}
	}
	if n := len(tiers); n == 0 || tiers[n-1].Last != billable {
		return 0, nil, decimal.Zero, p.noTier(billable)
	}
	exact = decimal.Zero
	for _, t := range tiers {
		exact = exact.Add(t.Amount)
	}
	return billable, tiers, exact, nil
}

func tierCharge(tier int, first, last, units int64, unitPrice, flatPrice decimal.Decimal) TierCharge {
	return TierCharge{
		Tier:      tier,
		First:     first,
		Last:      last,
		Units:     units,
		UnitPrice: unitPrice,
		FlatPrice: flatPrice,
		Amount:    unitPrice.Mul(decimal.NewFromInt(units)).Add(flatPrice),
	}
}

// noTier is the error for billable units past the last tier of a price whose tiers all end.
func (p *Price) noTier(billable int64) *FieldError {
	last := len(p.Tiers) - 1
	end := p.Tiers[last].UpTo
	return fieldErr(ErrInvalidConfig, fmt.Sprintf("tiers[%d].up_to", last),
		"the %s price for %s has no tier for unit %d (of %d billable): its last tier ends at unit %d; end the tiers with up_to 0 (no end) or raise this up_to",
		p.Model, p.Resource, end+1, billable, end)
}

// Matches reports whether usage with the attributes group is priced by p: every key of p.Match
// is present in group with the same value. Extra keys in group do not matter, and an empty Match
// matches every group. Matches does not look at the resource. It is safe for concurrent use.
func (p Price) Matches(group map[string]string) bool {
	for k, want := range p.Match {
		if got, ok := group[k]; !ok || got != want {
			return false
		}
	}
	return true
}

// validatePricing checks the money part of a plan: its currency, base fee, minimum and prices.
// Field names are prefixed "plan.", as in "plan.prices[2].tiers[1].up_to".
func (p *Plan) validatePricing() error {
	if p.Currency == "" {
		if len(p.Prices) > 0 || !p.BaseFee.IsZero() || !p.Minimum.IsZero() {
			return fieldErr(ErrInvalidConfig, "plan.currency", "is required when the plan has prices, a base fee or a minimum: set an ISO 4217 code such as USD")
		}
	} else if _, err := CurrencyDigits(p.Currency); err != nil {
		return fieldErr(ErrInvalidConfig, "plan.currency", "unknown ISO 4217 currency %q: use a code such as USD, EUR or JPY", p.Currency)
	}
	if r := checkMoney(p.BaseFee); r != "" {
		return fieldErr(ErrInvalidConfig, "plan.base_fee", "%s", r)
	}
	if r := checkMoney(p.Minimum); r != "" {
		return fieldErr(ErrInvalidConfig, "plan.minimum", "%s", r)
	}
	for i := range p.Prices {
		pr := &p.Prices[i]
		f := fmt.Sprintf("plan.prices[%d].", i)
		if fe := pr.validate(f); fe != nil {
			return fe
		}
		for j := range i {
			if q := &p.Prices[j]; q.Resource == pr.Resource && q.Matches(pr.Match) {
				return fieldErr(ErrInvalidConfig, f+"match",
					"is never used: plan.prices[%d] (also %s, match %s) takes all the usage this price matches first; put the more specific price first",
					j, q.Resource, EncodeAttrs(q.Match))
			}
		}
	}
	return nil
}
