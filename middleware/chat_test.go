package middleware

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
)

var testPrices = []billing.Price{
	{Resource: "tokens.input", Match: map[string]string{"model": "m-small"}, Model: billing.PerUnit,
		UnitPrice: decimal.RequireFromString("0.000001")},
	{Resource: "tokens.output", Match: map[string]string{"model": "m-small"}, Model: billing.PerUnit,
		UnitPrice: decimal.RequireFromString("0.000002")},
	{Resource: "tokens.input", Match: map[string]string{"model": "m-large"}, Model: billing.PerUnit,
		UnitPrice: decimal.RequireFromString("0.00001")},
	{Resource: "tokens.output", Match: map[string]string{"model": "m-large"}, Model: billing.PerUnit,
		UnitPrice: decimal.RequireFromString("0.00003")},
}

// chatStack is the HTTP middleware (tenant from X-Tenant) in front of Chat, in front of up.
func chatStack(m *billing.Meter, up http.Handler, co ChatOptions) (http.Handler, *sync.WaitGroup) {
	wg := &sync.WaitGroup{}
	co.Upstream, co.Pending = up, wg
	if co.Prices == nil {
		co.Prices, co.Currency = testPrices, "USD"
	}
	return HTTP(m, Options{Tenant: FromHeader("X-Tenant"), Pending: wg})(Chat(m, co)), wg
}

func chatBody(model string, extra string) string {
	return `{"model":"` + model + `","messages":[{"role":"system","content":"be brief"},` +
		`{"role":"user","content":"Say something nice about Go."}]` + extra + `}`
}

var acme = map[string]string{"X-Tenant": "acme", "Content-Type": "application/json"}

