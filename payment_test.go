package billing_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
)

// invGateway is a fake payment gateway (the outside world): it records the payments it is asked
// to create and reports them paid at once, or pending until the test settles them.
type invGateway struct {
	mu       sync.Mutex
	now      func() time.Time
	paidNow  bool                                  // CreatePayment reports paid at once
	amount   func(decimal.Decimal) decimal.Decimal // what the gateway says was paid; nil: the invoice total
	currency string                                // the currency the gateway reports; empty: the invoice's
	fail     error                                 // CreatePayment fails with it
	payments map[string]billing.Payment            // by payment id
	creates  int
}

func newInvGateway(now func() time.Time) *invGateway {
	return &invGateway{now: now, payments: map[string]billing.Payment{}}
}

func (g *invGateway) CreatePayment(_ context.Context, inv *billing.Invoice) (billing.Payment, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.creates++
	if g.fail != nil {
		return billing.Payment{}, g.fail
	}
	id := "pay_" + inv.ID // idempotent per invoice
	if p, ok := g.payments[id]; ok {
		return p, nil
	}
	p := billing.Payment{ID: id, InvoiceID: inv.ID, Status: billing.PaymentPending, Amount: inv.Total,
		Currency: inv.Currency, URL: "https://pay.example/" + id, Updated: g.now()}
	if g.amount != nil {
		p.Amount = g.amount(inv.Total)
	}
	if g.currency != "" {
		p.Currency = g.currency
	}
	if g.paidNow {
		p.Status = billing.PaymentPaid
	}
	g.payments[id] = p
	return p, nil
}

func (g *invGateway) PaymentStatus(_ context.Context, id string) (billing.Payment, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok := g.payments[id]
	if !ok {
		return billing.Payment{}, fmt.Errorf("gateway: no payment %q", id)
	}
	return p, nil
}

// settle sets the status of payment id, as the customer's action at the gateway would.
func (g *invGateway) settle(id string, s billing.PaymentStatus) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.payments[id]
	p.Status, p.Updated = s, g.now()
	g.payments[id] = p
}

var _ billing.PaymentGateway = (*invGateway)(nil)

// invFinalized returns a meter with a finalized invoice of tenant for February (5 requests at
// 1.00 USD, plus a 0.005 USD price so that the total is rounded).
func invFinalized(t *testing.T, tenants ...string) (*billing.Meter, *invClock, map[string]*billing.Invoice) {
	t.Helper()
	m, clock := invMeter(t, billing.Config{DefaultPlan: "p"}, invAt(20, 0, 0))
	invSetPlan(t, m, billing.Plan{ID: "p", Currency: "USD", Prices: []billing.Price{
		{Resource: "requests", Model: billing.PerUnit, UnitPrice: invD("1")},
		{Resource: "tokens", Model: billing.PerUnit, UnitPrice: invD("0.005")},
	}})
	out := map[string]*billing.Invoice{}
	for _, tenant := range tenants {
		e, tok := invEv("requests", 5, invAt(10, 0, 0)), invEv("tokens", 1, invAt(10, 0, 0))
		e.Tenant, tok.Tenant = tenant, tenant
		invTrack(t, m, e, tok)
	}
	clock.Set(invInGrace)
	for _, tenant := range tenants {
		out[tenant] = invFinalize(t, m, invGenerate(t, m, tenant, invFeb).ID)
		if !out[tenant].Total.Equal(invD("5.01")) {
			t.Fatalf("total %s, want 5.01", out[tenant].Total)
		}
	}
	return m, clock, out
}

