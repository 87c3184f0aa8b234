package billing

import (
	"bytes"
	"encoding/csv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readInvoiceCSV(t *testing.T, inv *Invoice) [][]string {
	t.Helper()
	var buf bytes.Buffer
	if err := inv.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	r := csv.NewReader(&buf)
	r.FieldsPerRecord = len(invoiceCSVHeader)
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("the CSV does not parse: %v\n%s", err, buf.String())
	}
	if len(rows) != 1+len(inv.Lines) {
		t.Fatalf("%d rows, want a header and %d lines", len(rows), len(inv.Lines))
	}
	if diff := cmp.Diff(invoiceCSVHeader, rows[0]); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	return rows[1:]
}

func TestInvoiceCSVSampleUSD(t *testing.T) {
	rows := readInvoiceCSV(t, renderSampleUSD())
	want := [][]string{
		{"INV-2026-000042", "Acme Café GmbH", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "USD", "base_fee", "Pro plan, monthly fee", "", "", "1", "0", "1", "49.00"},
		{"INV-2026-000042", "Acme Café GmbH", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "USD", "usage", "Output tokens (gpt-4o), per 1k", "tokens.output", "model=gpt-4o;region=eu", "12", "0", "12", "79.50"},
		{"INV-2026-000042", "Acme Café GmbH", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "USD", "usage", "Messages", "messages", "", "2500", "0", "2500", "25.00"},
		{"INV-2026-000042", "Acme Café GmbH", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "USD", "usage", "Input tokens", "tokens.input", "", "1234567", "1000000", "234567", "0.47"},
		{"INV-2026-000042", "Acme Café GmbH", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "USD", "minimum", "Minimum commitment true-up (200.00)", "", "", "1", "0", "1", "46.03"},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

func TestInvoiceCSVCurrencyDigits(t *testing.T) {
	amounts := func(rows [][]string) []string {
		var out []string
		for _, r := range rows {
			out = append(out, r[len(r)-1])
		}
		return out
	}
	jpy := readInvoiceCSV(t, renderSampleJPY())
	if diff := cmp.Diff([]string{"3000", "1000"}, amounts(jpy)); diff != "" {
		t.Errorf("JPY amounts (-want +got):\n%s", diff)
	}
	if jpy[0][0] != "" || jpy[0][2] != "2026-03-01T00:00:00+09:00" || jpy[0][1] != "株式会社テスト" {
		t.Errorf("JPY draft row: %q", jpy[0])
	}
	bhd := readInvoiceCSV(t, renderSampleBHD())
	if diff := cmp.Diff([]string{"1.235", "1.500"}, amounts(bhd)); diff != "" {
		t.Errorf("BHD amounts (-want +got):\n%s", diff)
	}
}

func TestInvoiceCSVFormulaInjection(t *testing.T) {
	inv := renderSampleUSD()
	inv.Tenant = "=HYPERLINK(\"http://evil.example\",\"click\")"
	inv.Lines[0].Description = "+1+2"
	inv.Lines[1].Description = "-2+3"
	inv.Lines[2].Description = "@SUM(A1:A9)"
	inv.Lines[3].Description = "\tcmd"
	inv.Lines[3].Resource = "=res"
	inv.Lines[4].Description = "a = b, @c, -d"                          // only a leading character counts
	inv.Lines[4].Amount, inv.Lines[4].Exact = rdec("-5.00"), rdec("-5") // a credit: a number, not text
	rows := readInvoiceCSV(t, inv)
	for i, want := range []string{"'+1+2", "'-2+3", "'@SUM(A1:A9)", "'\tcmd", "a = b, @c, -d"} {
		if rows[i][6] != want {
			t.Errorf("line %d description = %q, want %q", i, rows[i][6], want)
		}
		if rows[i][1] != "'"+inv.Tenant {
			t.Errorf("line %d tenant = %q, want it prefixed with a quote", i, rows[i][1])
		}
	}
	if rows[3][7] != "'=res" {
		t.Errorf("resource = %q", rows[3][7])
	}
	if rows[4][12] != "-5.00" {
		t.Errorf("negative amount = %q, want -5.00 unprefixed", rows[4][12])
	}
}

func TestInvoiceCSVNoLines(t *testing.T) {
	inv := renderSampleUSD()
	inv.Lines = nil
	readInvoiceCSV(t, inv) // checks: a header, no rows
}
