package billing

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"
)

// invoiceCSVHeader names the columns WriteCSV writes, in order.
var invoiceCSVHeader = []string{
	"invoice_number", "tenant", "period_start", "period_end", "currency", "kind",
	"description", "resource", "match", "quantity", "included", "billable", "amount",
}

// WriteCSV writes the invoice as CSV (RFC 4180, via encoding/csv, "\n" line endings): a header
// row, then one row per line in invoice order, and nothing else (no total row: the total is the
// sum of the amount column). The columns are
//
//	invoice_number, tenant, period_start, period_end, currency, kind, description, resource,
//	match, quantity, included, billable, amount
//
// invoice_number is empty on a draft. period_start and period_end are the half-open span
// [Start, End) in RFC 3339 with their offset. match is the line's attributes as "k=v;k=v",
// keys sorted. quantity, included and billable are plain integers; amount has exactly the
// currency's minor unit of decimal places ("79.50", "1000" JPY, "1.235" BHD), no grouping.
//
// Formula injection: spreadsheets run a cell that starts with "=", "+", "-" or "@" (and some a
// tab or carriage return) as a formula, and tenant names and descriptions are user data. So a
// text cell (invoice_number, tenant, kind, description, resource, match) that starts with one of
// those characters is written with a single quote (') in front, which spreadsheets show as text
// and hide. Number and date cells are written by this function and never prefixed, so a negative
// amount stays "-5.00". A program reading the file should drop that leading quote from text
// cells.
//
// It returns an error, and writes nothing, when inv is nil or its currency is not a known
// ISO 4217 code (see CurrencyDigits); otherwise only w's errors. It does not modify inv and is
// safe to call concurrently on the same invoice.
func (inv *Invoice) WriteCSV(w io.Writer) error {
	digits, err := inv.renderDigits()
	if err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(invoiceCSVHeader); err != nil {
		return err
	}
	number, tenant := csvText(inv.Number), csvText(inv.Tenant)
	start, end := inv.Start.Format(time.RFC3339Nano), inv.End.Format(time.RFC3339Nano)
	currency := csvText(inv.Currency)
	for _, l := range inv.Lines {
		row := []string{
			number, tenant, start, end, currency,
			csvText(string(l.Kind)),
			csvText(l.Description),
			csvText(l.Resource),
			csvText(formatMatch(l.Match)),
			strconv.FormatInt(l.Quantity, 10),
			strconv.FormatInt(l.Included, 10),
			strconv.FormatInt(l.Billable, 10),
			formatMoney(l.Amount, digits),
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("billing: write invoice %q as CSV: %w", inv.ID, err)
	}
	return nil
}

// csvText defuses spreadsheet formula injection in a text cell: a value that starts with "=",
// "+", "-", "@", a tab or a carriage return gets a leading single quote.
func csvText(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
