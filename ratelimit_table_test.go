package billing_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/redis"
)

// rateT0 is the fixed instant the rate-limit tables start at.
var rateT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// rateStep is one call of a rate-limit table, at rateT0+at.
type rateStep struct {
	at   time.Duration
	op   string // "allow" (default), "peek" or "reset"
	n    int64
	want billing.Decision // Limit and Policy are filled in from the case
	err  error            // matched with errors.Is
}

type rateCase struct {
	name   string
	policy billing.RatePolicy
	steps  []rateStep
}

func ok(rem int64, reset time.Duration) billing.Decision {
	return billing.Decision{Allowed: true, Remaining: rem, ResetAfter: reset}
}

func no(rem int64, retry, reset time.Duration) billing.Decision {
	return billing.Decision{Remaining: rem, RetryAfter: retry, ResetAfter: reset}
}

// rateTable is the exactness table every Limiter passes: the in-process one, and the Redis one
// when BILLING_TEST_REDIS is set (with its clock injected, so both decide at the same instants).
var rateTable = []rateCase{
	{
		name:   "burst then refusal",
		policy: billing.RatePolicy{Resource: "requests", Limit: 10, Window: time.Minute}, // T = 6s, burst 10
		steps: []rateStep{
			{n: 1, want: ok(9, 6*time.Second)},
			{n: 1, want: ok(8, 12*time.Second)},
			{n: 7, want: ok(1, 54*time.Second)},
			{n: 1, want: ok(0, 60*time.Second)},
			{n: 1, want: no(0, 6*time.Second, 60*time.Second)},
			{at: 5 * time.Second, n: 1, want: no(0, time.Second, 55*time.Second)},
			{at: 6 * time.Second, n: 1, want: ok(0, 60*time.Second)},
		},
	},
	{
		name:   "steady rate",
		policy: billing.RatePolicy{Resource: "requests", Limit: 10, Window: time.Minute, Burst: 1},
		steps: []rateStep{
			{n: 1, want: ok(0, 6*time.Second)},
			{n: 1, want: no(0, 6*time.Second, 6*time.Second)},
			{at: 3 * time.Second, n: 1, want: no(0, 3*time.Second, 3*time.Second)},
			{at: 6 * time.Second, n: 1, want: ok(0, 6*time.Second)},
			{at: 12 * time.Second, n: 1, want: ok(0, 6*time.Second)},
			{at: 17*time.Second + 999*time.Millisecond, n: 1, want: no(0, time.Millisecond, time.Millisecond)},
			{at: 18 * time.Second, n: 1, want: ok(0, 6*time.Second)},
			{at: 30 * time.Second, n: 1, want: ok(0, 6*time.Second)}, // idle does not bank beyond the burst
			{at: 30 * time.Second, n: 1, want: no(0, 6*time.Second, 6*time.Second)},
		},
	},
	{
		name:   "n above one",
		policy: billing.RatePolicy{Resource: "tokens.output", Limit: 100, Window: time.Second, Burst: 50}, // T = 10ms
		steps: []rateStep{
			{n: 30, want: ok(20, 300*time.Millisecond)},
			{n: 30, want: no(20, 100*time.Millisecond, 300*time.Millisecond)},
			{n: 20, want: ok(0, 500*time.Millisecond)},
			{at: 100 * time.Millisecond, n: 30, want: no(10, 200*time.Millisecond, 400*time.Millisecond)},
			{at: 300 * time.Millisecond, n: 30, want: ok(0, 500*time.Millisecond)},
			{at: 300 * time.Millisecond, n: 51, want: no(0, 0, 500*time.Millisecond), err: billing.ErrExceedsBurst},
			{at: 800 * time.Millisecond, n: 51, want: no(50, 0, 0), err: billing.ErrExceedsBurst},
			{at: 800 * time.Millisecond, n: 50, want: ok(0, 500*time.Millisecond)},
		},
	},
	{
		name:   "refill after idle",
		policy: billing.RatePolicy{Resource: "requests", Limit: 10, Window: time.Minute},
		steps: []rateStep{
			{n: 10, want: ok(0, time.Minute)},
			{at: 30 * time.Second, op: "peek", want: ok(5, 30*time.Second)},
			{at: 30 * time.Second, n: 6, want: no(5, 6*time.Second, 30*time.Second)},
			{at: 30 * time.Second, n: 5, want: ok(0, time.Minute)},
			{at: 10 * time.Minute, op: "peek", want: ok(10, 0)},
			{at: 10 * time.Minute, n: 10, want: ok(0, time.Minute)},
			{at: 10 * time.Minute, op: "peek", want: no(0, 6*time.Second, time.Minute)},
		},
	},
	{
		name:   "clock going backwards grants nothing extra",
		policy: billing.RatePolicy{Resource: "requests", Limit: 1, Window: time.Second, Burst: 2},
		steps: []rateStep{
			{at: 10 * time.Second, n: 2, want: ok(0, 2*time.Second)},
			{at: 5 * time.Second, n: 1, want: no(0, 6*time.Second, 7*time.Second)},
			{at: 5 * time.Second, op: "peek", want: no(0, 6*time.Second, 7*time.Second)},
			{at: 9 * time.Second, n: 1, want: no(0, 2*time.Second, 3*time.Second)},
			{at: 11 * time.Second, n: 1, want: ok(0, 2*time.Second)},
			{at: 11 * time.Second, n: 1, want: no(0, time.Second, 2*time.Second)},
		},
	},
	{
		name: "interval rounds up, never grants extra",
		// 3 per second: T = 333333334ns (rounded up from 333333333.3), burst 3 refills in 1000000002ns.
		policy: billing.RatePolicy{Resource: "requests", Limit: 3, Window: time.Second},
		steps: []rateStep{
			{n: 3, want: ok(0, 1000000002)},
			{at: 333333333, n: 1, want: no(0, 1, 666666669)},
			{at: 333333334, n: 1, want: ok(0, 1000000002)},
			{at: 10 * time.Second, op: "peek", want: ok(3, 0)},
		},
	},
	{
		name:   "reset gives a full burst",
		policy: billing.RatePolicy{Resource: "requests", Limit: 2, Window: time.Hour},
		steps: []rateStep{
			{n: 2, want: ok(0, time.Hour)},
			{n: 1, want: no(0, 30*time.Minute, time.Hour)},
			{op: "reset"},
			{op: "peek", want: ok(2, 0)},
			{n: 2, want: ok(0, time.Hour)},
		},
	},
}

