package billing

import (
	"bytes"
	"html"
	"regexp"
	"strings"
	"testing"
)

func renderHTML(t *testing.T, inv *Invoice) string {
	t.Helper()
	var buf bytes.Buffer
	if err := inv.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestInvoiceHTMLSampleUSD(t *testing.T) {
	inv := renderSampleUSD()
	raw := renderHTML(t, inv)
	htmlBalanced(t, raw)
	out := html.UnescapeString(raw) // html/template writes "+" as "&#43;"
	for _, want := range []string{
		"<!DOCTYPE html>", `<meta charset="utf-8">`,
		"INV-2026-000042", "Acme Café GmbH", "Finalized", "2026-01-01 to 2026-01-31 (UTC)",
		"2026-02-01 01:00 UTC", "2026-02-01 02:00 UTC", "pro-2026", "Amount (USD)",
		// tier by tier: units x unit price + flat = amount
		"Tier 1, units 1–5", "5 × 7.00 =", "35.00",
		"Tier 2, units 6–10", "5 × 6.50 =", "32.50",
		"Tier 3, units 11–12", "2 × 6.00 =", "12.00",
		"Tier 2, units 1–2,500", "2,500 × 0.008 + 5.00 flat =", "25.00",
		"units 1–234,567", "234,567 × 0.000002 =", "0.469134",
		"1,000,000 units included free of charge", "exact 0.469134, rounded half up to 0.47",
		"1,234,567", "model=gpt-4o;region=eu", "graduated pricing",
		"Subtotal", "Total due (USD)", ">200.00<",
		"@media print", "@page", "size: A4",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	for _, l := range inv.Lines {
		if !strings.Contains(out, l.Description) || !strings.Contains(out, ">"+formatMoney(l.Amount, 2)+"<") {
			t.Errorf("HTML lacks line %q with amount %s", l.Description, l.Amount)
		}
	}
	// Self-contained: no external assets, no scripts.
	for _, bad := range []string{"<script", "<link", "src=", "url(", "http://", "https://", "@import"} {
		if strings.Contains(out, bad) {
			t.Errorf("HTML contains %q: it must be self-contained", bad)
		}
	}
}

func TestInvoiceHTMLDraftAndCurrencies(t *testing.T) {
	jpy := html.UnescapeString(renderHTML(t, renderSampleJPY()))
	for _, want := range []string{">DRAFT<", "Draft", "株式会社テスト", "Amount (JPY)", ">1,000<", ">4,000<",
		"12,345 × 0.081 =", "exact 999.945, rounded half up to 1,000", "2026-03-01 to 2026-03-31 (UTC+09:00)"} {
		if !strings.Contains(jpy, want) {
			t.Errorf("JPY HTML lacks %q", want)
		}
	}
	bhd := html.UnescapeString(renderHTML(t, renderSampleBHD()))
	for _, want := range []string{"INV-2026-000043", "Paid", "Łódź Trading W.L.L.", ">1.235<", ">1.500<", ">2.735<",
		"3 packages × 0.500 =", "units 1–250", "Paid</dt>"} {
		if !strings.Contains(bhd, want) {
			t.Errorf("BHD HTML lacks %q", want)
		}
	}
}

func TestInvoiceHTMLEscapesUserData(t *testing.T) {
	inv := renderSampleUSD()
	inv.Tenant = "<script>alert(1)</script>"
	inv.Lines[0].Description = `"><img src=x onerror=alert(2)>`
	inv.Lines[1].Match = map[string]string{"model": "</td><b>bold</b>"}
	inv.PlanID = "plan & co"
	out := renderHTML(t, inv)
	for _, bad := range []string{"<script>", "alert(1)</script>", "<img", "<b>bold</b>"} {
		if strings.Contains(out, bad) {
			t.Errorf("user data reached the HTML unescaped: found %q", bad)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(1)&lt;/script&gt;",
		"&#34;&gt;&lt;img src=x onerror=alert(2)&gt;",
		"model=&lt;/td&gt;&lt;b&gt;bold&lt;/b&gt;",
		"plan &amp; co",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("HTML lacks the escaped %q", want)
		}
	}
	htmlBalanced(t, out)
}

func TestInvoiceHTMLNoLines(t *testing.T) {
	inv := renderSampleUSD()
	inv.Lines = nil
	inv.Subtotal, inv.Total = rdec("0"), rdec("0")
	out := renderHTML(t, inv)
	if !strings.Contains(out, "No charges in this period.") || !strings.Contains(out, ">0.00<") {
		t.Errorf("empty invoice HTML:\n%s", out)
	}
	htmlBalanced(t, out)
}

var htmlTagRE = regexp.MustCompile(`<(/?)([a-zA-Z][a-zA-Z0-9]*)[^>]*>`)

// htmlBalanced checks that every element the template opens is closed, in order (void elements
// aside): a cheap stand-in for a full HTML parser.
func htmlBalanced(t *testing.T, doc string) {
	t.Helper()
	void := map[string]bool{"meta": true, "br": true, "img": true, "link": true, "hr": true, "input": true}
	var stack []string
	for _, m := range htmlTagRE.FindAllStringSubmatch(doc, -1) {
		name := strings.ToLower(m[2])
		if void[name] {
			continue
		}
		if m[1] == "" {
			stack = append(stack, name)
			continue
		}
		if len(stack) == 0 || stack[len(stack)-1] != name {
			t.Fatalf("</%s> closes %v", name, stack)
		}
		stack = stack[:len(stack)-1]
	}
	if len(stack) != 0 {
		t.Fatalf("unclosed elements: %v", stack)
	}
}
