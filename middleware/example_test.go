package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/middleware"
	"github.com/meterplane/billing/store/sqlite"
)

func ExampleHTTP() {
	ctx := context.Background()
	st, _ := sqlite.Open(":memory:")
	defer st.Close()
	m, _ := billing.New(billing.Config{Store: st})
	defer m.Close()
	_ = m.SetQuota(ctx, billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay,
		Limit: 2, Hard: true})

	keys := middleware.NewKeyStore()
	_ = keys.Add("sk-acme-0123456789abcdef", "acme")
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, _ := billing.TenantFrom(r.Context())
		fmt.Fprintf(w, "hello %s", tenant)
	})
	h := middleware.HTTP(m, middleware.Options{Tenant: middleware.FromAPIKey(keys), WaitDurable: true})(api)

	for range 3 {
		r := httptest.NewRequest("GET", "/hello", nil)
		r.Header.Set("Authorization", "Bearer sk-acme-0123456789abcdef")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Println(w.Code, w.Header().Get("Content-Type"), strings.SplitN(w.Body.String(), ",", 2)[0])
	}
	// Output:
	// 200 text/plain; charset=utf-8 hello acme
	// 200 text/plain; charset=utf-8 hello acme
	// 429 application/problem+json {"type":"https://meterplane.dev/problems/quota-exceeded"
}

func ExampleChat() {
	st, _ := sqlite.Open(":memory:")
	defer st.Close()
	m, _ := billing.New(billing.Config{Store: st})
	defer m.Close()

	// A stand-in for a model endpoint: one fixed completion.
	model := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"}}],`+
			`"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`)
	})
	price := func(resource, usd string) billing.Price {
		return billing.Price{Resource: resource, Match: map[string]string{"model": "gpt-4o-mini"},
			Model: billing.PerUnit, UnitPrice: decimal.RequireFromString(usd)}
	}
	chat := middleware.Chat(m, middleware.ChatOptions{Upstream: model, Currency: "USD", WaitDurable: true,
		Prices: []billing.Price{price("tokens.input", "0.00000015"), price("tokens.output", "0.0000006")}})
	h := middleware.HTTP(m, middleware.Options{Tenant: middleware.FromHeader("X-Tenant"), WaitDurable: true})(chat)

	r := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}]}`))
	r.Header.Set("X-Tenant", "acme")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	fmt.Println(w.Code, "X-Billing-Cost:", w.Header().Get(middleware.HeaderCost))

	rows, _ := m.Usage(context.Background(), billing.UsageQuery{Tenant: "acme", GroupBy: []string{"model"}})
	for _, row := range rows {
		fmt.Println(row.Resource, row.Group["model"], row.Sum)
	}
	// Output:
	// 200 X-Billing-Cost: 0.0000036 USD
	// requests  1
	// tokens.input gpt-4o-mini 12
	// tokens.output gpt-4o-mini 3
}

func ExampleProblemFor() {
	err := fmt.Errorf("reserve: %w", &billing.QuotaExceededError{
		Rule: billing.QuotaRule{Tenant: "acme", Resource: "tokens.output", Period: billing.PeriodTotal, Limit: 1000, Hard: true},
		Used: 990, Requested: 50, Limit: 1000})
	p := middleware.ProblemFor(err)
	fmt.Println(p.Status, p.Type)
	fmt.Println(p.Detail)
	// Output:
	// 429 https://meterplane.dev/problems/quota-exceeded
	// the hard quota of 1000 tokens.output in total is reached: 990 used, 0 reserved by requests in flight, 50 requested
}
