package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// PaymentGateway collects the money of finalized invoices: a Stripe-, Adyen- or Asaas-style
// service plugs in by implementing it. The library ships no gateway. Implementations must be safe
// for concurrent use and idempotent per invoice ID (CreatePayment may be retried).
type PaymentGateway interface {
	// CreatePayment asks the gateway to collect inv.Total in inv.Currency for inv (finalized).
	CreatePayment(ctx context.Context, inv *Invoice) (Payment, error)
	// PaymentStatus returns the current state of the payment with id.
	PaymentStatus(ctx context.Context, id string) (Payment, error)
}

// PaymentStatus is the state of a payment at the gateway.
type PaymentStatus string

// The payment states.
const (
	PaymentPending  PaymentStatus = "pending"
	PaymentPaid     PaymentStatus = "paid"
	PaymentFailed   PaymentStatus = "failed"
	PaymentCanceled PaymentStatus = "canceled"
)

// Payment is a gateway's record of collecting one invoice.
type Payment struct {
	ID        string          `json:"id"`
	InvoiceID string          `json:"invoice_id"`
	Status    PaymentStatus   `json:"status"`
	Amount    decimal.Decimal `json:"amount"`
	Currency  string          `json:"currency"`
	// URL is where the customer pays (a checkout page), when the gateway has one.
	URL     string    `json:"url,omitempty"`
	Updated time.Time `json:"updated"`
}

// CollectPayment asks gw to collect the finalized invoice id, and marks the invoice paid if the
// gateway reports it paid at once. Call SyncPayment later for payments that complete afterwards.
func (m *Meter) CollectPayment(ctx context.Context, gw PaymentGateway, id string) (Payment, error) {
	inv, err := m.cfg.Store.GetInvoice(ctx, id)
	if err != nil {
		return Payment{}, err
	}
	if inv.Status != InvoiceFinalized {
		return Payment{}, fmt.Errorf("billing: invoice %s is %s; only a finalized invoice can be collected", id, inv.Status)
	}
	p, err := gw.CreatePayment(ctx, inv)
	if err != nil {
		return Payment{}, fmt.Errorf("billing: payment gateway refused invoice %s: %w", id, err)
	}
	return p, m.settle(ctx, inv, p)
}

// SyncPayment reads the payment paymentID from gw and marks the invoice id paid when it is.
func (m *Meter) SyncPayment(ctx context.Context, gw PaymentGateway, id, paymentID string) (Payment, error) {
	inv, err := m.cfg.Store.GetInvoice(ctx, id)
	if err != nil {
		return Payment{}, err
	}
	p, err := gw.PaymentStatus(ctx, paymentID)
	if err != nil {
		return Payment{}, fmt.Errorf("billing: payment gateway status of %s: %w", paymentID, err)
	}
	return p, m.settle(ctx, inv, p)
}

func (m *Meter) settle(ctx context.Context, inv *Invoice, p Payment) error {
	if p.Status != PaymentPaid || inv.Status == InvoicePaid {
		return nil
	}
	if !p.Amount.Equal(inv.Total) || p.Currency != inv.Currency {
		return fmt.Errorf("billing: payment %s is %s %s but invoice %s is %s %s: not marked paid",
			p.ID, p.Amount, p.Currency, inv.ID, inv.Total, inv.Currency)
	}
	_, err := m.MarkPaid(ctx, inv.ID)
	return err
}
