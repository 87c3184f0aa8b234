package billing

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-pdf/fpdf"
	"github.com/shopspring/decimal"
)

// The sample invoices every rendering test uses, built by hand with hand-checked amounts.

func rdec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func rtime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// renderSampleUSD is a finalized USD invoice with a base fee, a graduated line over three tiers
// (the published case: 12 units at 7.00 / 6.50 / 6.00 is 79.50), a volume line with a flat fee,
// a per-unit line with included units and a sub-cent exact amount, and a minimum true-up.
//
//	base fee          49.00
//	graduated         79.50  = 5 x 7.00 + 5 x 6.50 + 2 x 6.00
//	volume            25.00  = 2,500 x 0.008 + 5.00 flat
//	included/per unit  0.47  = 234,567 x 0.000002 = 0.469134, rounded half up
//	minimum true-up   46.03  = 200.00 - 153.97
//	total            200.00
func renderSampleUSD() *Invoice {
	return &Invoice{
		ID:       "inv_01JH8Z6K2Q0M4T7W9XYZ",
		Number:   "INV-2026-000042",
		Tenant:   "Acme Café GmbH",
		PlanID:   "pro-2026",
		Start:    rtime("2026-01-01T00:00:00Z"),
		End:      rtime("2026-02-01T00:00:00Z"),
		Currency: "USD",
		Status:   InvoiceFinalized,
		Lines: []InvoiceLine{
			{
				Kind: LineBaseFee, Description: "Pro plan, monthly fee",
				Quantity: 1, Billable: 1, Exact: rdec("49"), Amount: rdec("49.00"),
			},
			{
				Kind: LineUsage, Description: "Output tokens (gpt-4o), per 1k",
				Resource: "tokens.output", Match: map[string]string{"region": "eu", "model": "gpt-4o"},
				Model: Graduated, Quantity: 12, Billable: 12,
				Tiers: []TierCharge{
					{Tier: 0, First: 1, Last: 5, Units: 5, UnitPrice: rdec("7.00"), FlatPrice: rdec("0"), Amount: rdec("35.00")},
					{Tier: 1, First: 6, Last: 10, Units: 5, UnitPrice: rdec("6.50"), FlatPrice: rdec("0"), Amount: rdec("32.50")},
					{Tier: 2, First: 11, Last: 12, Units: 2, UnitPrice: rdec("6.00"), FlatPrice: rdec("0"), Amount: rdec("12.00")},
				},
				Exact: rdec("79.50"), Amount: rdec("79.50"),
			},
			{
				Kind: LineUsage, Description: "Messages",
				Resource: "messages", Model: Volume, Quantity: 2500, Billable: 2500,
				Tiers: []TierCharge{
					{Tier: 1, First: 1, Last: 2500, Units: 2500, UnitPrice: rdec("0.008"), FlatPrice: rdec("5.00"), Amount: rdec("25.000")},
				},
				Exact: rdec("25.000"), Amount: rdec("25.00"),
			},
			{
				Kind: LineUsage, Description: "Input tokens",
				Resource: "tokens.input", Model: PerUnit, Quantity: 1234567, Included: 1000000, Billable: 234567,
				Tiers: []TierCharge{
					{Tier: 0, First: 1, Last: 234567, Units: 234567, UnitPrice: rdec("0.000002"), FlatPrice: rdec("0"), Amount: rdec("0.469134")},
				},
				Exact: rdec("0.469134"), Amount: rdec("0.47"),
			},
			{
				Kind: LineMinimum, Description: "Minimum commitment true-up (200.00)",
				Quantity: 1, Billable: 1, Exact: rdec("46.03"), Amount: rdec("46.03"),
			},
		},
		Subtotal:    rdec("200.00"),
		Total:       rdec("200.00"),
		Created:     rtime("2026-02-01T01:00:00Z"),
		FinalizedAt: rtime("2026-02-01T02:00:00Z"),
	}
}

