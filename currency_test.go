package billing_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
)

// TestCurrencyDigits: the ISO 4217 minor units of the currencies invoices are most often issued
// in, including every zero- and three-digit currency in common use.
func TestCurrencyDigits(t *testing.T) {
	want := map[string]int32{
		"USD": 2, "EUR": 2, "GBP": 2, "BRL": 2, "CAD": 2, "AUD": 2, "CHF": 2, "CNY": 2, "INR": 2,
		"MXN": 2, "SEK": 2, "NZD": 2, "HKD": 2, "SGD": 2, "ZAR": 2, "IDR": 2, "HUF": 2,
		"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0, "PYG": 0, "UGX": 0, "XAF": 0, "XOF": 0,
		"BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3, "IQD": 3, "LYD": 3,
		"CLF": 4, "UYW": 4,
	}
	for code, digits := range want {
		got, err := billing.CurrencyDigits(code)
		if err != nil {
			t.Errorf("CurrencyDigits(%q): %v", code, err)
			continue
		}
		if got != digits {
			t.Errorf("CurrencyDigits(%q) = %d, want %d", code, got, digits)
		}
	}
}

// TestCurrencyUnknown: an unknown code is an error matching ErrInvalidConfig that names the code
// and says it is unknown; a lower-case code is told to use upper case.
func TestCurrencyUnknown(t *testing.T) {
	for _, tc := range []struct{ code, hint string }{
		{"XYZ", "ISO 4217"},
		{"", "ISO 4217"},
		{"usd", "upper case"},
		{"US", "ISO 4217"},
		{"XAU", "ISO 4217"}, // gold: a code, but no minor unit
	} {
		_, err := billing.CurrencyDigits(tc.code)
		requireFieldError(t, err, billing.ErrInvalidConfig, "currency", "unknown currency", `"`+tc.code+`"`, tc.hint)
		_, err = billing.RoundMoney(decimal.RequireFromString("1.005"), tc.code)
		if !errors.Is(err, billing.ErrInvalidConfig) || !strings.Contains(err.Error(), `"`+tc.code+`"`) {
			t.Errorf("RoundMoney(1.005, %q) error = %v, want ErrInvalidConfig naming the currency", tc.code, err)
		}
	}
}

// TestRoundMoney: half up (away from zero on a tie) to the currency's minor unit, never banker's
// rounding; the result carries exactly the minor unit's decimal places.
func TestRoundMoney(t *testing.T) {
	cases := []struct {
		amount, currency, want string
	}{
		{"2.345", "USD", "2.35"}, // a tie rounds up (banker's rounding would give 2.34)
		{"2.344", "USD", "2.34"},
		{"2.3449999999", "USD", "2.34"},
		{"2.3450000001", "USD", "2.35"},
		{"2.355", "EUR", "2.36"},
		{"0.005", "GBP", "0.01"},
		{"0.004999", "BRL", "0.00"},
		{"2.469134", "USD", "2.47"},
		{"79.5", "USD", "79.50"},
		{"72", "USD", "72.00"},
		{"0", "USD", "0.00"},
		{"-2.345", "USD", "-2.35"}, // credits round symmetrically, away from zero
		{"-2.344", "USD", "-2.34"},
		{"2.5", "JPY", "3"}, // banker's would give 2
		{"3.5", "JPY", "4"},
		{"0.4", "JPY", "0"},
		{"1234.4999", "JPY", "1234"},
		{"79.5", "KRW", "80"},
		{"1.0005", "BHD", "1.001"},
		{"1.0004", "BHD", "1.000"},
		{"2.4445", "KWD", "2.445"}, // banker's would give 2.444
		{"12.3456789", "OMR", "12.346"},
		{"7", "KWD", "7.000"},
		{"0.00005", "CLF", "0.0001"},
	}
	for _, tc := range cases {
		got, err := billing.RoundMoney(decimal.RequireFromString(tc.amount), tc.currency)
		if err != nil {
			t.Errorf("RoundMoney(%s, %s): %v", tc.amount, tc.currency, err)
			continue
		}
		digits, _ := billing.CurrencyDigits(tc.currency)
		if s := got.StringFixed(digits); s != tc.want {
			t.Errorf("RoundMoney(%s, %s) = %s, want %s", tc.amount, tc.currency, s, tc.want)
		}
		if !got.Equal(decimal.RequireFromString(tc.want)) {
			t.Errorf("RoundMoney(%s, %s) = %v, not equal to %s", tc.amount, tc.currency, got, tc.want)
		}
		if got.Exponent() != -digits {
			t.Errorf("RoundMoney(%s, %s) has exponent %d, want %d", tc.amount, tc.currency, got.Exponent(), -digits)
		}
	}
}

// TestMoneyRoundIsNotBankers pins the behaviour of the decimal library RoundMoney relies on:
// Round is half away from zero, RoundBank half to even. A change of library semantics fails here.
func TestMoneyRoundIsNotBankers(t *testing.T) {
	d := decimal.RequireFromString("2.345")
	if got := d.Round(2).String(); got != "2.35" {
		t.Errorf("decimal Round(2.345, 2) = %s, want 2.35", got)
	}
	if got := d.RoundBank(2).String(); got != "2.34" {
		t.Errorf("decimal RoundBank(2.345, 2) = %s, want 2.34", got)
	}
	if got := decimal.RequireFromString("-0.5").Round(0).String(); got != "-1" {
		t.Errorf("decimal Round(-0.5, 0) = %s, want -1", got)
	}
}