func TestPaymentCollectPaidAtOnce(t *testing.T) {
	ctx := context.Background()
	m, clock, invs := invFinalized(t, "acme")
	inv := invs["acme"]
	gw := newInvGateway(clock.Now)
	gw.paidNow = true
	clock.Set(invInGrace.Add(time.Hour))
	p, err := m.CollectPayment(ctx, gw, inv.ID)
	if err != nil {
		t.Fatalf("CollectPayment: %v", err)
	}
	if p.Status != billing.PaymentPaid || p.InvoiceID != inv.ID || !p.Amount.Equal(inv.Total) || p.Currency != "USD" {
		t.Errorf("payment %+v", p)
	}
	got, err := m.Invoice(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != billing.InvoicePaid || !got.PaidAt.Equal(invInGrace.Add(time.Hour)) || got.Number != inv.Number {
		t.Errorf("invoice after a payment paid at once: %s paid at %s, want paid at %s", got.Status, got.PaidAt, invInGrace.Add(time.Hour))
	}
	// Syncing a paid payment of a paid invoice is a no-op; collecting again is refused.
	if _, err := m.SyncPayment(ctx, gw, inv.ID, p.ID); err != nil {
		t.Errorf("SyncPayment of a paid invoice: %v", err)
	}
	if _, err := m.CollectPayment(ctx, gw, inv.ID); err == nil {
		t.Error("CollectPayment of a paid invoice succeeded")
	}
	if gw.creates != 1 {
		t.Errorf("the gateway was asked %d times to create a payment, want 1", gw.creates)
	}
}

func TestPaymentCollectPaidLater(t *testing.T) {
	ctx := context.Background()
	m, clock, invs := invFinalized(t, "acme")
	inv := invs["acme"]
	gw := newInvGateway(clock.Now)
	p, err := m.CollectPayment(ctx, gw, inv.ID)
	if err != nil {
		t.Fatalf("CollectPayment: %v", err)
	}
	if p.Status != billing.PaymentPending || p.URL == "" {
		t.Errorf("payment %+v, want pending with a URL", p)
	}
	if got, _ := m.Invoice(ctx, inv.ID); got.Status != billing.InvoiceFinalized {
		t.Fatalf("invoice is %s while its payment is pending, want finalized", got.Status)
	}
	if p, err := m.SyncPayment(ctx, gw, inv.ID, p.ID); err != nil || p.Status != billing.PaymentPending {
		t.Errorf("SyncPayment while pending: %+v, %v", p, err)
	}
	if got, _ := m.Invoice(ctx, inv.ID); got.Status != billing.InvoiceFinalized {
		t.Fatalf("invoice is %s after syncing a pending payment, want finalized", got.Status)
	}
	// A failed payment leaves the invoice finalized too.
	gw.settle(p.ID, billing.PaymentFailed)
	if _, err := m.SyncPayment(ctx, gw, inv.ID, p.ID); err != nil {
		t.Errorf("SyncPayment of a failed payment: %v", err)
	}
	if got, _ := m.Invoice(ctx, inv.ID); got.Status != billing.InvoiceFinalized {
		t.Fatalf("invoice is %s after a failed payment, want finalized", got.Status)
	}
	clock.Set(invInGrace.Add(3 * time.Hour))
	gw.settle(p.ID, billing.PaymentPaid)
	synced, err := m.SyncPayment(ctx, gw, inv.ID, p.ID)
	if err != nil || synced.Status != billing.PaymentPaid {
		t.Fatalf("SyncPayment once paid: %+v, %v", synced, err)
	}
	got, _ := m.Invoice(ctx, inv.ID)
	if got.Status != billing.InvoicePaid || !got.PaidAt.Equal(invInGrace.Add(3*time.Hour)) {
		t.Errorf("invoice after the payment completed: %s at %s", got.Status, got.PaidAt)
	}
	// Syncing again changes nothing.
	if _, err := m.SyncPayment(ctx, gw, inv.ID, p.ID); err != nil {
		t.Errorf("second SyncPayment: %v", err)
	}
	if again, _ := m.Invoice(ctx, inv.ID); !again.PaidAt.Equal(got.PaidAt) || again.Status != billing.InvoicePaid {
		t.Errorf("second SyncPayment changed the invoice: %+v", again)
	}
	if _, err := m.SyncPayment(ctx, gw, inv.ID, "pay_unknown"); err == nil || !strings.Contains(err.Error(), "pay_unknown") {
		t.Errorf("SyncPayment of an unknown payment: %v", err)
	}
}

func TestPaymentMismatchRefused(t *testing.T) {
	ctx := context.Background()
	m, clock, invs := invFinalized(t, "short", "more", "currency", "exact")
	for _, tc := range []struct {
		tenant   string
		amount   func(decimal.Decimal) decimal.Decimal
		currency string
	}{
		{"short", func(d decimal.Decimal) decimal.Decimal { return d.Sub(invD("0.01")) }, ""},
		{"more", func(d decimal.Decimal) decimal.Decimal { return d.Add(invD("0.01")) }, ""},
		{"currency", nil, "EUR"},
	} {
		inv := invs[tc.tenant]
		gw := newInvGateway(clock.Now)
		gw.paidNow, gw.amount, gw.currency = true, tc.amount, tc.currency
		p, err := m.CollectPayment(ctx, gw, inv.ID)
		if err == nil || !strings.Contains(err.Error(), "not marked paid") {
			t.Errorf("%s: CollectPayment of a payment of %s %s for an invoice of %s %s: %v, want refused",
				tc.tenant, p.Amount, p.Currency, inv.Total, inv.Currency, err)
		}
		if got, _ := m.Invoice(ctx, inv.ID); got.Status != billing.InvoiceFinalized {
			t.Errorf("%s: invoice is %s after a mismatched payment, want finalized", tc.tenant, got.Status)
		}
		// The same through SyncPayment, for a payment that completes later.
		gw.paidNow = false
		gw.payments = map[string]billing.Payment{}
		p, _ = gw.CreatePayment(ctx, inv)
		gw.settle(p.ID, billing.PaymentPaid)
		if _, err := m.SyncPayment(ctx, gw, inv.ID, p.ID); err == nil {
			t.Errorf("%s: SyncPayment of a mismatched payment succeeded", tc.tenant)
		}
		if got, _ := m.Invoice(ctx, inv.ID); got.Status != billing.InvoiceFinalized {
			t.Errorf("%s: invoice is %s after syncing a mismatched payment, want finalized", tc.tenant, got.Status)
		}
	}
	// An amount equal in value but written with other trailing zeros is a match.
	gw := newInvGateway(clock.Now)
	gw.paidNow = true
	gw.amount = func(d decimal.Decimal) decimal.Decimal { return invD(d.StringFixed(4)) }
	if _, err := m.CollectPayment(ctx, gw, invs["exact"].ID); err != nil {
		t.Errorf("CollectPayment of 5.0100 USD for 5.01 USD: %v", err)
	}
}

func TestPaymentInvalidStates(t *testing.T) {
	ctx := context.Background()
	m, clock, invs := invFinalized(t, "acme", "voided")
	gw := newInvGateway(clock.Now)
	gw.paidNow = true

	draft := invGenerate(t, m, "other", invFeb)
	if _, err := m.CollectPayment(ctx, gw, draft.ID); err == nil || !strings.Contains(err.Error(), "draft") {
		t.Errorf("CollectPayment of a draft: %v, want an error naming its status", err)
	}
	if gw.creates != 0 {
		t.Errorf("the gateway was asked to collect a draft")
	}
	if _, err := m.CollectPayment(ctx, gw, "inv_missing"); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("CollectPayment of a missing invoice: %v, want ErrNotFound", err)
	}

	// A void invoice is not collected, and a payment reported for it does not mark it paid.
	voided := invs["voided"]
	p, err := gw.CreatePayment(ctx, voided) // created before the invoice was voided
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.VoidInvoice(ctx, voided.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CollectPayment(ctx, gw, voided.ID); err == nil {
		t.Error("CollectPayment of a void invoice succeeded")
	}
	if _, err := m.SyncPayment(ctx, gw, voided.ID, p.ID); err == nil {
		t.Error("SyncPayment marked a void invoice paid")
	}
	if got, _ := m.Invoice(ctx, voided.ID); got.Status != billing.InvoiceVoid {
		t.Errorf("void invoice became %s", got.Status)
	}

	// A gateway error is returned, wrapped, and the invoice stays finalized.
	boom := errors.New("gateway down")
	gw.fail = boom
	if _, err := m.CollectPayment(ctx, gw, invs["acme"].ID); !errors.Is(err, boom) {
		t.Errorf("CollectPayment with a failing gateway: %v, want it to wrap %v", err, boom)
	}
	if got, _ := m.Invoice(ctx, invs["acme"].ID); got.Status != billing.InvoiceFinalized {
		t.Errorf("invoice is %s after a gateway error, want finalized", got.Status)
	}
}
