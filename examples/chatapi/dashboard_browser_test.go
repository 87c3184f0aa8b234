package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/openai/openai-go/v3"
)

// findChromium returns the browser the dashboard test drives: $BILLING_CHROMIUM, or Debian's
// chromium (or Chrome) on the PATH; "" when there is none.
func findChromium() string {
	if p := os.Getenv("BILLING_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestDashboardInBrowser serves the demo, makes chat calls on both models, then loads the admin
// dashboard in headless Chromium with the admin token and checks that the usage chart and the
// quota bars show the tracked numbers. It saves a screenshot to $BILLING_SCREENSHOT (default
// billing-dashboard.png in the temp directory). Without Chromium it skips, unless
// BILLING_REQUIRE_BROWSER=1.
func TestDashboardInBrowser(t *testing.T) {
	browser := findChromium()
	if browser == "" {
		if os.Getenv("BILLING_REQUIRE_BROWSER") == "1" {
			t.Fatal("BILLING_REQUIRE_BROWSER=1 but no chromium found (install Debian's chromium or set BILLING_CHROMIUM)")
		}
		t.Skip("no chromium found; install it (apt-get install chromium) or set BILLING_CHROMIUM to run this test")
	}
	srv, m, svc := newDemo(t)
	pro := demoTenants[1]
	c := client(srv, pro.Key)
	ctx := context.Background()
	for i, model := range []string{"demo-mini", "demo-max", "demo-mini", "demo-max", "demo-mini"} {
		_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: model,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(strings.Repeat("word ", 3+i*2))}})
		if err != nil {
			t.Fatal(err)
		}
	}
	svc.Pending.Wait() // every usage commit has finished
	// Through the admin API: a soft hourly quota half used by now, and a draft invoice.
	adminCall(t, srv.URL, svc.AdminToken, "PUT", "/admin/v1/tenants/"+pro.Tenant+"/quotas/tokens.output/hour", `{"limit":70}`)
	adminCall(t, srv.URL, svc.AdminToken, "POST", "/admin/v1/tenants/"+pro.Tenant+"/invoices", `{}`)
	wantOut := tracked(t, m, pro.Tenant, "tokens.output")
	wantIn := tracked(t, m, pro.Tenant, "tokens.input")
	quotas, err := m.QuotaStatus(ctx, pro.Tenant)
	if err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.WindowSize(1280, 1100))
	actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(bctx); err != nil { // starts the browser; no timeout on this first call
		t.Fatalf("start %s: %v", browser, err)
	}
	tctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()

	url := srv.URL + "/admin/#tenant=" + pro.Tenant + "&token=" + svc.AdminToken
	if err := chromedp.Do(tctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#charts svg.chart")),
		chromedp.WaitVisible(chromedp.CSS("#quotas .quota"))); err != nil {
		t.Fatalf("load the dashboard: %v", err)
	}
	legends := evaluate[[]map[string]string](t, tctx, `[...document.querySelectorAll(".legend")].map(e => ({resource: e.dataset.resource, model: e.dataset.model, total: e.dataset.total, text: e.textContent}))`)
	bars := evaluate[[]map[string]string](t, tctx, `[...document.querySelectorAll(".quota")].map(e => ({resource: e.dataset.resource, period: e.dataset.period, used: e.dataset.used, limit: e.dataset.limit, text: e.querySelector(".value").textContent, width: e.querySelector(".fill").style.width}))`)
	rectSums := evaluate[map[string]float64](t, tctx, `(() => { const s = {}; document.querySelectorAll("svg.chart").forEach(svg => { s[svg.dataset.resource] = [...svg.querySelectorAll("rect")].reduce((a, r) => a + Number(r.dataset.value), 0); }); return s; })()`)
	hash := evaluate[string](t, tctx, `location.hash`)
	text := evaluate[string](t, tctx, `document.getElementById("tenant").innerText`)
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := os.Getenv("BILLING_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(os.TempDir(), "billing-dashboard.png")
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))

	// The chart: one legend entry per resource and model, totalling the tracked usage, and bars
	// adding up to the same.
	got := map[string]map[string]int64{}
	for _, l := range legends {
		if got[l["resource"]] == nil {
			got[l["resource"]] = map[string]int64{}
		}
		var n int64
		fmt.Sscan(l["total"], &n)
		got[l["resource"]][l["model"]] = n
		if !strings.HasPrefix(l["text"], l["model"]+": ") {
			t.Errorf("legend text %q", l["text"])
		}
	}
	for resource, want := range map[string]map[string]int64{"tokens.output": wantOut, "tokens.input": wantIn} {
		if fmt.Sprint(got[resource]) != fmt.Sprint(want) {
			t.Errorf("chart legend of %s = %v, want tracked %v", resource, got[resource], want)
		}
		var sum int64
		for _, v := range want {
			sum += v
		}
		if int64(rectSums[resource]) != sum {
			t.Errorf("chart bars of %s add up to %v, want %d", resource, rectSums[resource], sum)
		}
	}
	if len(wantOut) != 2 {
		t.Errorf("tracked output by model %v, want both models", wantOut)
	}

	// The quota bars: one per rule, with the used and limit values of QuotaStatus, shown as text.
	if len(bars) != len(quotas) {
		t.Fatalf("%d quota bars, want %d: %v", len(bars), len(quotas), bars)
	}
	for _, q := range quotas {
		found := false
		for _, b := range bars {
			if b["resource"] != q.Rule.Resource || b["period"] != string(q.Rule.Period) {
				continue
			}
			found = true
			if b["used"] != fmt.Sprint(q.Used) || b["limit"] != fmt.Sprint(q.Rule.Limit) {
				t.Errorf("quota bar %v, want used %d of %d", b, q.Used, q.Rule.Limit)
			}
			if !strings.HasPrefix(b["text"], fmt.Sprintf("%s / %s", commas(q.Used), commas(q.Rule.Limit))) {
				t.Errorf("quota bar text %q, want %d / %d", b["text"], q.Used, q.Rule.Limit)
			}
		}
		if !found {
			t.Errorf("no quota bar for %s per %s", q.Rule.Resource, q.Rule.Period)
		}
	}
	if strings.Contains(hash, "token") {
		t.Errorf("the token stayed in the URL: %q", hash)
	}
	for _, want := range []string{"Rate limits", "Invoices", "Alerts", pro.Tenant, "(draft)", "PDF", "soft"} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// adminCall calls the demo's admin API as admin and fails the test unless it answers 2xx.
func adminCall(t *testing.T, base, token, method, path, body string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("%s %s = %d: %s", method, path, res.StatusCode, b)
	}
}

// evaluate runs a script in the page and decodes its result.
func evaluate[T any](t *testing.T, ctx context.Context, script string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](script))
	if err != nil {
		t.Fatalf("evaluate %s: %v", script, err)
	}
	return v
}

// commas formats n as en-US does: 100000 -> "100,000".
func commas(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
