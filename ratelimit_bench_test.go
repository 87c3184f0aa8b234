package billing_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// The in-process limiter beside its baseline, golang.org/x/time/rate, in one run:
//
//	go test -run '^$' -bench '^Benchmark(XTimeRate|Limiter|Meter)Allow' -benchmem .
//
// Every benchmark reads the clock on each call (x/time/rate is given time.Now(), ours reads it
// itself) and is admitted on every call, so each measures one full decision.

// benchPolicy admits a call every nanosecond, so no benchmark call is refused.
var benchPolicy = billing.RatePolicy{Resource: "requests", Limit: 1e9, Window: time.Second}

// BenchmarkXTimeRateAllow is the baseline: one x/time/rate limiter, AllowN(time.Now(), 1).
func BenchmarkXTimeRateAllow(b *testing.B) {
	l := rate.NewLimiter(rate.Limit(benchPolicy.Limit), int(benchPolicy.Limit))
	for b.Loop() {
		if !l.AllowN(time.Now(), 1) {
			b.Fatal("refused")
		}
	}
}

// BenchmarkLimiterAllow is the in-process limiter on one key.
func BenchmarkLimiterAllow(b *testing.B) {
	ctx := context.Background()
	l := billing.NewLocalLimiter(billing.LocalLimiterConfig{})
	key := billing.RateKey{Tenant: "acme", Resource: "requests"}
	for b.Loop() {
		if d, err := l.Allow(ctx, key, benchPolicy, 1); err != nil || !d.Allowed {
			b.Fatal(d, err)
		}
	}
}

// benchKeys are 100,000 distinct tenants.
func benchKeys() []billing.RateKey {
	keys := make([]billing.RateKey, 100_000)
	for i := range keys {
		keys[i] = billing.RateKey{Tenant: "tenant-" + strconv.Itoa(i), Resource: "requests"}
	}
	return keys
}

// BenchmarkXTimeRateAllowParallel is the parallel baseline: 100,000 x/time/rate limiters in a
// slice (no lookup by key at all), called from every P.
func BenchmarkXTimeRateAllowParallel(b *testing.B) {
	ls := make([]*rate.Limiter, 100_000)
	for i := range ls {
		ls[i] = rate.NewLimiter(rate.Limit(benchPolicy.Limit), int(benchPolicy.Limit))
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			i++
			if i >= len(ls) {
				i = 0
			}
			if !ls[i].AllowN(time.Now(), 1) {
				b.Error("refused")
			}
		}
	})
}

// BenchmarkLimiterAllowParallel is the in-process limiter on 100,000 keys, called from every P.
func BenchmarkLimiterAllowParallel(b *testing.B) {
	ctx := context.Background()
	l := billing.NewLocalLimiter(billing.LocalLimiterConfig{})
	keys := benchKeys()
	for _, k := range keys {
		l.Allow(ctx, k, benchPolicy, 1)
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			i++
			if i >= len(keys) {
				i = 0
			}
			if d, err := l.Allow(ctx, keys[i], benchPolicy, 1); err != nil || !d.Allowed {
				b.Error(d, err)
			}
		}
	})
}

// BenchmarkMeterAllow is the whole path of Meter.Allow on one key: validation, the tenant's
// policy lookup, and the in-process limiter.
func BenchmarkMeterAllow(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(":memory:")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	m, err := billing.New(billing.Config{Store: st, RatePolicies: []billing.RatePolicy{benchPolicy}})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for b.Loop() {
		if d, err := m.Allow(ctx, "acme", "requests", 1); err != nil || !d.Allowed {
			b.Fatal(d, err)
		}
	}
}