func TestChatNonStreamingRecordsUsageAndCost(t *testing.T) {
	m := newMeter(t, billing.Config{})
	up := &fakeModel{natural: 20, prompt: 12}
	h, wg := chatStack(m, up, ChatOptions{})
	for _, model := range []string{"m-small", "m-large", "m-large"} {
		w := serve(h, "POST", "/v1/chat/completions", chatBody(model, `,"max_tokens":50`), acme)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		var resp struct {
			Usage tokenUsage `json:"usage"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.Usage.CompletionTokens != 20 {
			t.Fatalf("body %s: %v", w.Body, err)
		}
		want := map[string]string{"m-small": "0.000052 USD", "m-large": "0.00072 USD"}[model]
		if got := w.Header().Get(HeaderCost); got != want {
			t.Errorf("%s: %s = %q, want %q (12 in + 20 out)", model, HeaderCost, got, want)
		}
	}
	wg.Wait()
	wantIn := map[string]int64{"m-small": 12, "m-large": 24}
	wantOut := map[string]int64{"m-small": 20, "m-large": 40}
	if got := usage(t, m, "acme", "tokens.input"); fmt.Sprint(got) != fmt.Sprint(wantIn) {
		t.Errorf("tokens.input by model = %v, want %v", got, wantIn)
	}
	if got := usage(t, m, "acme", "tokens.output"); fmt.Sprint(got) != fmt.Sprint(wantOut) {
		t.Errorf("tokens.output by model = %v, want %v", got, wantOut)
	}
	if got := total(t, m, "acme", "requests"); got != 3 {
		t.Errorf("requests = %d, want 3", got)
	}
	// Without a limit and without a hard quota, the request reaches the upstream unchanged.
	serve(h, "POST", "/v1/chat/completions", chatBody("m-small", ""), acme)
	if body, _ := up.last(); body["max_tokens"] != nil {
		t.Errorf("max_tokens added without a hard quota: %v", body["max_tokens"])
	}
	wg.Wait()
}

// TestChatTokenQuota: with 1,000 output tokens left, max_tokens 4,000 is lowered to 1,000; with
// none left, the request is refused before the upstream is called.
func TestChatTokenQuota(t *testing.T) {
	m := newMeter(t, billing.Config{})
	setQuota(t, m, "acme", "tokens.output", 1500, true)
	if err := m.Track(context.Background(), billing.Event{Tenant: "acme", Resource: "tokens.output",
		Quantity: 500}); err != nil {
		t.Fatal(err)
	}
	up := &fakeModel{natural: 100_000, prompt: 10}
	h, wg := chatStack(m, up, ChatOptions{})

	w := serve(h, "POST", "/v1/chat/completions", chatBody("m-small", `,"max_tokens":4000`), acme)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	body, produced := up.last()
	if body["max_tokens"] != float64(1000) {
		t.Errorf("the upstream got max_tokens %v, want 1000", body["max_tokens"])
	}
	if produced > 1000 {
		t.Errorf("%d completion tokens produced, want at most 1000", produced)
	}
	wg.Wait()
	if got := total(t, m, "acme", "tokens.output"); got != 1500 {
		t.Errorf("tokens.output = %d, want 1500 (the hard limit, reached and not crossed)", got)
	}

	calls := up.calls.Load()
	w = serve(h, "POST", "/v1/chat/completions", chatBody("m-small", `,"max_tokens":10`), acme)
	p := decodeProblem(t, w.Code, w.Header(), w.Body.Bytes(), http.StatusTooManyRequests, ProblemQuotaExceeded)
	if p.Resource != "tokens.output" || *p.Limit != 1500 || *p.Used != 1500 {
		t.Errorf("problem = %+v", p)
	}
	if up.calls.Load() != calls {
		t.Error("the upstream was called for a request with no tokens left")
	}
	wg.Wait()
	if got := total(t, m, "acme", "requests"); got != 1 {
		t.Errorf("requests = %d, want 1: the refused request is not counted", got)
	}
	if got := reserved(t, m, "acme", "tokens.output"); got != 0 {
		t.Errorf("tokens.output still reserved: %d", got)
	}
}

func TestChatLimitFields(t *testing.T) {
	m := newMeter(t, billing.Config{})
	setQuota(t, m, "acme", "tokens.output", 300, true)
	up := &fakeModel{natural: 10, prompt: 5}
	h, wg := chatStack(m, up, ChatOptions{})
	for _, c := range []struct {
		extra string
		want  map[string]any
	}{
		// No limit under a hard quota: the budget (at most what is left) is sent as max_tokens.
		{``, map[string]any{"max_tokens": float64(300)}},
		// Only max_completion_tokens: it is the field lowered.
		{`,"max_completion_tokens":5000`, map[string]any{"max_completion_tokens": float64(300), "max_tokens": nil}},
		// Both: both lowered.
		{`,"max_completion_tokens":5000,"max_tokens":4000`, map[string]any{"max_completion_tokens": float64(300),
			"max_tokens": float64(300)}},
		// Within the quota: untouched.
		{`,"max_tokens":7`, map[string]any{"max_tokens": float64(7)}},
		// n choices share the budget: 300 / 3 per choice.
		{`,"n":3,"max_tokens":1000`, map[string]any{"max_tokens": float64(100)}},
	} {
		w := serve(h, "POST", "/v1/chat/completions", chatBody("m-small", c.extra), acme)
		wg.Wait()
		if w.Code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", c.extra, w.Code, w.Body)
		}
		body, _ := up.last()
		for k, v := range c.want {
			if body[k] != v {
				t.Errorf("%s: upstream got %s = %v, want %v", c.extra, k, body[k], v)
			}
		}
		// Give the quota back for the next case.
		setQuota(t, m, "acme", "tokens.output", 300+total(t, m, "acme", "tokens.output"), true)
	}
}

func TestChatInputQuotaRefusesBeforeUpstream(t *testing.T) {
	m := newMeter(t, billing.Config{})
	setQuota(t, m, "acme", "tokens.input", 5, true)
	up := &fakeModel{natural: 10, prompt: 5}
	h, _ := chatStack(m, up, ChatOptions{QuotaExceededStatus: http.StatusPaymentRequired})
	w := serve(h, "POST", "/v1/chat/completions", chatBody("m-small", ""), acme)
	p := decodeProblem(t, w.Code, w.Header(), w.Body.Bytes(), http.StatusPaymentRequired, ProblemQuotaExceeded)
	if p.Resource != "tokens.input" {
		t.Errorf("problem = %+v", p)
	}
	if up.calls.Load() != 0 {
		t.Error("the upstream was called")
	}
}

// TestChatBadInput: each bad request is a 400 problem saying what is wrong; nothing reaches the
// upstream and nothing is recorded or left reserved.
func TestChatBadInput(t *testing.T) {
	m := newMeter(t, billing.Config{})
	setQuota(t, m, "acme", "tokens.output", 1000, true)
	up := &fakeModel{natural: 10, prompt: 5}
	h, wg := chatStack(m, up, ChatOptions{})
	huge := chatBody("m-small", `,"padding":"`+strings.Repeat("x", DefaultMaxBodyBytes)+`"`)
	for _, c := range []struct {
		name, body, typ, says string
	}{
		{"malformed JSON", `{"model": "m-small", "messages": [`, ProblemInvalidJSON, "not valid JSON"},
		{"not an object", `[1, 2]`, ProblemInvalidJSON, "must be a JSON object"},
		{"empty body", ``, ProblemInvalidJSON, "empty"},
		{"oversized body", huge, ProblemBodyTooLarge, "larger than the limit of 1048576 bytes"},
		{"unknown model", chatBody("gpt-9", ""), ProblemUnknownModel, `"gpt-9" is not served here; use one of: m-small, m-large`},
		{"negative max_tokens", chatBody("m-small", `,"max_tokens":-5`), ProblemInvalidParameter, "max_tokens: must be a positive integer (got -5)"},
		{"zero max_completion_tokens", chatBody("m-small", `,"max_completion_tokens":0`), ProblemInvalidParameter, "max_completion_tokens: must be at least 1"},
		{"fractional max_tokens", chatBody("m-small", `,"max_tokens":1.5`), ProblemInvalidParameter, "max_tokens: must be an integer"},
		{"string max_tokens", chatBody("m-small", `,"max_tokens":"10"`), ProblemInvalidParameter, "max_tokens: must be a positive integer"},
		{"missing model", `{"messages":[{"role":"user","content":"hi"}]}`, ProblemInvalidParameter, "model: is required"},
		{"missing messages", `{"model":"m-small"}`, ProblemInvalidParameter, "messages: is required"},
		{"bad message", `{"model":"m-small","messages":["hi"]}`, ProblemInvalidParameter, "messages[0]: must be an object"},
		{"bad stream", chatBody("m-small", `,"stream":"yes"`), ProblemInvalidParameter, "stream: must be true or false"},
		{"too many choices", chatBody("m-small", `,"n":1000`), ProblemInvalidParameter, "n: must be at most 128"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := serve(h, "POST", "/v1/chat/completions", c.body, acme)
			p := decodeProblem(t, w.Code, w.Header(), w.Body.Bytes(), http.StatusBadRequest, c.typ)
			if !strings.Contains(p.Detail, c.says) {
				t.Errorf("detail %q does not say %q", p.Detail, c.says)
			}
		})
	}
	wg.Wait()
	if up.calls.Load() != 0 {
		t.Errorf("the upstream was called %d times", up.calls.Load())
	}
	for _, res := range []string{"requests", "tokens.input", "tokens.output"} {
		if got := total(t, m, "acme", res); got != 0 {
			t.Errorf("%s tracked = %d, want 0", res, got)
		}
	}
	if got := reserved(t, m, "acme", "tokens.output"); got != 0 {
		t.Errorf("tokens.output reserved = %d, want 0", got)
	}
}

func TestChatUpstreamErrorPassesThrough(t *testing.T) {
	m := newMeter(t, billing.Config{})
	setQuota(t, m, "acme", "tokens.output", 1000, true)
	const errBody = `{"error":{"message":"model overloaded","type":"server_error"}}`
	up := &fakeModel{status: http.StatusServiceUnavailable, errBody: errBody}
	h, wg := chatStack(m, up, ChatOptions{})
	for _, extra := range []string{"", `,"stream":true`} {
		w := serve(h, "POST", "/v1/chat/completions", chatBody("m-small", extra), acme)
		if w.Code != http.StatusServiceUnavailable || w.Body.String() != errBody {
			t.Errorf("%q: got %d %q, want the upstream's 503 and body", extra, w.Code, w.Body)
		}
		if w.Header().Get(HeaderCost) != "" {
			t.Error("a failed request has a cost")
		}
	}
	wg.Wait()
	for _, res := range []string{"requests", "tokens.input", "tokens.output"} {
		if got := total(t, m, "acme", res); got != 0 {
			t.Errorf("%s tracked = %d, want 0", res, got)
		}
	}
	if got := reserved(t, m, "acme", "tokens.output"); got != 0 {
		t.Errorf("tokens.output reserved = %d, want 0", got)
	}
}

func TestChatWithoutUsageCommitsEstimate(t *testing.T) {
	m := newMeter(t, billing.Config{})
	up := &fakeModel{natural: 30, noUsage: true}
	h, wg := chatStack(m, up, ChatOptions{})
	w := serve(h, "POST", "/v1/chat/completions", chatBody("m-small", ""), acme)
	if w.Code != http.StatusOK {
		t.Fatal(w.Code)
	}
	wg.Wait()
	// 30 tokens of "tok " are 120 characters: 30 by the chars/4 estimate.
	if got := total(t, m, "acme", "tokens.output"); got != 30 {
		t.Errorf("tokens.output = %d, want the estimate 30", got)
	}
	// system "be brief" (8 chars: 2) + user 28 chars (7) + 2x4 per message + 3 = 20.
	if got := total(t, m, "acme", "tokens.input"); got != 20 {
		t.Errorf("tokens.input = %d, want the prompt estimate 20", got)
	}
}

func TestChatMethodAndTenant(t *testing.T) {
	m := newMeter(t, billing.Config{})
	up := &fakeModel{natural: 3}
	chat := Chat(m, ChatOptions{Upstream: up})
	w := serve(chat, "GET", "/v1/chat/completions", "", nil)
	decodeProblem(t, w.Code, w.Header(), w.Body.Bytes(), http.StatusMethodNotAllowed, ProblemMethodNotAllowed)
	if w.Header().Get("Allow") != "POST" {
		t.Errorf("Allow = %q", w.Header().Get("Allow"))
	}
	w = serve(chat, "POST", "/v1/chat/completions", chatBody("anything", ""), nil)
	decodeProblem(t, w.Code, w.Header(), w.Body.Bytes(), http.StatusUnauthorized, ProblemTenantRequired)
	// Without Models or Prices any model name is accepted, and recorded.
	wg := &sync.WaitGroup{}
	chat = Chat(m, ChatOptions{Upstream: up, Tenant: FromHeader("X-Tenant"), Pending: wg})
	if w := serve(chat, "POST", "/v1/chat/completions", chatBody("anything", ""), acme); w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	wg.Wait()
	if got := usage(t, m, "acme", "tokens.output"); got["anything"] != 3 {
		t.Errorf("tokens.output = %v", got)
	}
}

func TestChatProxyForwardsWithItsOwnKey(t *testing.T) {
	var gotAuth, gotPath, gotAPIKey string
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath, gotAPIKey = r.Header.Get("Authorization"), r.URL.Path, r.Header.Get("X-Api-Key")
		(&fakeModel{natural: 4, prompt: 2}).ServeHTTP(w, r)
	}))
	defer model.Close()
	p, err := ChatProxy(model.URL, "sk-upstream")
	if err != nil {
		t.Fatal(err)
	}
	m := newMeter(t, billing.Config{})
	h, wg := chatStack(m, p, ChatOptions{})
	w := serve(h, "POST", "/v1/chat/completions", chatBody("m-small", ""), map[string]string{
		"X-Tenant": "acme", "Authorization": "Bearer sk-tenant-secret", "X-API-Key": "sk-tenant-secret"})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if gotAuth != "Bearer sk-upstream" || gotAPIKey != "" || gotPath != "/v1/chat/completions" {
		t.Errorf("upstream saw Authorization %q, X-API-Key %q, path %q", gotAuth, gotAPIKey, gotPath)
	}
	wg.Wait()
	if got := total(t, m, "acme", "tokens.output"); got != 4 {
		t.Errorf("tokens.output = %d, want 4", got)
	}

	// An unreachable upstream is a 502 problem, and the reservation returns.
	model.Close()
	w = serve(h, "POST", "/v1/chat/completions", chatBody("m-small", ""), acme)
	decodeProblem(t, w.Code, w.Header(), w.Body.Bytes(), http.StatusBadGateway, ProblemUpstreamError)
	if _, err := ChatProxy("ftp://x", ""); err == nil {
		t.Error("ChatProxy accepted an ftp URL")
	}
}

func TestChatUpstreamPanicCancels(t *testing.T) {
	m := newMeter(t, billing.Config{})
	setQuota(t, m, "acme", "tokens.output", 100, true)
	h, _ := chatStack(m, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("upstream bug") }), ChatOptions{})
	func() {
		defer func() {
			if recover() != "upstream bug" {
				t.Error("the upstream's panic was swallowed")
			}
		}()
		serve(h, "POST", "/v1/chat/completions", chatBody("m-small", ""), acme)
	}()
	if got := reserved(t, m, "acme", "tokens.output"); got != 0 {
		t.Errorf("tokens.output still reserved: %d", got)
	}
}

// TestChatBudgetReturnsBeforeResponseEnds: the unused part of a completion budget is free again
// as soon as the response ends, although the usage is committed behind it; a client's next
// request gets the whole quota that is left.
func TestChatBudgetReturnsBeforeResponseEnds(t *testing.T) {
	for _, c := range []struct {
		name       string
		limit      int64
		extra      string
		wantSecond float64
	}{
		{"room to spare", 10_000, `,"max_tokens":9000`, 9000},
		{"budget took all that was left", 100, ``, 95},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMeter(t, billing.Config{})
			setQuota(t, m, "acme", "tokens.output", c.limit, true)
			up := &fakeModel{natural: 5, prompt: 3}
			h, wg := chatStack(m, up, ChatOptions{})
			for i := range 2 {
				if w := serve(h, "POST", "/v1/chat/completions", chatBody("m-small", c.extra), acme); w.Code != 200 {
					t.Fatalf("request %d: status %d: %s", i, w.Code, w.Body)
				}
			}
			if body, _ := up.last(); body["max_tokens"] != c.wantSecond {
				t.Errorf("second request's max_tokens = %v, want %v: the first one's budget was still held",
					body["max_tokens"], c.wantSecond)
			}
			wg.Wait()
			if got := total(t, m, "acme", "tokens.output"); got != 10 {
				t.Errorf("tokens.output = %d, want 10", got)
			}
			if got := reserved(t, m, "acme", "tokens.output"); got != 0 {
				t.Errorf("still reserved: %d", got)
			}
		})
	}
}

func TestChatUpstreamResponseTooLarge(t *testing.T) {
	big := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"choices":[{"message":{"content":"` + strings.Repeat("x", 2000) + `"}}]}`))
	})
	model := httptest.NewServer(big)
	defer model.Close()
	proxy, err := ChatProxy(model.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	m := newMeter(t, billing.Config{})
	setQuota(t, m, "acme", "tokens.output", 100_000, true)
	for _, up := range []http.Handler{big, proxy} {
		h, wg := chatStack(m, up, ChatOptions{MaxResponseBytes: 1000})
		srv := httptest.NewServer(h) // a real server: the proxy aborts with http.ErrAbortHandler
		req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(chatBody("m-small", "")))
		req.Header.Set("X-Tenant", "acme")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		decodeProblem(t, resp.StatusCode, resp.Header, body, http.StatusBadGateway, ProblemUpstreamError)
		srv.Close()
		wg.Wait()
	}
	if got := reserved(t, m, "acme", "tokens.output"); got != 0 {
		t.Errorf("still reserved: %d", got)
	}
	if got := total(t, m, "acme", "tokens.output"); got != 0 {
		t.Errorf("tokens.output = %d, want 0", got)
	}
}
