package billing

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

func renderPDF(t *testing.T, inv *Invoice) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := inv.WritePDF(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.Bytes()
	if !bytes.HasPrefix(out, []byte("%PDF-")) {
		t.Fatalf("not a PDF: starts with %q", out[:min(len(out), 16)])
	}
	if !bytes.Contains(out[max(0, len(out)-32):], []byte("%%EOF")) {
		t.Fatalf("PDF does not end with %%%%EOF")
	}
	return out
}

// pdfTool runs a poppler tool (pdftotext, pdfinfo) on pdf, skipping the test when the tool is
// not installed (Debian/Ubuntu: apt-get install poppler-utils).
func pdfTool(t *testing.T, pdf []byte, tool string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s is not on PATH (install poppler-utils): %v", tool, err)
	}
	file := filepath.Join(t.TempDir(), "invoice.pdf")
	if err := os.WriteFile(file, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	args = append(args, file)
	if tool == "pdftotext" {
		args = append(args, "-") // to stdout
	}
	cmd := exec.Command(path, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, stderr.String())
	}
	return string(out)
}

func pdfPages(t *testing.T, pdf []byte) int {
	t.Helper()
	info := pdfTool(t, pdf, "pdfinfo")
	m := regexp.MustCompile(`(?m)^Pages:\s+(\d+)$`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("pdfinfo shows no page count:\n%s", info)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// squash collapses runs of white space, so text wrapped differently still compares.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestInvoicePDFDeterministic(t *testing.T) {
	for name, inv := range renderSamples() {
		a := renderPDF(t, inv)
		b := renderPDF(t, inv)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two renderings of the same invoice differ", name)
		}
	}
}

func TestInvoicePDFTextSampleUSD(t *testing.T) {
	inv := renderSampleUSD()
	pdf := renderPDF(t, inv)
	if n := pdfPages(t, pdf); n != 1 {
		t.Errorf("pdfinfo: %d pages, want 1", n)
	}
	info := squash(pdfTool(t, pdf, "pdfinfo"))
	for _, want := range []string{"Title: Invoice INV-2026-000042 - Acme Café GmbH", "Page size: 595.28 x 841.89 pts (A4)",
		"CreationDate: Sun Feb 1 02:00:00 2026 UTC"} {
		if !strings.Contains(info, want) {
			t.Errorf("pdfinfo lacks %q:\n%s", want, info)
		}
	}
	text := squash(pdfTool(t, pdf, "pdftotext", "-layout"))
	for _, l := range inv.Lines {
		if !strings.Contains(text, l.Description) {
			t.Errorf("PDF text lacks the line %q", l.Description)
		}
		if !strings.Contains(text, formatMoney(l.Amount, 2)) {
			t.Errorf("PDF text lacks the amount %s", l.Amount)
		}
	}
	for _, want := range []string{
		"INVOICE", "INV-2026-000042", "FINALIZED", "Acme Café GmbH", "2026-01-01 to 2026-01-31 (UTC)",
		"Tier 1, units 1–5: 5 × 7.00 = 35.00", "Tier 2, units 6–10: 5 × 6.50 = 32.50",
		"Tier 3, units 11–12: 2 × 6.00 = 12.00", "2,500 × 0.008 + 5.00 flat = 25.00",
		"1,234,567 1,000,000 234,567", "exact 0.469134, rounded half up to 0.47",
		"Subtotal 200.00", "Total due (USD) 200.00", "Page 1 of 1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q:\n%s", want, text)
		}
	}
}

func TestInvoicePDFTextCurrenciesAndNonLatin(t *testing.T) {
	jpy := squash(pdfTool(t, renderPDF(t, renderSampleJPY()), "pdftotext", "-layout"))
	for _, want := range []string{"DRAFT", "Starter plan", "API requests", "Total due (JPY) 4,000", "12,345 × 0.081 = 999.945",
		"Bill to", "???????"} { // the Japanese tenant is outside Windows-1252: documented as "?"
		if !strings.Contains(jpy, want) && !strings.Contains(jpy, strings.ToUpper(want)) {
			t.Errorf("JPY PDF text lacks %q:\n%s", want, jpy)
		}
	}
	bhd := squash(pdfTool(t, renderPDF(t, renderSampleBHD()), "pdftotext", "-layout"))
	for _, want := range []string{"PAID", "Lódz Trading W.L.L.", "Total due (BHD) 2.735", "1.235", "1.500",
		"3 packages × 0.500 = 1.500"} {
		if !strings.Contains(bhd, want) {
			t.Errorf("BHD PDF text lacks %q:\n%s", want, bhd)
		}
	}
}

