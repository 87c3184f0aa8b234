package billing

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"
)

// WritePDF writes the invoice as a PDF document: A4 portrait, made in process by
// github.com/go-pdf/fpdf, no external service or font file. It has the same content as
// WriteHTML: a header (number or "DRAFT", status, period, dates, plan, currency, the tenant),
// a table of lines with, under each usage line, its tier-by-tier breakdown (units × unit price +
// flat fee = amount), included units and rounding notes, then the subtotal and total. Pages
// break between rows; every page after the first repeats a short header and the table's column
// headings, and every page is numbered "Page n of N".
//
// Long descriptions wrap inside their column; one longer than six lines is cut there and ends
// with "…" (the HTML and JSON renderings keep it whole). A tenant name wraps over at most three
// lines.
//
// Text: the PDF uses the standard Helvetica font, whose encoding is Windows-1252, so no font is
// embedded and any reader shows it. Characters of Windows-1252 (ASCII, Latin-1 accents such as
// "é ü ñ ß", and "€ – — “ ” … ™ ×") print as they are. Latin letters outside it lose their
// diacritics ("Łódź" prints "Lódz", "Şişli" "Sisli"), a few symbols get
// ASCII stand-ins ("−" "-", "→" "->", "≤" "<="), combining marks and control characters are
// dropped, and every other character (CJK, Cyrillic, Greek, emoji...) prints as "?". The
// document's title metadata keeps the full Unicode text.
//
// Output is deterministic: the document's creation date is the invoice's FinalizedAt (or Created
// when it has not been finalized), its modification date the latest of its dates, and catalogs
// are sorted, so the same invoice gives the same bytes.
//
// It returns an error, and writes nothing, when inv is nil or its currency is not a known
// ISO 4217 code (see CurrencyDigits); otherwise only w's errors. It does not modify inv and is
// safe to call concurrently on the same invoice.
func (inv *Invoice) WritePDF(w io.Writer) error {
	digits, err := inv.renderDigits()
	if err != nil {
		return err
	}
	v := newInvoiceView(inv, digits)
	p := newInvoicePDF(inv, v)
	p.render()
	var buf bytes.Buffer
	if err := p.f.Output(&buf); err != nil {
		return fmt.Errorf("billing: render invoice %q as PDF: %w", inv.ID, err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// Page geometry (millimetres) and the table's columns.
const (
	pdfMarginX      = 15.0
	pdfMarginTop    = 15.0
	pdfMarginBottom = 18.0 // the footer lives in here
	pdfPageW        = 210.0
	pdfPageH        = 297.0
	pdfContentW     = pdfPageW - 2*pdfMarginX

	pdfColDesc   = 84.0
	pdfColNum    = 24.0 // quantity, included, billable
	pdfColAmount = pdfContentW - pdfColDesc - 3*pdfColNum

	pdfMaxDescLines   = 6
	pdfMaxTenantLines = 3
	pdfIndent         = 5.0
)

// Colours (RGB).
var (
	pdfInk   = [3]int{31, 41, 51}
	pdfMuted = [3]int{97, 110, 124}
	pdfRule  = [3]int{205, 211, 218}
	pdfSoft  = [3]int{241, 244, 247}
	pdfAmber = [3]int{180, 83, 9}
	pdfBlue  = [3]int{29, 78, 216}
	pdfGreen = [3]int{4, 120, 87}
	pdfRed   = [3]int{185, 28, 28}
)

// invoicePDF lays out one invoice on an fpdf document.
type invoicePDF struct {
	f       *fpdf.Fpdf
	v       invoiceView
	inTable bool // pages added now repeat the table's column headings
}

func newInvoicePDF(inv *Invoice, v invoiceView) *invoicePDF {
	f := fpdf.New("P", "mm", "A4", "")
	f.SetMargins(pdfMarginX, pdfMarginTop, pdfMarginX)
	f.SetAutoPageBreak(false, pdfMarginBottom) // rows are placed by ensure, never split
	f.SetCatalogSort(true)
	created := inv.Created
	if !inv.FinalizedAt.IsZero() {
		created = inv.FinalizedAt
	}
	modified := created
	for _, t := range []time.Time{inv.Created, inv.FinalizedAt, inv.PaidAt, inv.VoidedAt} {
		if t.After(modified) {
			modified = t
		}
	}
	if created.IsZero() { // zero would mean "now" to fpdf
		created = time.Unix(0, 0).UTC()
	}
	if modified.IsZero() {
		modified = created
	}
	f.SetCreationDate(created)
	f.SetModificationDate(modified)
	title := v.Title
	if v.Tenant != "" {
		title += " - " + v.Tenant
	}
	f.SetTitle(title, true)
	f.SetSubject("Invoice for "+v.Period, true)
	f.SetCreator("github.com/meterplane/billing", false)
	f.AliasNbPages("{nb}")
	p := &invoicePDF{f: f, v: v}
	f.SetHeaderFunc(p.pageHeader)
	f.SetFooterFunc(p.pageFooter)
	return p
}

// render draws the whole document.
func (p *invoicePDF) render() {
	p.f.AddPage()
	p.firstPageHeader()
	p.table()
	p.totals()
}

// text converts s to the Windows-1252 bytes the core fonts draw.
func (p *invoicePDF) text(s string) string { return pdfText(s) }

func (p *invoicePDF) font(style string, size float64, color [3]int) {
	p.f.SetFont("Helvetica", style, size)
	p.f.SetTextColor(color[0], color[1], color[2])
}

func (p *invoicePDF) rule(y float64, color [3]int, width float64) {
	p.f.SetDrawColor(color[0], color[1], color[2])
	p.f.SetLineWidth(width)
	p.f.Line(pdfMarginX, y, pdfPageW-pdfMarginX, y)
}

// wrap splits s (already Windows-1252) into lines that fit width w in the current font, at most
// maxLines lines, the last one ending with an ellipsis when text was cut.
func (p *invoicePDF) wrap(s string, w float64, maxLines int) []string {
	if s == "" {
		return nil
	}
	raw := p.f.SplitLines([]byte(s), w)
	lines := make([]string, 0, len(raw))
	for _, l := range raw {
		lines = append(lines, strings.TrimRight(string(l), " "))
	}
	if maxLines > 0 && len(lines) > maxLines {
		lines = lines[:maxLines]
		last := lines[maxLines-1]
		const ellipsis = "\x85" // "…" in Windows-1252
		for last != "" && p.f.GetStringWidth(last+ellipsis) > w-2*p.f.GetCellMargin() {
			last = last[:len(last)-1]
		}
		lines[maxLines-1] = strings.TrimRight(last, " ") + ellipsis
	}
	return lines
}

// ensure starts a new page unless h millimetres fit above the bottom margin.
func (p *invoicePDF) ensure(h float64) {
	if p.f.GetY()+h > pdfPageH-pdfMarginBottom {
		p.f.AddPage()
	}
}

func statusColor(class string) [3]int {
	switch InvoiceStatus(class) {
	case InvoiceFinalized:
		return pdfBlue
	case InvoicePaid:
		return pdfGreen
	case InvoiceVoid:
		return pdfRed
	}
	return pdfAmber
}

// firstPageHeader draws the title, number, status, dates and the tenant.
func (p *invoicePDF) firstPageHeader() {
	f, v := p.f, p.v
	top := f.GetY()
	p.font("B", 24, pdfInk)
	f.SetXY(pdfMarginX, top)
	f.CellFormat(90, 10, "INVOICE", "", 0, "L", false, 0, "")

	numberColor := pdfInk
	if v.Draft {
		numberColor = pdfAmber
	}
	p.font("B", 14, numberColor)
	f.SetXY(pdfPageW-pdfMarginX-90, top)
	f.CellFormat(90, 7, p.text(v.Number), "", 2, "R", false, 0, "")
	// The status as a small outlined badge, right aligned; a draft already says so.
	if !(v.Draft && v.StatusClass == string(InvoiceDraft)) {
		sc := statusColor(v.StatusClass)
		p.font("B", 8, sc)
		label := p.text(strings.ToUpper(v.Status))
		bw := f.GetStringWidth(label) + 6
		f.SetDrawColor(sc[0], sc[1], sc[2])
		f.SetLineWidth(0.3)
		f.SetXY(pdfPageW-pdfMarginX-bw, top+8)
		f.CellFormat(bw, 5, label, "1", 0, "C", false, 0, "")
	}

	y := top + 16
	p.rule(y, pdfInk, 0.6)
	y += 5

	// Left: bill to. Right: the facts.
	p.font("B", 7.5, pdfMuted)
	f.SetXY(pdfMarginX, y)
	f.CellFormat(95, 4, "BILL TO", "", 2, "L", false, 0, "")
	p.font("B", 12, pdfInk)
	tenant := v.Tenant
	if tenant == "" {
		tenant = "-"
	}
	leftY := y + 5
	for _, line := range p.wrap(p.text(tenant), 95, pdfMaxTenantLines) {
		f.SetXY(pdfMarginX, leftY)
		f.CellFormat(95, 6, line, "", 0, "L", false, 0, "")
		leftY += 6
	}

	facts := []viewPair{{"Period", v.Period}}
	facts = append(facts, v.Dates...)
	if v.PlanID != "" {
		facts = append(facts, viewPair{"Plan", v.PlanID})
	}
	facts = append(facts, viewPair{"Currency", v.Currency})
	const labelW, valueW = 22.0, 60.0
	x := pdfPageW - pdfMarginX - labelW - valueW
	rightY := y
	for _, fact := range facts {
		p.font("", 8.5, pdfMuted)
		f.SetXY(x, rightY)
		f.CellFormat(labelW, 4.6, p.text(fact.Label), "", 0, "L", false, 0, "")
		p.font("", 8.5, pdfInk)
		for _, line := range p.wrap(p.text(fact.Value), valueW, 2) {
			f.SetXY(x+labelW, rightY)
			f.CellFormat(valueW, 4.6, line, "", 0, "L", false, 0, "")
			rightY += 4.6
		}
	}
	f.SetY(max(leftY, rightY) + 6)
}

// pageHeader runs on every new page; after the first it repeats a short header and, inside the
// table, the column headings.
func (p *invoicePDF) pageHeader() {
	if p.f.PageNo() <= 1 {
		return
	}
	f := p.f
	p.font("B", 9, pdfInk)
	f.SetXY(pdfMarginX, pdfMarginTop)
	head := p.v.Title + " (continued)"
	f.CellFormat(pdfContentW/2, 5, p.text(head), "", 0, "L", false, 0, "")
	p.font("", 9, pdfMuted)
	tenant := p.wrap(p.text(p.v.Tenant), pdfContentW/2, 1)
	if len(tenant) > 0 {
		f.CellFormat(pdfContentW/2, 5, tenant[0], "", 0, "R", false, 0, "")
	}
	p.rule(pdfMarginTop+6.5, pdfInk, 0.4)
	f.SetY(pdfMarginTop + 9)
	if p.inTable {
		p.tableHeader()
	}
}

// pageFooter numbers every page.
func (p *invoicePDF) pageFooter() {
	f := p.f
	y := pdfPageH - pdfMarginBottom + 6
	p.rule(y-1.5, pdfRule, 0.2)
	p.font("", 7.5, pdfMuted)
	f.SetXY(pdfMarginX, y)
	left := p.v.Title
	if p.v.ID != "" {
		left += " - id " + p.v.ID
	}
	f.CellFormat(pdfContentW*0.75, 4, p.text(left), "", 0, "L", false, 0, "")
	f.CellFormat(pdfContentW*0.25, 4, fmt.Sprintf("Page %d of {nb}", f.PageNo()), "", 0, "R", false, 0, "")
}

// tableHeader draws the column headings at the current position.
func (p *invoicePDF) tableHeader() {
	f := p.f
	p.font("B", 7.5, pdfMuted)
	f.SetFillColor(pdfSoft[0], pdfSoft[1], pdfSoft[2])
	f.SetX(pdfMarginX)
	f.CellFormat(pdfColDesc, 7, "DESCRIPTION", "", 0, "L", true, 0, "")
	f.CellFormat(pdfColNum, 7, "QUANTITY", "", 0, "R", true, 0, "")
	f.CellFormat(pdfColNum, 7, "INCLUDED", "", 0, "R", true, 0, "")
	f.CellFormat(pdfColNum, 7, "BILLABLE", "", 0, "R", true, 0, "")
	f.CellFormat(pdfColAmount, 7, p.text("AMOUNT ("+p.v.Currency+")"), "", 1, "R", true, 0, "")
	p.rule(f.GetY(), pdfInk, 0.4)
	f.SetY(f.GetY() + 1)
}

// Row heights (millimetres).
const (
	pdfDescLineH   = 4.6
	pdfDetailLineH = 3.8
	pdfTierLineH   = 3.9
	pdfRowPad      = 1.6
)

// lineLayout is a line's text, wrapped and measured before it is drawn.
type lineLayout struct {
	desc, detail []string
	tiers        [][2][]string // per tier: wrapped label+formula, amount
	note         []string
	headH, h     float64 // the main row's height; the whole block's
}

func (p *invoicePDF) layoutLine(lv lineView) lineLayout {
	var ll lineLayout
	p.font("B", 9.5, pdfInk)
	ll.desc = p.wrap(p.text(lv.Description), pdfColDesc, pdfMaxDescLines)
	p.font("", 7.5, pdfMuted)
	detail := lv.Kind
	if lv.Detail != "" {
		detail += " · " + lv.Detail
	}
	ll.detail = p.wrap(p.text(detail), pdfColDesc, 3)
	ll.headH = pdfRowPad + float64(len(ll.desc))*pdfDescLineH + float64(len(ll.detail))*pdfDetailLineH + 0.8
	ll.h = ll.headH
	tierW := pdfContentW - pdfColAmount - pdfIndent
	for _, t := range lv.Tiers {
		lines := p.wrap(p.text(t.Label+": "+t.Formula+" ="), tierW, 3)
		ll.tiers = append(ll.tiers, [2][]string{lines, {p.text(t.Amount)}})
		ll.h += float64(len(lines)) * pdfTierLineH
	}
	if lv.Note != "" {
		p.font("I", 7.5, pdfMuted)
		ll.note = p.wrap(p.text(lv.Note), pdfContentW-pdfIndent, 3)
		ll.h += float64(len(ll.note)) * pdfTierLineH
	}
	ll.h += pdfRowPad
	return ll
}

// table draws the column headings and every line.
func (p *invoicePDF) table() {
	f := p.f
	p.ensure(7 + 12)
	p.tableHeader()
	p.inTable = true
	if len(p.v.Lines) == 0 {
		p.font("I", 9, pdfMuted)
		f.SetX(pdfMarginX)
		f.CellFormat(pdfContentW, 8, "No charges in this period.", "", 1, "L", false, 0, "")
	}
	for _, lv := range p.v.Lines {
		ll := p.layoutLine(lv)
		// Keep a line with its breakdown when the whole block fits on a page; otherwise at
		// least keep the main row whole and let the breakdown continue on the next page.
		if ll.h <= (pdfPageH-pdfMarginTop-pdfMarginBottom)/2 {
			p.ensure(ll.h)
		} else {
			p.ensure(ll.headH)
		}
		p.drawLine(lv, ll)
	}
	p.inTable = false
}

func (p *invoicePDF) drawLine(lv lineView, ll lineLayout) {
	f := p.f
	y := f.GetY() + pdfRowPad
	// The numbers, on the first text line.
	p.font("", 9.5, pdfInk)
	f.SetXY(pdfMarginX+pdfColDesc, y)
	if lv.Usage {
		f.CellFormat(pdfColNum, pdfDescLineH, lv.Quantity, "", 0, "R", false, 0, "")
		f.CellFormat(pdfColNum, pdfDescLineH, lv.Included, "", 0, "R", false, 0, "")
		f.CellFormat(pdfColNum, pdfDescLineH, lv.Billable, "", 0, "R", false, 0, "")
	} else {
		f.SetX(pdfMarginX + pdfColDesc + 3*pdfColNum)
	}
	p.font("B", 9.5, pdfInk)
	f.CellFormat(pdfColAmount, pdfDescLineH, lv.Amount, "", 0, "R", false, 0, "")
	// Description, then kind and detail.
	for _, line := range ll.desc {
		f.SetXY(pdfMarginX, y)
		f.CellFormat(pdfColDesc, pdfDescLineH, line, "", 0, "L", false, 0, "")
		y += pdfDescLineH
	}
	p.font("", 7.5, pdfMuted)
	for _, line := range ll.detail {
		f.SetXY(pdfMarginX, y)
		f.CellFormat(pdfColDesc, pdfDetailLineH, line, "", 0, "L", false, 0, "")
		y += pdfDetailLineH
	}
	y += 0.8
	// The breakdown: one row per tier, amount on its last text line.
	tierW := pdfContentW - pdfColAmount - pdfIndent
	for _, t := range ll.tiers {
		if y+float64(len(t[0]))*pdfTierLineH > pdfPageH-pdfMarginBottom {
			f.AddPage()
			y = f.GetY()
		}
		p.font("", 8, pdfMuted)
		for i, line := range t[0] {
			f.SetXY(pdfMarginX+pdfIndent, y)
			f.CellFormat(tierW, pdfTierLineH, line, "", 0, "L", false, 0, "")
			if i == len(t[0])-1 {
				f.CellFormat(pdfColAmount, pdfTierLineH, t[1][0], "", 0, "R", false, 0, "")
			}
			y += pdfTierLineH
		}
	}
	if len(ll.note) > 0 {
		if y+float64(len(ll.note))*pdfTierLineH > pdfPageH-pdfMarginBottom {
			f.AddPage()
			y = f.GetY()
		}
		p.font("I", 7.5, pdfMuted)
		for _, line := range ll.note {
			f.SetXY(pdfMarginX+pdfIndent, y)
			f.CellFormat(pdfContentW-pdfIndent, pdfTierLineH, line, "", 0, "L", false, 0, "")
			y += pdfTierLineH
		}
	}
	y += pdfRowPad
	p.rule(y, pdfRule, 0.2)
	f.SetY(y)
}

// totals draws the subtotal and the total under the table.
func (p *invoicePDF) totals() {
	f, v := p.f, p.v
	p.ensure(26)
	y := f.GetY() + 3
	const labelW = 50.0
	x := pdfPageW - pdfMarginX - labelW - pdfColAmount
	p.font("", 9.5, pdfInk)
	f.SetXY(x, y)
	f.CellFormat(labelW, 6, "Subtotal", "", 0, "L", false, 0, "")
	f.CellFormat(pdfColAmount, 6, v.Subtotal, "", 0, "R", false, 0, "")
	y += 7
	f.SetDrawColor(pdfInk[0], pdfInk[1], pdfInk[2])
	f.SetLineWidth(0.6)
	f.Line(x, y, pdfPageW-pdfMarginX, y)
	y += 1
	p.font("B", 12, pdfInk)
	f.SetXY(x, y)
	f.CellFormat(labelW, 8, p.text("Total due ("+v.Currency+")"), "", 0, "L", false, 0, "")
	f.CellFormat(pdfColAmount, 8, v.Total, "", 0, "R", false, 0, "")
	y += 12
	p.font("", 7.5, pdfMuted)
	f.SetXY(pdfMarginX, y)
	f.MultiCell(pdfContentW, 3.8, "Amounts are rounded once per line, half up, to the currency's minor unit; "+
		"the total is the sum of the rounded lines.", "", "L", false)
}
