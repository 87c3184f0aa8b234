package middleware

import (
	"fmt"

	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
)

// HeaderCost is the response header (or, for a streamed response, trailer) with the list price of
// a chat request: its input and output tokens priced by ChatOptions.Prices, exact, then its
// currency, as in "X-Billing-Cost: 0.001234 USD".
const HeaderCost = "X-Billing-Cost"

// pricer prices the tokens of one request with the per-model prices of ChatOptions.
type pricer struct {
	prices   []billing.Price
	currency string
	in, out  string // resources
}

// newPricer checks the prices; nil when there are none.
func newPricer(prices []billing.Price, currency, in, out string) (*pricer, error) {
	if len(prices) == 0 {
		return nil, nil
	}
	if _, err := billing.CurrencyDigits(currency); err != nil {
		return nil, fmt.Errorf("ChatOptions.Currency: %w", err)
	}
	for i, p := range prices {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("ChatOptions.Prices[%d]: %w", i, err)
		}
	}
	return &pricer{prices: prices, currency: currency, in: in, out: out}, nil
}

// cost returns the header value for a request of model that used in input and out output tokens,
// or "" when no price applies. Each resource is priced by the first price for it whose Match the
// model satisfies (the rule invoices follow), with Price.Amount applied to this request alone:
// exact for per-unit prices; for tiered prices and Included units it is the price of the request
// as if it were the period's only usage, so an invoice, which prices the period's total, can
// differ.
func (p *pricer) cost(model string, in, out int64) string {
	if p == nil {
		return ""
	}
	group := map[string]string{"model": model}
	total, priced := decimal.Zero, false
	for _, u := range []struct {
		resource string
		n        int64
	}{{p.in, in}, {p.out, out}} {
		for _, pr := range p.prices {
			if pr.Resource != u.resource || !pr.Matches(group) {
				continue
			}
			if amt, err := pr.Amount(u.n); err == nil {
				total, priced = total.Add(amt), true
			}
			break
		}
	}
	if !priced {
		return ""
	}
	return total.String() + " " + p.currency
}

// models returns the models named by the prices' "model" matches, in order.
func modelsOf(prices []billing.Price) []string {
	var out []string
	for _, p := range prices {
		if m, ok := p.Match["model"]; ok {
			out = append(out, m)
		}
	}
	return out
}
