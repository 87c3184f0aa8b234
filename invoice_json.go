package billing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// The JSON document WriteJSON produces. Field names are those of Invoice's own json tags, so
// json.Unmarshal into an Invoice reads it too; what the document adds is a canonical form for
// numbers: every decimal is a JSON string (never a float), amounts printed with exactly the
// currency's minor unit ("79.50", "1000", "1.235"), and prices and exact amounts with the
// precision they need ("0.000002", "0.469134").
type invoiceJSON struct {
	ID          string            `json:"id"`
	Number      string            `json:"number,omitempty"`
	Tenant      string            `json:"tenant"`
	PlanID      string            `json:"plan_id,omitempty"`
	Start       time.Time         `json:"start"`
	End         time.Time         `json:"end"`
	Currency    string            `json:"currency"`
	Status      InvoiceStatus     `json:"status"`
	Lines       []invoiceLineJSON `json:"lines"`
	Subtotal    string            `json:"subtotal"`
	Total       string            `json:"total"`
	Created     time.Time         `json:"created"`
	FinalizedAt time.Time         `json:"finalized_at,omitzero"`
	PaidAt      time.Time         `json:"paid_at,omitzero"`
	VoidedAt    time.Time         `json:"voided_at,omitzero"`
}

type invoiceLineJSON struct {
	Kind        LineKind          `json:"kind"`
	Description string            `json:"description"`
	Resource    string            `json:"resource,omitempty"`
	Match       map[string]string `json:"match,omitempty"`
	Model       PricingModel      `json:"model,omitempty"`
	Quantity    int64             `json:"quantity"`
	Included    int64             `json:"included"`
	Billable    int64             `json:"billable"`
	Tiers       []tierChargeJSON  `json:"tiers,omitempty"`
	Exact       string            `json:"exact"`
	Amount      string            `json:"amount"`
}

type tierChargeJSON struct {
	Tier      int    `json:"tier"`
	First     int64  `json:"first"`
	Last      int64  `json:"last"`
	Units     int64  `json:"units"`
	UnitPrice string `json:"unit_price"`
	FlatPrice string `json:"flat_price"`
	Amount    string `json:"amount"`
}

// WriteJSON writes the invoice as one indented JSON document (two spaces, a final newline) with
// the field names of Invoice's json tags.
//
// The output is canonical, so the same invoice value always gives the same bytes: fields in a
// fixed order, Match keys sorted, times in RFC 3339 with their offset (nanoseconds when present),
// and every decimal as a JSON string, never a float. Amounts (line amounts, subtotal, total) carry
// exactly the currency's minor unit ("79.50" USD, "1000" JPY, "1.235" BHD); prices, exact
// amounts and tier amounts carry at least that many places and as many more as they need
// ("0.000002"). Nothing is rounded, so ReadInvoiceJSON gives back an equal invoice, which writes
// the same bytes again. HTML characters are not escaped (serve it as application/json).
//
// It returns an error, and writes nothing, when inv is nil or its currency is not a known
// ISO 4217 code (see CurrencyDigits); otherwise only w's errors. It does not modify inv and is
// safe to call concurrently on the same invoice.
func (inv *Invoice) WriteJSON(w io.Writer) error {
	digits, err := inv.renderDigits()
	if err != nil {
		return err
	}
	doc := invoiceJSON{
		ID: inv.ID, Number: inv.Number, Tenant: inv.Tenant, PlanID: inv.PlanID,
		Start: inv.Start, End: inv.End, Currency: inv.Currency, Status: inv.Status,
		Lines:    make([]invoiceLineJSON, len(inv.Lines)),
		Subtotal: formatMoney(inv.Subtotal, digits),
		Total:    formatMoney(inv.Total, digits),
		Created:  inv.Created, FinalizedAt: inv.FinalizedAt, PaidAt: inv.PaidAt, VoidedAt: inv.VoidedAt,
	}
	for i, l := range inv.Lines {
		lj := invoiceLineJSON{
			Kind: l.Kind, Description: l.Description, Resource: l.Resource, Match: l.Match,
			Model: l.Model, Quantity: l.Quantity, Included: l.Included, Billable: l.Billable,
			Exact:  formatMoney(l.Exact, digits),
			Amount: formatMoney(l.Amount, digits),
		}
		for _, tc := range l.Tiers {
			lj.Tiers = append(lj.Tiers, tierChargeJSON{
				Tier: tc.Tier, First: tc.First, Last: tc.Last, Units: tc.Units,
				UnitPrice: formatMoney(tc.UnitPrice, digits),
				FlatPrice: formatMoney(tc.FlatPrice, digits),
				Amount:    formatMoney(tc.Amount, digits),
			})
		}
		doc.Lines[i] = lj
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("billing: encode invoice %q as JSON: %w", inv.ID, err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// ReadInvoiceJSON reads one invoice written by WriteJSON (or any JSON with Invoice's field
// names). Decimals may be JSON strings or numbers; strings are read exactly. Unknown fields are
// ignored, so documents from a newer version still read; anything after the document other than
// white space is an error, as is malformed JSON or a value of the wrong type (the error names the
// field). Lines is never nil on success. It is safe for concurrent use.
func ReadInvoiceJSON(r io.Reader) (*Invoice, error) {
	dec := json.NewDecoder(r)
	var inv *Invoice
	if err := dec.Decode(&inv); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("billing: read invoice JSON: field %q: %w", te.Field, err)
		}
		return nil, fmt.Errorf("billing: read invoice JSON: %w", err)
	}
	if inv == nil {
		return nil, errors.New("billing: read invoice JSON: the document is null, not an invoice")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("billing: read invoice JSON: unexpected data after the invoice")
	}
	if inv.Lines == nil {
		inv.Lines = []InvoiceLine{}
	}
	return inv, nil
}