// renderManyLines is a USD invoice with n usage lines: every line has three graduated tiers,
// every seventh a very long description, every fifth non-ASCII text.
func renderManyLines(n int) *Invoice {
	inv := renderSampleUSD()
	inv.Tenant = "Ünïcödé Holdings — “Mega” Tenant with a name long enough to need wrapping on the first page of the invoice"
	inv.Lines = nil
	total := decimal.Zero
	for i := 0; i < n; i++ {
		desc := fmt.Sprintf("Resource %03d", i)
		switch {
		case i%7 == 3:
			desc += " " + strings.Repeat("with a very long description that keeps going ", 20) + "END"
		case i%5 == 1:
			desc += " Crème brûlée naïve façade, Łódź, 東京"
		}
		l := InvoiceLine{
			Kind: LineUsage, Description: desc, Resource: fmt.Sprintf("res.%03d", i), Model: Graduated,
			Match: map[string]string{"model": "m" + strconv.Itoa(i)}, Quantity: 12, Billable: 12,
			Tiers: []TierCharge{
				{Tier: 0, First: 1, Last: 5, Units: 5, UnitPrice: rdec("7.00"), FlatPrice: rdec("0"), Amount: rdec("35.00")},
				{Tier: 1, First: 6, Last: 10, Units: 5, UnitPrice: rdec("6.50"), FlatPrice: rdec("0"), Amount: rdec("32.50")},
				{Tier: 2, First: 11, Last: 12, Units: 2, UnitPrice: rdec("6.00"), FlatPrice: rdec("0"), Amount: rdec("12.00")},
			},
			Exact: rdec("79.50"), Amount: rdec("79.50"),
		}
		inv.Lines = append(inv.Lines, l)
		total = total.Add(l.Amount)
	}
	inv.Subtotal, inv.Total = total, total
	return inv
}

func TestInvoicePDFManyLinesAndLongText(t *testing.T) {
	const n = 140
	inv := renderManyLines(n)
	pdf := renderPDF(t, inv)
	pages := pdfPages(t, pdf)
	if pages < 5 {
		t.Fatalf("%d lines fit on %d pages: expected page breaks", n, pages)
	}
	all := squash(pdfTool(t, pdf, "pdftotext", "-layout"))
	for i, l := range inv.Lines {
		// Every line is there; a long description is there up to where it was cut.
		head := fmt.Sprintf("Resource %03d", i)
		if !strings.Contains(all, head) {
			t.Errorf("PDF text lacks line %q", head)
		}
		if strings.HasSuffix(l.Description, "END") && strings.Contains(all, "going END") {
			t.Errorf("line %d: the long description was not cut", i)
		}
	}
	// One ellipsis per long description, and one in the tenant name of each continued page's
	// header (the name is cut to one line there).
	if got, want := strings.Count(all, "…"), (n+3)/7+pages-1; got != want {
		t.Errorf("%d ellipses, want %d", got, want)
	}
	for _, want := range []string{"Crème brûlée naïve façade, Lódz, ??", "Ünïcödé Holdings — “Mega” Tenant",
		"Total due (USD) " + formatMoneyGrouped(inv.Total, 2)} {
		if !strings.Contains(all, want) {
			t.Errorf("PDF text lacks %q", want)
		}
	}
	// Every page has the column headings and its number; pages after the first say "continued".
	for p := 1; p <= pages; p++ {
		text := squash(pdfTool(t, pdf, "pdftotext", "-layout", "-f", strconv.Itoa(p), "-l", strconv.Itoa(p)))
		if !strings.Contains(text, "DESCRIPTION QUANTITY INCLUDED BILLABLE AMOUNT (USD)") && p < pages {
			t.Errorf("page %d lacks the table's column headings:\n%s", p, text)
		}
		if !strings.Contains(text, fmt.Sprintf("Page %d of %d", p, pages)) {
			t.Errorf("page %d lacks its number", p)
		}
		if p > 1 && !strings.Contains(text, "Invoice INV-2026-000042 (continued)") {
			t.Errorf("page %d lacks the repeated header", p)
		}
	}
}

func TestInvoicePDFNoLines(t *testing.T) {
	inv := renderSampleUSD()
	inv.Lines = nil
	inv.Subtotal, inv.Total = rdec("0"), rdec("0")
	text := squash(pdfTool(t, renderPDF(t, inv), "pdftotext", "-layout"))
	for _, want := range []string{"No charges in this period.", "Total due (USD) 0.00"} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q:\n%s", want, text)
		}
	}
}
