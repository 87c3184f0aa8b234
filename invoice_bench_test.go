package billing_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meterplane/billing"
)

// invBenchPlan prices 10 resources with every model, per-model matches and included units.
func invBenchPlan() billing.Plan {
	tiers := []billing.Tier{{UpTo: 1000, UnitPrice: invD("0.01")}, {UpTo: 100_000, UnitPrice: invD("0.008"), FlatPrice: invD("2")},
		{UnitPrice: invD("0.005")}}
	return billing.Plan{ID: "bench", Currency: "USD", BaseFee: invD("29"), Minimum: invD("50"), Prices: []billing.Price{
		{Resource: "tokens.input", Match: map[string]string{"model": "gpt-4o"}, Model: billing.PerUnit, UnitPrice: invD("0.0000025")},
		{Resource: "tokens.input", Model: billing.PerUnit, UnitPrice: invD("0.00000015")},
		{Resource: "tokens.output", Match: map[string]string{"model": "gpt-4o"}, Model: billing.PerUnit, UnitPrice: invD("0.00001")},
		{Resource: "tokens.output", Model: billing.PerUnit, UnitPrice: invD("0.0000006")},
		{Resource: "requests", Model: billing.Graduated, Tiers: tiers, Included: 500},
		{Resource: "messages", Model: billing.Volume, Tiers: tiers},
		{Resource: "storage.gb", Model: billing.Package, UnitPrice: invD("0.25"), PackageSize: 10},
		{Resource: "seats", Model: billing.PerUnit, UnitPrice: invD("12"), Included: 1},
		{Resource: "images", Model: billing.Graduated, Tiers: tiers},
		{Resource: "minutes", Model: billing.Volume, Tiers: tiers, Included: 60},
	}}
}

// invBenchEvents are one tenant's 10 events of February, one per priced resource.
func invBenchEvents(tenant string, i int) []billing.Event {
	at := invFeb.Start.Add(time.Duration(i%(27*24))*time.Hour + time.Duration(i%60)*time.Minute)
	model := []string{"gpt-4o", "gpt-4o-mini"}[i%2]
	ev := func(resource string, qty int64, attrs map[string]string) billing.Event {
		return billing.Event{Tenant: tenant, Resource: resource, Quantity: qty, Time: at, Attrs: attrs}
	}
	m := map[string]string{"model": model}
	q := int64(i%997 + 1)
	return []billing.Event{
		ev("tokens.input", 1000*q, m), ev("tokens.output", 300*q, m),
		ev("tokens.input", 200*q, map[string]string{"model": "claude"}), ev("tokens.output", 50*q, map[string]string{"model": "claude"}),
		ev("requests", 10*q, nil), ev("messages", 7*q, nil), ev("storage.gb", q, nil), ev("seats", q%20+1, nil),
		ev("images", 3*q, nil), ev("minutes", 2*q, nil),
	}
}

// BenchmarkGenerateInvoices makes the drafts of February for 10,000 tenants with usage of 10
// priced resources each, on a file store. Loading the usage is not timed. The baseline is the
// floor of the job: reading the month's usage buckets of every tenant from the store.
func BenchmarkGenerateInvoices(b *testing.B) {
	const tenants = 10_000
	ctx := context.Background()
	st := invOpenFile(b, filepath.Join(b.TempDir(), "billing.db"))
	loaded := time.Now()
	loader, err := billing.New(billing.Config{Store: st, Async: true, DefaultPlan: "bench",
		Now: func() time.Time { return invFeb.End.Add(time.Minute) }})
	if err != nil {
		b.Fatal(err)
	}
	if err := loader.SetPlan(ctx, invBenchPlan()); err != nil {
		b.Fatal(err)
	}
	for i := range tenants {
		if err := loader.Track(ctx, invBenchEvents(fmt.Sprintf("tenant%05d", i), i)...); err != nil {
			b.Fatal(err)
		}
	}
	if err := loader.Close(); err != nil { // drains the queue
		b.Fatal(err)
	}
	b.Logf("loaded %d events of %d tenants in %v", tenants*10, tenants, time.Since(loaded).Round(time.Millisecond))
	m := newMeter(b, billing.Config{Store: st, DefaultPlan: "bench", Now: func() time.Time { return invInGrace }})

	perThousand := func(b *testing.B, n int) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/1e6/(tenants/1000), "ms/1000tenants")
	}
	b.Run("baseline=read-buckets", func(b *testing.B) {
		n := 0
		for b.Loop() {
			rows, err := st.QueryRollups(ctx, billing.RollupQuery{Period: billing.PeriodMonth, From: invFeb.Start, To: invFeb.End})
			if err != nil {
				b.Fatal(err)
			}
			if len(rows) != tenants*10 { // 10 (resource, model) groups per tenant
				b.Fatalf("%d month buckets, want %d", len(rows), tenants*10)
			}
			n++
		}
		perThousand(b, n)
	})
	b.Run("drafts", func(b *testing.B) {
		n := 0
		for b.Loop() {
			invs, err := m.GenerateInvoices(ctx, invFeb)
			if err != nil {
				b.Fatal(err)
			}
			if len(invs) != tenants || len(invs[0].Lines) < 11 || !invs[0].Total.IsPositive() {
				b.Fatalf("%d drafts (want %d), the first with %d lines (want 10 usage lines, a base fee, maybe a minimum) "+
					"and total %s", len(invs), tenants, len(invs[0].Lines), invs[0].Total)
			}
			n++
		}
		perThousand(b, n)
	})
}
