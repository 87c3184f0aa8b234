package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/metrics"
	"github.com/meterplane/billing/middleware"
	"github.com/meterplane/billing/middleware/admin"
)

// The demo's tenants, their plans and API keys. The keys are public demo values: a real service
// generates keys with crypto/rand and keeps only their digests (middleware.HashKey).
var demoTenants = []struct {
	Tenant, Plan, Key string
}{
	{"hobby-co", "free", "sk-demo-free-0123456789"},
	{"acme-corp", "pro", "sk-demo-pro-0123456789"},
}

// prices are the per-model token prices, in USD per token, of both plans.
var prices = []billing.Price{
	perToken("tokens.input", "demo-mini", "0.00000015"),
	perToken("tokens.output", "demo-mini", "0.0000006"),
	perToken("tokens.input", "demo-max", "0.0000025"),
	perToken("tokens.output", "demo-max", "0.00001"),
}

func perToken(resource, model, usd string) billing.Price {
	return billing.Price{Resource: resource, Match: map[string]string{"model": model}, Model: billing.PerUnit,
		UnitPrice: decimal.RequireFromString(usd)}
}

// plans: free has small hard limits, a tight rate limit and a soft limit that warns early; pro has
// room.
var plans = []billing.Plan{
	{ID: "free", Name: "Free", Currency: "USD", Prices: prices,
		Quotas: []billing.QuotaRule{
			{Resource: "requests", Period: billing.PeriodDay, Limit: 200, Hard: true},
			{Resource: "requests", Period: billing.PeriodHour, Limit: 5}, // soft: warns from the 5th
			{Resource: "tokens.input", Period: billing.PeriodDay, Limit: 10_000, Hard: true},
			{Resource: "tokens.output", Period: billing.PeriodDay, Limit: 2_000, Hard: true},
		},
		Rates: []billing.RatePolicy{{Resource: "requests", Limit: 10, Window: time.Minute}},
	},
	{ID: "pro", Name: "Pro", Currency: "USD", Prices: prices,
		Quotas: []billing.QuotaRule{
			{Resource: "requests", Period: billing.PeriodDay, Limit: 100_000, Hard: true},
			{Resource: "tokens.input", Period: billing.PeriodDay, Limit: 5_000_000, Hard: true},
			{Resource: "tokens.output", Period: billing.PeriodDay, Limit: 1_000_000, Hard: true},
		},
		Rates: []billing.RatePolicy{{Resource: "requests", Limit: 600, Window: time.Minute, Burst: 100}},
	},
}

// service is the demo API: an OpenAI-compatible chat endpoint on the echo model, metered.
type service struct {
	// Handler serves /v1/chat/completions, /v1/models and /v1/usage, and the admin API and
	// dashboard under /admin/. It also serves Prometheus metrics at /metrics.
	Handler http.Handler
	// AdminToken is the bearer token of the admin API and dashboard: random for each start.
	// Each tenant's API key also opens the dashboard, for that tenant only.
	AdminToken string
	// Pending counts the usage commits still running behind responses: wait on it before
	// closing the Meter.
	Pending *sync.WaitGroup
}

// newService sets up the demo's plans, tenants and keys on m and returns its handler. delay is
// the echo model's pause between streamed words.
func newService(ctx context.Context, m *billing.Meter, delay time.Duration) (*service, error) {
	for _, p := range plans {
		if err := m.SetPlan(ctx, p); err != nil {
			return nil, fmt.Errorf("plan %s: %w", p.ID, err)
		}
	}
	keys := middleware.NewKeyStore()
	for _, t := range demoTenants {
		if err := m.AssignPlan(ctx, t.Tenant, t.Plan); err != nil {
			return nil, err
		}
		if err := keys.Add(t.Key, t.Tenant); err != nil {
			return nil, err
		}
	}
	pending := &sync.WaitGroup{}
	metered := middleware.HTTP(m, middleware.Options{Tenant: middleware.FromAPIKey(keys), Pending: pending,
		SoftLimitCheck: 100 * time.Millisecond}) // the warning header follows usage within 100ms
	identified := middleware.HTTP(m, middleware.Options{Tenant: middleware.FromAPIKey(keys),
		Quantity: func(*http.Request) int64 { return 0 }}) // listings: authenticated, not metered

	mux := http.NewServeMux()
	mux.Handle("POST /v1/chat/completions", metered(middleware.Chat(m, middleware.ChatOptions{
		Upstream: echoModel{delay: delay}, Prices: prices, Currency: "USD", Pending: pending})))
	mux.Handle("GET /v1/models", identified(http.HandlerFunc(listModels)))
	mux.Handle("GET /v1/usage", identified(usageHandler(m)))

	adminToken := "adm-" + rand.Text()
	tokens := map[string]string{adminToken: "admin"}
	for _, t := range demoTenants {
		tokens[t.Key] = "tenant:" + t.Tenant
	}
	dash, err := admin.NewHandler(m, admin.Options{Tokens: tokens})
	if err != nil {
		return nil, err
	}
	mux.Handle("/admin/", http.StripPrefix("/admin", dash))
	mux.Handle("GET /metrics", metrics.Handler(m))
	return &service{Handler: mux, Pending: pending, AdminToken: adminToken}, nil
}

// listModels answers GET /v1/models like OpenAI's API.
func listModels(w http.ResponseWriter, r *http.Request) {
	names := make([]string, 0, len(demoModels))
	for n := range demoModels {
		names = append(names, n)
	}
	sort.Strings(names)
	data := make([]map[string]any, len(names))
	for i, n := range names {
		data[i] = map[string]any{"id": n, "object": "model", "created": 0, "owned_by": "meterplane-demo"}
	}
	writeJSON(w, map[string]any{"object": "list", "data": data})
}

// usageHandler answers GET /v1/usage: the calling tenant's quotas and its usage by model today.
func usageHandler(m *billing.Meter) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenant, _ := billing.TenantFrom(r.Context())
		quotas, err := m.QuotaStatus(r.Context(), tenant)
		if err != nil {
			middleware.WriteError(w, err)
			return
		}
		rows, err := m.Usage(r.Context(), billing.UsageQuery{Tenant: tenant, Window: billing.PeriodDay,
			From: billing.PeriodDay.Start(m.Now(), m.Location()), GroupBy: []string{"model"}})
		if err != nil {
			middleware.WriteError(w, err)
			return
		}
		writeJSON(w, map[string]any{"tenant": tenant, "quotas": quotas, "usage_today": rows})
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