// renderSampleJPY is a draft JPY invoice (no decimals): 12,345 x 0.081 = 999.945, rounded half up
// to 1000; a tenant outside Windows-1252.
func renderSampleJPY() *Invoice {
	tokyo := time.FixedZone("JST", 9*3600)
	return &Invoice{
		ID:       "inv_jpy_draft",
		Tenant:   "株式会社テスト",
		PlanID:   "starter",
		Start:    time.Date(2026, 3, 1, 0, 0, 0, 0, tokyo),
		End:      time.Date(2026, 4, 1, 0, 0, 0, 0, tokyo),
		Currency: "JPY",
		Status:   InvoiceDraft,
		Lines: []InvoiceLine{
			{Kind: LineBaseFee, Description: "Starter plan", Quantity: 1, Billable: 1, Exact: rdec("3000"), Amount: rdec("3000")},
			{
				Kind: LineUsage, Description: "API requests", Resource: "requests", Model: PerUnit,
				Quantity: 12345, Billable: 12345,
				Tiers: []TierCharge{{Tier: 0, First: 1, Last: 12345, Units: 12345, UnitPrice: rdec("0.081"), FlatPrice: rdec("0"), Amount: rdec("999.945")}},
				Exact: rdec("999.945"), Amount: rdec("1000"),
			},
		},
		Subtotal: rdec("4000"),
		Total:    rdec("4000"),
		Created:  time.Date(2026, 4, 1, 0, 30, 0, 0, tokyo),
	}
}

// renderSampleBHD is a paid BHD invoice (three decimals) with a package line: 250 units in
// packages of 100 is 3 packages x 0.500.
func renderSampleBHD() *Invoice {
	return &Invoice{
		ID:       "inv_bhd_paid",
		Number:   "INV-2026-000043",
		Tenant:   "Łódź Trading W.L.L.",
		Start:    rtime("2026-01-01T00:00:00+03:00"),
		End:      rtime("2026-02-01T00:00:00+03:00"),
		Currency: "BHD",
		Status:   InvoicePaid,
		Lines: []InvoiceLine{
			{
				Kind: LineUsage, Description: "Storage, GB-hours", Resource: "storage.gbh", Model: PerUnit,
				Quantity: 1235, Billable: 1235,
				Tiers: []TierCharge{{Tier: 0, First: 1, Last: 1235, Units: 1235, UnitPrice: rdec("0.001"), FlatPrice: rdec("0"), Amount: rdec("1.235")}},
				Exact: rdec("1.235"), Amount: rdec("1.235"),
			},
			{
				Kind: LineUsage, Description: "SMS bundles", Resource: "sms", Model: Package,
				Quantity: 250, Billable: 250,
				Tiers: []TierCharge{{Tier: 0, First: 1, Last: 250, Units: 3, UnitPrice: rdec("0.5"), FlatPrice: rdec("0"), Amount: rdec("1.5")}},
				Exact: rdec("1.5"), Amount: rdec("1.500"),
			},
		},
		Subtotal:    rdec("2.735"),
		Total:       rdec("2.735"),
		Created:     rtime("2026-02-01T01:00:00+03:00"),
		FinalizedAt: rtime("2026-02-01T02:00:00+03:00"),
		PaidAt:      rtime("2026-02-03T10:15:00+03:00"),
	}
}

// renderSamples are the samples by name.
func renderSamples() map[string]*Invoice {
	return map[string]*Invoice{"usd": renderSampleUSD(), "jpy": renderSampleJPY(), "bhd": renderSampleBHD()}
}

func TestRenderSamplesAreConsistent(t *testing.T) {
	// The samples' amounts are hand-checked; make sure they also add up, so the renderings are
	// tested on invoices the lifecycle could produce.
	for name, inv := range renderSamples() {
		digits, err := CurrencyDigits(inv.Currency)
		if err != nil {
			t.Fatal(err)
		}
		sum := decimal.Zero
		for i, l := range inv.Lines {
			if got := l.Exact.Round(digits); !got.Equal(l.Amount) {
				t.Errorf("%s line %d: Exact %s rounds to %s, Amount is %s", name, i, l.Exact, got, l.Amount)
			}
			if len(l.Tiers) > 0 {
				tiers := decimal.Zero
				for _, tc := range l.Tiers {
					if want := tc.UnitPrice.Mul(decimal.NewFromInt(tc.Units)).Add(tc.FlatPrice); !want.Equal(tc.Amount) {
						t.Errorf("%s line %d tier %d: amount %s, want %s", name, i, tc.Tier, tc.Amount, want)
					}
					tiers = tiers.Add(tc.Amount)
				}
				if !tiers.Equal(l.Exact) {
					t.Errorf("%s line %d: tiers sum to %s, Exact is %s", name, i, tiers, l.Exact)
				}
			}
			if l.Quantity-l.Included != l.Billable {
				t.Errorf("%s line %d: quantity - included != billable", name, i)
			}
			sum = sum.Add(l.Amount)
		}
		if !sum.Equal(inv.Subtotal) || !inv.Total.Equal(inv.Subtotal) {
			t.Errorf("%s: lines sum to %s, subtotal %s, total %s", name, sum, inv.Subtotal, inv.Total)
		}
	}
}