// rateLimiters returns the limiters under test, each made for a clock: the in-process one, and
// the Redis one when BILLING_TEST_REDIS is set.
func rateLimiters(t *testing.T) map[string]func(t *testing.T, now func() time.Time) billing.Limiter {
	ls := map[string]func(t *testing.T, now func() time.Time) billing.Limiter{
		"local": func(t *testing.T, now func() time.Time) billing.Limiter {
			return billing.NewLocalLimiter(billing.LocalLimiterConfig{Now: now})
		},
	}
	url := os.Getenv("BILLING_TEST_REDIS")
	if url == "" {
		t.Log("BILLING_TEST_REDIS is not set: the Redis limiter is not tested")
		return ls
	}
	opt, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatalf("BILLING_TEST_REDIS: %v", err)
	}
	opt.ContextTimeoutEnabled = true
	client := goredis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	ls["redis"] = func(t *testing.T, now func() time.Time) billing.Limiter {
		prefix := fmt.Sprintf("billing-test:%s:%d:", strings.ReplaceAll(t.Name(), " ", "_"), time.Now().UnixNano())
		l, err := redis.NewLimiter(client, redis.LimiterConfig{Prefix: prefix, Now: now, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			keys, _ := client.Keys(context.Background(), prefix+"*").Result()
			if len(keys) > 0 {
				client.Del(context.Background(), keys...)
			}
		})
		return l
	}
	return ls
}

