package billing

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
)

//go:embed templates/invoice.html
var invoiceTemplateFS embed.FS

// invoiceHTMLTemplate is parsed once; executing a parsed html/template is safe for concurrent use.
var invoiceHTMLTemplate = template.Must(template.ParseFS(invoiceTemplateFS, "templates/invoice.html"))

// WriteHTML writes the invoice as one printable HTML5 page, self-contained: CSS inline, no
// scripts, images, fonts or other external assets, so it can be mailed, archived or printed to
// PDF by a browser as is. The page shows the number ("DRAFT" before finalization), status,
// period, dates, the tenant, and a table of lines; under each usage line its tier-by-tier
// breakdown (units × unit price + flat fee = amount), the units included free, and the exact
// amount when rounding changed it; then the subtotal and total. A print stylesheet sets A4
// pages, repeats the table header on each page and keeps a line with its breakdown.
//
// It uses html/template, so tenant names, descriptions and every other value are escaped for
// their context: user data never becomes markup. Amounts have the currency's minor unit.
//
// It returns an error, and writes nothing, when inv is nil or its currency is not a known
// ISO 4217 code (see CurrencyDigits); otherwise only w's errors. It does not modify inv and is
// safe to call concurrently on the same invoice.
func (inv *Invoice) WriteHTML(w io.Writer) error {
	digits, err := inv.renderDigits()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := invoiceHTMLTemplate.Execute(&buf, newInvoiceView(inv, digits)); err != nil {
		return fmt.Errorf("billing: render invoice %q as HTML: %w", inv.ID, err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}