func TestRenderFormatMoney(t *testing.T) {
	for _, tc := range []struct {
		in     string
		digits int32
		want   string
		group  string
	}{
		{"79.5", 2, "79.50", "79.50"},
		{"79.50", 2, "79.50", "79.50"},
		{"1000", 0, "1000", "1,000"},
		{"1000.00", 0, "1000", "1,000"},
		{"1.235", 3, "1.235", "1.235"},
		{"1.5", 3, "1.500", "1.500"},
		{"0.000002", 2, "0.000002", "0.000002"},
		{"0.469134", 2, "0.469134", "0.469134"},
		{"1234567.5", 2, "1234567.50", "1,234,567.50"},
		{"-1234.5", 2, "-1234.50", "-1,234.50"},
		{"0", 2, "0.00", "0.00"},
		{"999.945", 0, "999.945", "999.945"}, // never rounds
	} {
		d := rdec(tc.in)
		if got := formatMoney(d, tc.digits); got != tc.want {
			t.Errorf("formatMoney(%s, %d) = %q, want %q", tc.in, tc.digits, got, tc.want)
		}
		if got := formatMoneyGrouped(d, tc.digits); got != tc.group {
			t.Errorf("formatMoneyGrouped(%s, %d) = %q, want %q", tc.in, tc.digits, got, tc.group)
		}
		if back := rdec(formatMoney(d, tc.digits)); !back.Equal(d) {
			t.Errorf("formatMoney(%s) lost value: %s", tc.in, back)
		}
	}
	for n, want := range map[int64]string{0: "0", 12: "12", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := formatQuantity(n); got != want {
			t.Errorf("formatQuantity(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRenderFormatPeriod(t *testing.T) {
	for _, tc := range []struct {
		start, end, want string
	}{
		{"2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-01-01 to 2026-01-31 (UTC)"},
		{"2026-03-01T00:00:00+09:00", "2026-04-01T00:00:00+09:00", "2026-03-01 to 2026-03-31 (UTC+09:00)"},
		{"2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z", "2026-01-05 (UTC)"},
		{"2026-01-05T10:00:00Z", "2026-01-05T11:30:00Z", "2026-01-05 10:00 UTC to 2026-01-05 11:30 UTC (end exclusive)"},
	} {
		if got := formatPeriod(rtime(tc.start), rtime(tc.end)); got != tc.want {
			t.Errorf("formatPeriod(%s, %s) = %q, want %q", tc.start, tc.end, got, tc.want)
		}
	}
}

func TestRenderUnknownCurrencyAndNil(t *testing.T) {
	inv := renderSampleUSD()
	inv.Currency = "XXX"
	var nilInv *Invoice
	writers := map[string]func(*Invoice, *bytes.Buffer) error{
		"JSON": func(i *Invoice, b *bytes.Buffer) error { return i.WriteJSON(b) },
		"CSV":  func(i *Invoice, b *bytes.Buffer) error { return i.WriteCSV(b) },
		"HTML": func(i *Invoice, b *bytes.Buffer) error { return i.WriteHTML(b) },
		"PDF":  func(i *Invoice, b *bytes.Buffer) error { return i.WritePDF(b) },
	}
	for name, write := range writers {
		var buf bytes.Buffer
		err := write(inv, &buf)
		if err == nil || !strings.Contains(err.Error(), "XXX") {
			t.Errorf("%s with currency XXX: err = %v, want one naming the currency", name, err)
		}
		if buf.Len() != 0 {
			t.Errorf("%s with an unknown currency wrote %d bytes", name, buf.Len())
		}
		if err := write(nilInv, &buf); err == nil {
			t.Errorf("%s on a nil invoice: no error", name)
		}
	}
}

func TestRenderPDFTextMatchesFpdfCodePage(t *testing.T) {
	// Our Windows-1252 encoder agrees with fpdf's own cp1252 translator on every character the
	// translator knows, and stands in for the ones it turns into ".".
	tr := fpdf.New("P", "mm", "A4", "").UnicodeTranslatorFromDescriptor("")
	for r := rune(0x20); r < 0x3000; r++ {
		if r == 0x7f || (r >= 0x80 && r < 0xa0) || (r >= 0x300 && r <= 0x36f) {
			continue
		}
		want := tr(string(r))
		got := pdfText(string(r))
		if want != "." || r == '.' {
			if got != want {
				t.Fatalf("pdfText(%U) = %q, fpdf says %q", r, got, want)
			}
		} else if got == "." {
			t.Fatalf("pdfText(%U) = %q", r, got)
		}
	}
	for in, want := range map[string]string{
		"Łódź Şişli":    "L\xf3dz Sisli",
		"Café € – ™ ×":  "Caf\xe9 \x80 \x96 \x99 \xd7",
		"東京 ok":         "?? ok",
		"a\tb\nc\x00d":  "a b cd",
		"e\u0301":       "e",
		"Șțefan−1 → 2":  "Stefan-1 -> 2",
		"Ĳssel ő ı ſ ŉ": "IJssel o i s n",
	} {
		if got := pdfText(in); got != want {
			t.Errorf("pdfText(%q) = %q, want %q", in, got, want)
		}
	}
	if len(latinExtendedA) != 0x80 {
		t.Fatalf("latinExtendedA has %d entries, want 128", len(latinExtendedA))
	}
}

// TestRenderWriteSamples writes every sample in every format into the directory named by
// BILLING_RENDER_OUT, for people to look at; it skips without it.
func TestRenderWriteSamples(t *testing.T) {
	dir := os.Getenv("BILLING_RENDER_OUT")
	if dir == "" {
		t.Skip("set BILLING_RENDER_OUT=dir to write the sample renderings there")
	}
	invs := renderSamples()
	invs["many"] = renderManyLines(140)
	for name, inv := range invs {
		for ext, write := range map[string]func(*bytes.Buffer) error{
			"json": func(b *bytes.Buffer) error { return inv.WriteJSON(b) },
			"csv":  func(b *bytes.Buffer) error { return inv.WriteCSV(b) },
			"html": func(b *bytes.Buffer) error { return inv.WriteHTML(b) },
			"pdf":  func(b *bytes.Buffer) error { return inv.WritePDF(b) },
		} {
			var buf bytes.Buffer
			if err := write(&buf); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name+"."+ext), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestRenderConcurrent(t *testing.T) {
	// Renderings only read the invoice: many goroutines may render the same one at once (run
	// with -race), and all get the same bytes.
	inv := renderSampleUSD()
	writers := []func(*bytes.Buffer) error{
		func(b *bytes.Buffer) error { return inv.WriteJSON(b) },
		func(b *bytes.Buffer) error { return inv.WriteCSV(b) },
		func(b *bytes.Buffer) error { return inv.WriteHTML(b) },
		func(b *bytes.Buffer) error { return inv.WritePDF(b) },
	}
	want := make([][]byte, len(writers))
	for i, w := range writers {
		var b bytes.Buffer
		if err := w(&b); err != nil {
			t.Fatal(err)
		}
		want[i] = b.Bytes()
	}
	errs := make(chan error, 8*len(writers))
	for g := 0; g < 8; g++ {
		for i, w := range writers {
			go func() {
				var b bytes.Buffer
				err := w(&b)
				if err == nil && !bytes.Equal(b.Bytes(), want[i]) {
					err = fmt.Errorf("writer %d: different bytes", i)
				}
				errs <- err
			}()
		}
	}
	for range 8 * len(writers) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