func TestRateLimitTable(t *testing.T) {
	ctx := context.Background()
	for name, newLimiter := range rateLimiters(t) {
		t.Run(name, func(t *testing.T) {
			for _, c := range rateTable {
				t.Run(c.name, func(t *testing.T) {
					now := rateT0
					l := newLimiter(t, func() time.Time { return now })
					key := billing.RateKey{Tenant: "acme {eu}", Resource: c.policy.Resource}
					for i, s := range c.steps {
						now = rateT0.Add(s.at)
						var got billing.Decision
						var err error
						switch s.op {
						case "", "allow":
							got, err = l.Allow(ctx, key, c.policy, s.n)
						case "peek":
							got, err = l.Peek(ctx, key, c.policy)
						case "reset":
							if err := l.Reset(ctx, key); err != nil {
								t.Fatalf("step %d: reset: %v", i, err)
							}
							continue
						}
						if !errors.Is(err, s.err) || (err != nil) != (s.err != nil) {
							t.Fatalf("step %d (%s n=%d at +%v): err = %v, want %v", i, s.op, s.n, s.at, err, s.err)
						}
						want := s.want
						want.Limit, want.Policy = c.policy.Limit, c.policy
						if diff := cmp.Diff(want, got); diff != "" {
							t.Errorf("step %d (%s n=%d at +%v): decision (-want +got):\n%s", i, s.op, s.n, s.at, diff)
						}
					}
				})
			}
		})
	}
}

func TestRateLimiterBadInput(t *testing.T) {
	ctx := context.Background()
	good := billing.RatePolicy{Resource: "requests", Limit: 10, Window: time.Minute}
	key := billing.RateKey{Tenant: "acme", Resource: "requests"}
	cases := []struct {
		name  string
		key   billing.RateKey
		p     billing.RatePolicy
		n     int64
		kind  error
		field string
	}{
		{"empty tenant", billing.RateKey{Resource: "requests"}, good, 1, billing.ErrInvalidQuery, "tenant"},
		{"empty resource", billing.RateKey{Tenant: "acme"}, good, 1, billing.ErrInvalidQuery, "resource"},
		{"zero n", key, good, 0, billing.ErrInvalidQuery, "n"},
		{"negative n", key, good, -3, billing.ErrInvalidQuery, "n"},
		{"zero limit", key, billing.RatePolicy{Limit: 0, Window: time.Minute}, 1, billing.ErrInvalidConfig, "limit"},
		{"negative limit", key, billing.RatePolicy{Limit: -1, Window: time.Minute}, 1, billing.ErrInvalidConfig, "limit"},
		{"zero window", key, billing.RatePolicy{Limit: 10}, 1, billing.ErrInvalidConfig, "window"},
		{"negative window", key, billing.RatePolicy{Limit: 10, Window: -time.Second}, 1, billing.ErrInvalidConfig, "window"},
		{"negative burst", key, billing.RatePolicy{Limit: 10, Window: time.Minute, Burst: -1}, 1, billing.ErrInvalidConfig, "burst"},
		{"more than one per ns", key, billing.RatePolicy{Limit: 2e9, Window: time.Second}, 1, billing.ErrInvalidConfig, "limit"},
		{"burst too slow to refill", key, billing.RatePolicy{Limit: 1, Window: 24 * time.Hour, Burst: 1000}, 1, billing.ErrInvalidConfig, "burst"},
		{"burst overflows", key, billing.RatePolicy{Limit: 1, Window: time.Hour, Burst: 1 << 62}, 1, billing.ErrInvalidConfig, "burst"},
	}
	for name, newLimiter := range rateLimiters(t) {
		t.Run(name, func(t *testing.T) {
			l := newLimiter(t, nil)
			for _, c := range cases {
				_, err := l.Allow(ctx, c.key, c.p, c.n)
				var fe *billing.FieldError
				if !errors.As(err, &fe) || !errors.Is(err, c.kind) || fe.Field != c.field {
					t.Errorf("%s: Allow: err = %v, want a *FieldError for %q matching %v", c.name, err, c.field, c.kind)
				}
				if c.n > 0 {
					_, err = l.Peek(ctx, c.key, c.p)
					if !errors.As(err, &fe) || fe.Field != c.field {
						t.Errorf("%s: Peek: err = %v, want a *FieldError for %q", c.name, err, c.field)
					}
				}
			}
			for _, k := range []billing.RateKey{{Resource: "requests"}, {Tenant: "acme"}} {
				if err := l.Reset(ctx, k); !errors.Is(err, billing.ErrInvalidQuery) {
					t.Errorf("Reset(%+v) = %v, want ErrInvalidQuery", k, err)
				}
			}
		})
	}
}
