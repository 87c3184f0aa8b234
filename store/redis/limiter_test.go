package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// testClient connects to BILLING_TEST_REDIS (for example redis://127.0.0.1:6379/0), or skips the
// test when it is not set. tweak may change the options first.
func testClient(t testing.TB, tweak func(*goredis.Options)) *goredis.Client {
	t.Helper()
	url := os.Getenv("BILLING_TEST_REDIS")
	if url == "" {
		t.Skip("BILLING_TEST_REDIS is not set (for example redis://127.0.0.1:6379/0)")
	}
	opt, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatalf("BILLING_TEST_REDIS: %v", err)
	}
	if tweak != nil {
		tweak(opt)
	}
	c := goredis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("BILLING_TEST_REDIS=%s: %v", url, err)
	}
	return c
}

// testPrefix returns a key prefix no other test uses, and deletes its keys when the test ends.
func testPrefix(t testing.TB, c *goredis.Client) string {
	t.Helper()
	name := strings.NewReplacer(" ", "_", "/", ":").Replace(t.Name())
	prefix := fmt.Sprintf("billing-test:%s:%d:", name, time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return prefix
}

func newTestLimiter(t testing.TB, c goredis.UniversalClient, cfg LimiterConfig) *Limiter {
	t.Helper()
	l, err := NewLimiter(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// hashTag returns the part of key Redis Cluster hashes: the content of the first {...} when it
// is not empty, else the whole key.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return key
	}
	return key[i+1 : i+1+j]
}

func TestCounterKey(t *testing.T) {
	for _, c := range []struct {
		key       billing.RateKey
		want, tag string
	}{
		{billing.RateKey{Tenant: "acme", Resource: "requests"}, "p:{acme}:requests", "acme"},
		{billing.RateKey{Tenant: "a}b", Resource: "requests"}, "p:{a%7Db}:requests", "a%7Db"},
		{billing.RateKey{Tenant: "{x}", Resource: "tokens.input"}, "p:{%7Bx%7D}:tokens.input", "%7Bx%7D"},
		{billing.RateKey{Tenant: "}", Resource: "r"}, "p:{%7D}:r", "%7D"},
		{billing.RateKey{Tenant: "100%", Resource: "r"}, "p:{100%25}:r", "100%25"},
		{billing.RateKey{Tenant: "a%7Db", Resource: "requests"}, "p:{a%257Db}:requests", "a%257Db"},
		{billing.RateKey{Tenant: "acme", Resource: "odd}{name"}, "p:{acme}:odd%7D%7Bname", "acme"},
	} {
		got := counterKey("p:", c.key)
		if got != c.want || hashTag(got) != c.tag {
			t.Errorf("counterKey(%+v) = %q (tag %q), want %q (tag %q)", c.key, got, hashTag(got), c.want, c.tag)
		}
	}
	// Every counter of a tenant shares its hash tag, so one Lua call never spans two slots and a
	// tenant's counters live together.
	if hashTag(counterKey("p:", billing.RateKey{Tenant: "a{b", Resource: "x"})) !=
		hashTag(counterKey("p:", billing.RateKey{Tenant: "a{b", Resource: "y"})) {
		t.Error("two resources of one tenant have different hash tags")
	}
}

func TestNewLimiterBadConfig(t *testing.T) {
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, cfg := range []struct {
		cfg   LimiterConfig
		field string
	}{
		{LimiterConfig{Prefix: "rl:{x}:"}, "LimiterConfig.Prefix"},
		{LimiterConfig{Prefix: "rl}"}, "LimiterConfig.Prefix"},
		{LimiterConfig{Timeout: -time.Second}, "LimiterConfig.Timeout"},
	} {
		_, err := NewLimiter(c, cfg.cfg)
		var fe *billing.FieldError
		if !errors.As(err, &fe) || fe.Field != cfg.field || !errors.Is(err, billing.ErrInvalidConfig) {
			t.Errorf("NewLimiter(%+v) = %v, want a *FieldError for %s", cfg.cfg, err, cfg.field)
		}
	}
	if _, err := NewLimiter(nil, LimiterConfig{}); err == nil || !strings.Contains(err.Error(), "client is nil") {
		t.Errorf("NewLimiter(nil) = %v", err)
	}
	l, err := NewLimiter(c, LimiterConfig{})
	if err != nil || l.cfg.Prefix != DefaultPrefix || l.cfg.Timeout != DefaultTimeout || l.direct {
		t.Errorf("defaults: %+v, %v", l, err)
	}
}

// TestLimiterServerClock decides on the Redis server's clock, and checks that each counter
// expires when it is back to a full burst.
func TestLimiterServerClock(t *testing.T) {
	ctx := context.Background()
	c := testClient(t, func(o *goredis.Options) { o.ContextTimeoutEnabled = true })
	prefix := testPrefix(t, c)
	l := newTestLimiter(t, c, LimiterConfig{Prefix: prefix, Timeout: time.Second})
	p := billing.RatePolicy{Resource: "requests", Limit: 5, Window: time.Minute} // T = 12s
	key := billing.RateKey{Tenant: "acme", Resource: "requests"}
	for i := 0; i < 5; i++ {
		d, err := l.Allow(ctx, key, p, 1)
		if err != nil || !d.Allowed || d.Remaining != int64(4-i) {
			t.Fatalf("call %d: %+v, %v", i, d, err)
		}
	}
	start := time.Now()
	d, err := l.Allow(ctx, key, p, 1)
	if err != nil || d.Allowed || d.RetryAfter <= 11*time.Second || d.RetryAfter > 12*time.Second {
		t.Fatalf("sixth call: %+v, %v; want refused, retry after about 12s", d, err)
	}
	pttl, err := c.PTTL(ctx, counterKey(prefix, key)).Result()
	if err != nil || pttl <= 59*time.Second-time.Since(start) || pttl > time.Minute {
		t.Errorf("PTTL = %v, %v; want the reset time, about 1m", pttl, err)
	}

	// A counter that refills fast is gone from Redis soon after: idle tenants cost nothing.
	fast := billing.RatePolicy{Resource: "requests", Limit: 100, Window: time.Second} // full again after 10ms
	other := billing.RateKey{Tenant: "brief", Resource: "requests"}
	if d, err := l.Allow(ctx, other, fast, 1); err != nil || !d.Allowed {
		t.Fatalf("fast: %+v, %v", d, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for c.Exists(ctx, counterKey(prefix, other)).Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("an idle counter is still in Redis 2s after it was full again")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLimiterReloadsScript flushes Redis's script cache: the next call reloads the script.
func TestLimiterReloadsScript(t *testing.T) {
	ctx := context.Background()
	c := testClient(t, nil)
	l := newTestLimiter(t, c, LimiterConfig{Prefix: testPrefix(t, c), Timeout: time.Second})
	p := billing.RatePolicy{Resource: "requests", Limit: 10, Window: time.Second}
	key := billing.RateKey{Tenant: "acme", Resource: "requests"}
	if _, err := l.Allow(ctx, key, p, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.ScriptExists(ctx, gcraScript.Hash()).Result(); len(ok) != 1 || ok[0] {
		t.Fatalf("script still cached after SCRIPT FLUSH: %v", ok)
	}
	d, err := l.Allow(ctx, key, p, 1)
	if err != nil || !d.Allowed || d.Remaining != 8 {
		t.Fatalf("after SCRIPT FLUSH: %+v, %v; want allowed, 8 remaining", d, err)
	}
	if ok, _ := c.ScriptExists(ctx, gcraScript.Hash()).Result(); len(ok) != 1 || !ok[0] {
		t.Errorf("script not cached again after NOSCRIPT: %v", ok)
	}
}

// TestTwoMetersShareRedis runs two Meters (two replicas) on one Redis: 32 goroutines hammer one
// tenant for three windows, and together they are admitted what the policy permits once (GCRA:
// burst + elapsed/interval), not once per replica.
func TestTwoMetersShareRedis(t *testing.T) {
	ctx := context.Background()
	c := testClient(t, func(o *goredis.Options) { o.ContextTimeoutEnabled = true; o.PoolSize = 32 })
	prefix := testPrefix(t, c)
	policy := billing.RatePolicy{Resource: "requests", Limit: 100, Window: time.Second, Burst: 50}
	interval, tau := policy.Interval(), time.Duration(policy.Burst)*policy.Interval() // 10ms, 500ms
	meters := make([]*billing.Meter, 2)
	for i := range meters {
		st, err := sqlite.Open(":memory:")
		if err != nil {
			t.Fatal(err)
		}
		m, err := billing.New(billing.Config{Store: st, RatePolicies: []billing.RatePolicy{policy},
			Limiter: newTestLimiter(t, c, LimiterConfig{Prefix: prefix, Timeout: time.Second})})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(); st.Close() })
		meters[i] = m
		// Warm up (policy cache, connections, script) on another tenant, so the first decisions
		// for acme come as fast as the later ones: a counter left full while its callers are
		// slow to start forfeits the time.
		for j := 0; j < 16; j++ {
			if _, err := m.Allow(ctx, "warm-up", "requests", 1); err != nil {
				t.Fatal(err)
			}
		}
	}

	const goroutines = 32
	var mu sync.Mutex
	var starts, ends []time.Time // of every call
	var allowed int64
	var failed error
	var wg sync.WaitGroup
	t0 := time.Now()
	stop := t0.Add(3 * policy.Window)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(m *billing.Meter) {
			defer wg.Done()
			for {
				start := time.Now()
				if !start.Before(stop) {
					return
				}
				d, err := m.Allow(ctx, "acme", "requests", 1)
				end := time.Now()
				mu.Lock()
				starts, ends = append(starts, start), append(ends, end)
				if d.Allowed {
					allowed++
				}
				if err != nil {
					failed = err
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}(meters[g%2])
	}
	wg.Wait()
	t1 := time.Now()
	if failed != nil {
		t.Fatal(failed)
	}
	lo, hi, lost := gcraBounds(policy.Burst, interval, tau, t0, t1, starts, ends)
	t.Logf("%d goroutines on 2 meters, %d calls in %v: %d allowed, want [%d, %d] (%d units lost to stalls "+
		"longer than the %v burst); a limiter per replica would admit about %d", goroutines, len(starts),
		t1.Sub(t0).Round(time.Millisecond), allowed, lo, hi, lost, tau, 2*hi)
	if allowed < lo || allowed > hi {
		t.Errorf("%d allowed across two replicas, want burst + elapsed/interval in [%d, %d]", allowed, lo, hi)
	}
	if int64(len(starts)) < 4*hi {
		t.Errorf("only %d calls: the goroutines did not hammer enough to test the limit", len(starts))
	}
}

// gcraBounds returns the range of units GCRA admits to callers that ask without pause between t0
// and t1, one unit per call, from a fresh counter: burst + elapsed/interval, where elapsed runs from
// the first decision (made before the first call ended) to the last (made after the last call
// started), give or take the unit in progress at either end. A stretch in which no call completed
// for longer than tau (a stalled machine) banks at most a burst, so the lower bound drops by the
// units such stalls forfeit; lost reports them.
func gcraBounds(burst int64, interval, tau time.Duration, t0, t1 time.Time, starts, ends []time.Time) (lo, hi, lost int64) {
	firstEnd, lastStart := t1, t0
	for i := range starts {
		if ends[i].Before(firstEnd) {
			firstEnd = ends[i]
		}
		if starts[i].After(lastStart) {
			lastStart = starts[i]
		}
	}
	sorted := append([]time.Time(nil), ends...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Before(sorted[j]) })
	for i := 1; i < len(sorted); i++ {
		if gap := sorted[i].Sub(sorted[i-1]); gap > tau {
			lost += int64((gap-tau)/interval) + 1
		}
	}
	lo = burst + int64(lastStart.Sub(firstEnd)/interval) - 1 - lost
	hi = burst + int64(t1.Sub(t0)/interval) + 1
	return lo, hi, lost
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentServer accepts connections and never answers: a Redis that hangs.
func silentServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// TestLimiterUnavailable points limiters at a closed port and at a server that never answers,
// with both kinds of go-redis client: calls end within the timeout, fail closed with an error that
// says so, or fail open and report.
func TestLimiterUnavailable(t *testing.T) {
	ctx := context.Background()
	p := billing.RatePolicy{Resource: "requests", Limit: 10, Window: time.Second}
	key := billing.RateKey{Tenant: "acme", Resource: "requests"}
	const timeout = 50 * time.Millisecond
	for _, server := range []struct {
		name, addr, says string
	}{
		{"down", closedPort(t), "Redis is unreachable"},
		{"slow", silentServer(t), "Redis is unreachable or too slow: no answer within 50ms (LimiterConfig.Timeout)"},
	} {
		for _, ctxTimeouts := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/ContextTimeoutEnabled=%v", server.name, ctxTimeouts), func(t *testing.T) {
				c := goredis.NewClient(&goredis.Options{Addr: server.addr, ContextTimeoutEnabled: ctxTimeouts,
					ReadTimeout: 2 * time.Second, DialTimeout: 2 * time.Second})
				defer c.Close()

				closed := newTestLimiter(t, c, LimiterConfig{Timeout: timeout})
				for i := 0; i < 3; i++ {
					start := time.Now()
					d, err := closed.Allow(ctx, key, p, 1)
					took := time.Since(start)
					if took > timeout+150*time.Millisecond {
						t.Errorf("call %d took %v, want about the %v timeout", i, took, timeout)
					}
					if !errors.Is(err, ErrUnavailable) || d.Allowed {
						t.Fatalf("fail closed: %+v, %v; want an error matching ErrUnavailable", d, err)
					}
					if msg := err.Error(); !strings.Contains(msg, server.says) || !strings.Contains(msg, "failing closed: nothing admitted") {
						t.Errorf("fail closed message %q does not say %q and that it failed closed", msg, server.says)
					}
				}

				var reported atomic.Value
				open := newTestLimiter(t, c, LimiterConfig{Timeout: timeout, FailOpen: true,
					OnError: func(err error) { reported.Store(err) }})
				start := time.Now()
				d, err := open.Allow(ctx, key, p, 3)
				if took := time.Since(start); took > timeout+150*time.Millisecond {
					t.Errorf("fail open took %v", took)
				}
				want := billing.Decision{Allowed: true, Limit: 10, Remaining: 7, ResetAfter: 300 * time.Millisecond, Policy: p}
				if err != nil || d != want {
					t.Errorf("fail open: %+v, %v; want %+v", d, err, want)
				}
				rep, _ := reported.Load().(error)
				if !errors.Is(rep, ErrUnavailable) || !strings.Contains(rep.Error(), "failing open") ||
					!strings.Contains(rep.Error(), `admitted 3 units of "requests" for tenant "acme"`) {
					t.Errorf("fail open reported %v", rep)
				}
				// Only Allow fails open; n above the burst is refused all the same.
				if _, err := open.Peek(ctx, key, p); !errors.Is(err, ErrUnavailable) {
					t.Errorf("Peek: %v, want ErrUnavailable", err)
				}
				if err := open.Reset(ctx, key); !errors.Is(err, ErrUnavailable) {
					t.Errorf("Reset: %v, want ErrUnavailable", err)
				}
				if _, err := open.Allow(ctx, key, p, 11); !errors.Is(err, billing.ErrExceedsBurst) {
					t.Errorf("n > burst: %v, want ErrExceedsBurst", err)
				}
				// The caller's own context ending is the caller's, not Redis's.
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				if _, err := open.Allow(cctx, key, p, 1); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
					t.Errorf("canceled context: %v, want context.Canceled", err)
				}
			})
		}
	}
}
