package billing

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var renderUpdateGolden = flag.Bool("render.update", false, "rewrite the invoice rendering golden files in testdata/")

func TestInvoiceJSONGolden(t *testing.T) {
	for name, inv := range renderSamples() {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := inv.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "invoice_render_"+name+".json")
			if *renderUpdateGolden {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run InvoiceJSONGolden -render.update . to create it)", err)
			}
			if diff := cmp.Diff(string(want), buf.String()); diff != "" {
				t.Errorf("WriteJSON differs from %s (-golden +got):\n%s", path, diff)
			}
		})
	}
}

func TestInvoiceJSONRoundTrip(t *testing.T) {
	for name, inv := range renderSamples() {
		t.Run(name, func(t *testing.T) {
			var first bytes.Buffer
			if err := inv.WriteJSON(&first); err != nil {
				t.Fatal(err)
			}
			back, err := ReadInvoiceJSON(bytes.NewReader(first.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			// decimal.Decimal and time.Time compare with their Equal methods.
			if diff := cmp.Diff(inv, back, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("round trip changed the invoice (-want +got):\n%s", diff)
			}
			var second bytes.Buffer
			if err := back.WriteJSON(&second); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first.Bytes(), second.Bytes()) {
				t.Errorf("write, read, write is not byte-identical:\n%s\n---\n%s", first.String(), second.String())
			}
			// Every other rendering of the read-back invoice is the same too.
			for format, write := range map[string]func(*Invoice, *bytes.Buffer) error{
				"CSV":  func(i *Invoice, b *bytes.Buffer) error { return i.WriteCSV(b) },
				"HTML": func(i *Invoice, b *bytes.Buffer) error { return i.WriteHTML(b) },
				"PDF":  func(i *Invoice, b *bytes.Buffer) error { return i.WritePDF(b) },
			} {
				var a, b bytes.Buffer
				if err := write(inv, &a); err != nil {
					t.Fatal(err)
				}
				if err := write(back, &b); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(a.Bytes(), b.Bytes()) {
					t.Errorf("the %s of the read-back invoice differs from the original's", format)
				}
			}
		})
	}
}

func TestInvoiceJSONDeterministic(t *testing.T) {
	// Match is a map: rebuild the invoice many times (fresh maps, random iteration order) and
	// expect the same bytes every time.
	var want []byte
	for i := 0; i < 50; i++ {
		var buf bytes.Buffer
		if err := renderSampleUSD().WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want = buf.Bytes()
		} else if !bytes.Equal(want, buf.Bytes()) {
			t.Fatalf("run %d wrote different bytes", i)
		}
	}
	if !bytes.HasSuffix(want, []byte("}\n")) || !bytes.Contains(want, []byte("\n  \"id\": ")) {
		t.Errorf("not two-space indented with a final newline:\n%s", want)
	}
}

func TestInvoiceJSONDecimalsAreStrings(t *testing.T) {
	for name, tc := range map[string]struct {
		inv  *Invoice
		want []string
	}{
		"usd": {renderSampleUSD(), []string{`"amount": "79.50"`, `"amount": "0.47"`, `"exact": "0.469134"`,
			`"unit_price": "0.000002"`, `"unit_price": "6.50"`, `"flat_price": "5.00"`, `"total": "200.00"`,
			`"match": {` + "\n" + `        "model": "gpt-4o",` + "\n" + `        "region": "eu"`}},
		"jpy": {renderSampleJPY(), []string{`"amount": "1000"`, `"exact": "999.945"`, `"unit_price": "0.081"`, `"total": "4000"`,
			`"start": "2026-03-01T00:00:00+09:00"`, `"tenant": "株式会社テスト"`}},
		"bhd": {renderSampleBHD(), []string{`"amount": "1.235"`, `"amount": "1.500"`, `"total": "2.735"`, `"unit_price": "0.500"`}},
	} {
		var buf bytes.Buffer
		if err := tc.inv.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("%s: JSON lacks %s:\n%s", name, w, buf.String())
			}
		}
		// No decimal is ever a JSON number.
		var doc map[string]any
		dec := json.NewDecoder(&buf)
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		walkJSON(doc, "", func(path string, v any) {
			if _, isNum := v.(json.Number); isNum {
				switch last := path[strings.LastIndex(path, ".")+1:]; last {
				case "quantity", "included", "billable", "tier", "first", "last", "units":
				default:
					t.Errorf("%s: %s is a JSON number, want a string", name, path)
				}
			}
		})
	}
}

func TestInvoiceJSONCoversEveryField(t *testing.T) {
	// WriteJSON mirrors Invoice's json tags; if a field is added to Invoice, InvoiceLine or
	// TierCharge, this fails until the rendering writes it too.
	inv := renderSampleBHD()
	inv.VoidedAt = inv.PaidAt // every optional field set
	inv.Lines[0].Match = map[string]string{"k": "v"}
	std, err := json.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	var ours bytes.Buffer
	if err := inv.WriteJSON(&ours); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(jsonPaths(t, std), jsonPaths(t, ours.Bytes())); diff != "" {
		t.Errorf("WriteJSON's fields differ from json.Marshal(Invoice)'s (-std +ours):\n%s", diff)
	}
	// And the standard encoding reads back through ReadInvoiceJSON as the same invoice.
	back, err := ReadInvoiceJSON(bytes.NewReader(std))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(inv, back, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("reading json.Marshal output (-want +got):\n%s", diff)
	}
}

func TestInvoiceJSONReadErrors(t *testing.T) {
	var good bytes.Buffer
	if err := renderSampleUSD().WriteJSON(&good); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ in, want string }{
		"null":          {"null", "null"},
		"empty":         {"", "EOF"},
		"trailing data": {good.String() + "{}", "after the invoice"},
		"bad quantity":  {`{"lines": [{"quantity": "many"}]}`, "lines.quantity"},
		"bad amount":    {`{"total": "12,50"}`, "12,50"},
		"bad time":      {`{"start": "yesterday"}`, "yesterday"},
		"not an object": {`[1, 2]`, "cannot unmarshal"},
	} {
		_, err := ReadInvoiceJSON(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", name, err, tc.want)
		}
	}
	// White space after the document is fine; a number where a string is expected is read too.
	inv, err := ReadInvoiceJSON(strings.NewReader(`{"currency": "USD", "total": 12.5}` + "\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !inv.Total.Equal(rdec("12.5")) || inv.Lines == nil {
		t.Errorf("got total %s, lines %v", inv.Total, inv.Lines)
	}
}

// walkJSON calls fn for every leaf of a decoded JSON value, with its dotted path (array
// elements do not add to the path).
func walkJSON(v any, path string, fn func(string, any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			walkJSON(x, path+"."+k, fn)
		}
	case []any:
		for _, x := range v {
			walkJSON(x, path, fn)
		}
	default:
		fn(path, v)
	}
}

// jsonPaths lists the distinct field paths of a JSON document, sorted.
func jsonPaths(t *testing.T, data []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	var walk func(any, string)
	walk = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			if strings.HasSuffix(path, ".match") {
				return // Match's keys are data, not fields
			}
			for k, x := range v {
				p := path + "." + k
				set[p] = true
				walk(x, p)
			}
		case []any:
			for _, x := range v {
				walk(x, path+"[]")
			}
		}
	}
	walk(v, "")
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
