package redis

import (
	"context"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	goredis "github.com/redis/go-redis/v9"

	"github.com/meterplane/billing"
)

// The Redis limiter beside its baselines, on the same server and client options, in one run:
//
//	BILLING_TEST_REDIS=redis://127.0.0.1:6379/0 go test -run '^$' -bench Redis -benchmem ./store/redis
//
// Each call is one round trip to Redis on one key, admitted every time.

// benchRedisPolicy admits a call every microsecond: no benchmark call is refused.
var benchRedisPolicy = billing.RatePolicy{Resource: "requests", Limit: 1_000_000, Window: time.Second}

func benchClient(b *testing.B, ctxTimeouts bool) *goredis.Client {
	return testClient(b, func(o *goredis.Options) { o.ContextTimeoutEnabled = ctxTimeouts })
}

// BenchmarkRedisLimiterAllow is ours, on a client with ContextTimeoutEnabled (the recommended
// setup: the timeout bounds the socket I/O directly).
func BenchmarkRedisLimiterAllow(b *testing.B) {
	benchLimiter(b, benchClient(b, true))
}

// BenchmarkRedisLimiterAllowGuarded is ours on a default client, which ignores context deadlines
// for socket I/O, so each call waits in a goroutine to keep the timeout.
func BenchmarkRedisLimiterAllowGuarded(b *testing.B) {
	benchLimiter(b, benchClient(b, false))
}

func benchLimiter(b *testing.B, c *goredis.Client) {
	ctx := context.Background()
	l := newTestLimiter(b, c, LimiterConfig{Prefix: testPrefix(b, c), Timeout: time.Second})
	key := billing.RateKey{Tenant: "acme", Resource: "requests"}
	if _, err := l.Allow(ctx, key, benchRedisPolicy, 1); err != nil { // loads the script
		b.Fatal(err)
	}
	for b.Loop() {
		if d, err := l.Allow(ctx, key, benchRedisPolicy, 1); err != nil || !d.Allowed {
			b.Fatal(d, err)
		}
	}
}

// BenchmarkRedisRateAllow is the baseline: github.com/go-redis/redis_rate/v10 (GCRA in Lua too)
// on the same client options.
func BenchmarkRedisRateAllow(b *testing.B) {
	ctx := context.Background()
	c := benchClient(b, true)
	key := testPrefix(b, c) + "acme"
	l := redis_rate.NewLimiter(c)
	limit := redis_rate.Limit{Rate: 1_000_000, Burst: 1_000_000, Period: time.Second}
	b.Cleanup(func() { l.Reset(ctx, key) })
	for b.Loop() {
		if r, err := l.Allow(ctx, key, limit); err != nil || r.Allowed != 1 {
			b.Fatal(r, err)
		}
	}
}

// BenchmarkRedisEvalShaFloor is the floor: EVALSHA of a script that only returns, one round trip.
func BenchmarkRedisEvalShaFloor(b *testing.B) {
	ctx := context.Background()
	c := benchClient(b, true)
	s := goredis.NewScript(`return {1, 2, 3, 4}`)
	key := testPrefix(b, c) + "floor"
	for b.Loop() {
		if err := s.Run(ctx, c, []string{key}).Err(); err != nil {
			b.Fatal(err)
		}
	}
}
