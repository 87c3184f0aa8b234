package billing

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *fakeClock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }

var localT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// heapAlloc returns the live heap after a full collection.
func heapAlloc() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestLocalLimiterMemory touches a million distinct tenants once, lets them go idle, and checks
// that the limiter gives its memory back: idle keys are dropped and the shards' maps rebuilt.
func TestLocalLimiterMemory(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	ctx := context.Background()
	clock := newFakeClock(localT0)
	l := NewLocalLimiter(LocalLimiterConfig{Now: clock.Now})
	p := RatePolicy{Resource: "requests", Limit: 10, Window: time.Second}

	base := heapAlloc()
	start := time.Now()
	buf := make([]byte, 0, 32)
	for i := 0; i < n; i++ {
		buf = strconv.AppendInt(append(buf[:0], "tenant-"...), int64(i), 10)
		if _, err := l.Allow(ctx, RateKey{Tenant: string(buf), Resource: "requests"}, p, 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.Len(); got != n {
		t.Fatalf("Len() = %d after touching %d tenants", got, n)
	}
	peak := heapAlloc()
	t.Logf("%d tenants touched in %v: heap %d -> %d bytes (%.0f bytes per key)", n, time.Since(start).Round(time.Millisecond),
		base, peak, float64(peak-base)/float64(n))

	clock.Add(time.Second) // every key's TAT (t0 + 100ms) has passed: all idle
	l.Sweep()
	if got := l.Len(); got != 0 {
		t.Fatalf("Len() = %d after every key went idle and a sweep", got)
	}
	after := heapAlloc()
	runtime.KeepAlive(l)
	t.Logf("after idling and a sweep: heap %d bytes (baseline %d, %+d)", after, base, int64(after)-int64(base))
	// Near the baseline: within 1 MiB, against the ~100 MB a million keys take.
	if after > base+1<<20 {
		t.Errorf("heap after eviction %d bytes, baseline %d: the limiter kept %d bytes", after, base, after-base)
	}
	if peak-base < uint64(n)*40 {
		t.Errorf("heap grew only %d bytes for %d keys: the test measures nothing", peak-base, n)
	}
}

// TestLocalLimiterLazySweep checks that shards drop idle keys by themselves, on the first call
// that reaches them after SweepInterval, and that a key still charged survives.
func TestLocalLimiterLazySweep(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(localT0)
	l := NewLocalLimiter(LocalLimiterConfig{Now: clock.Now, Shards: 4, SweepInterval: time.Minute})
	short := RatePolicy{Limit: 10, Window: time.Second}    // TAT t0+100ms
	long := RatePolicy{Limit: 1, Window: 10 * time.Minute} // TAT t0+10m
	for i := 0; i < 1000; i++ {
		if _, err := l.Allow(ctx, RateKey{Tenant: "t" + strconv.Itoa(i), Resource: "requests"}, short, 1); err != nil {
			t.Fatal(err)
		}
	}
	busy := RateKey{Tenant: "busy", Resource: "requests"}
	if d, _ := l.Allow(ctx, busy, long, 1); !d.Allowed {
		t.Fatal("busy key refused")
	}
	clock.Add(30 * time.Second) // idle, but no shard is due to sweep yet
	l.Allow(ctx, RateKey{Tenant: "t0", Resource: "requests"}, short, 1)
	if got := l.Len(); got != 1001 {
		t.Fatalf("Len() = %d before SweepInterval, want 1001", got)
	}
	clock.Add(time.Minute)
	// One call per shard: find a key for each.
	seen := map[*localShard]bool{}
	for i := 0; len(seen) < len(l.shards); i++ {
		k := RateKey{Tenant: "probe" + strconv.Itoa(i), Resource: "requests"}
		if sh, _ := l.shard(k); !seen[sh] {
			seen[sh] = true
			if _, err := l.Allow(ctx, k, short, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got, want := l.Len(), len(l.shards)+1; got != want {
		t.Errorf("Len() = %d after every shard swept, want %d (the probes and the busy key)", got, want)
	}
	if d, _ := l.Peek(ctx, busy, long); d.Allowed || d.ResetAfter != 10*time.Minute-90*time.Second {
		t.Errorf("busy key after sweeps: %+v, want still charged", d)
	}
	for i := range l.shards {
		if sh := &l.shards[i]; len(sh.slots) > minSlots && sh.live*8 < len(sh.slots) {
			t.Errorf("shard %d: %d slots for %d keys: its table was not shrunk", i, len(sh.slots), sh.live)
		}
	}
}

// TestLocalLimiterBackwardsAfterEviction checks that a key dropped by a sweep does not come back
// fresh when the clock then goes backwards: it is treated as charged up to its old TAT.
func TestLocalLimiterBackwardsAfterEviction(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(localT0)
	l := NewLocalLimiter(LocalLimiterConfig{Now: clock.Now, Shards: 1})
	p := RatePolicy{Limit: 1, Window: time.Second, Burst: 2}
	k := RateKey{Tenant: "acme", Resource: "requests"}
	if d, _ := l.Allow(ctx, k, p, 2); !d.Allowed { // TAT t0+2s
		t.Fatal("burst refused")
	}
	clock.Add(3 * time.Second)
	l.Sweep()
	if l.Len() != 0 {
		t.Fatal("idle key not dropped")
	}
	clock.Set(localT0.Add(time.Second)) // back before the dropped TAT
	d, _ := l.Allow(ctx, k, p, 2)
	if d.Allowed || d.RetryAfter != time.Second {
		t.Errorf("after eviction and a backwards clock: %+v, want refused for 1s as if never dropped", d)
	}
	if d, _ := l.Allow(ctx, k, p, 1); !d.Allowed {
		t.Errorf("one unit (as the kept counter would allow): %+v", d)
	}
}

// TestLocalLimiterConcurrentExact hammers one key from 32 goroutines at one instant: exactly the
// burst passes. Then, on the real clock, the count follows burst + elapsed/interval.
func TestLocalLimiterConcurrentExact(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock(localT0)
	l := NewLocalLimiter(LocalLimiterConfig{Now: clock.Now})
	p := RatePolicy{Limit: 1000, Window: time.Hour, Burst: 500}
	k := RateKey{Tenant: "acme", Resource: "requests"}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if d, _ := l.Allow(ctx, k, p, 1); d.Allowed {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := allowed.Load(); got != 500 {
		t.Errorf("fixed instant: %d allowed, want the burst 500", got)
	}

	// Real clock: burst + elapsed/interval, give or take the unit in progress at either end, less
	// what stalls of the machine longer than the burst forfeit (GCRA banks at most a burst).
	l = NewLocalLimiter(LocalLimiterConfig{})
	p = RatePolicy{Limit: 100, Window: time.Second, Burst: 50} // T = 10ms, a burst refills in 500ms
	interval, tau := p.Interval(), 500*time.Millisecond
	var mu sync.Mutex
	var ends []time.Time
	var lastStart time.Time
	allowed.Store(0)
	t0 := time.Now()
	stop := t0.Add(600 * time.Millisecond)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				start := time.Now()
				if !start.Before(stop) {
					return
				}
				if d, _ := l.Allow(ctx, k, p, 1); d.Allowed {
					allowed.Add(1)
				}
				mu.Lock()
				ends = append(ends, time.Now())
				if start.After(lastStart) {
					lastStart = start
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t1 := time.Now()
	sort.Slice(ends, func(i, j int) bool { return ends[i].Before(ends[j]) })
	var lost int64
	for i := 1; i < len(ends); i++ {
		if gap := ends[i].Sub(ends[i-1]); gap > tau {
			lost += int64((gap-tau)/interval) + 1
		}
	}
	got := allowed.Load()
	lo := p.Burst + int64(lastStart.Sub(ends[0])/interval) - 1 - lost
	hi := p.Burst + int64(t1.Sub(t0)/interval) + 1
	t.Logf("real clock: %d allowed in %v (bounds [%d, %d], %d lost to stalls)", got, t1.Sub(t0), lo, hi, lost)
	if got < lo || got > hi {
		t.Errorf("real clock: %d allowed, want burst + elapsed/interval in [%d, %d]", got, lo, hi)
	}
}

// TestLocalLimiterMonotonic checks that the default clock reads the monotonic clock.
func TestLocalLimiterMonotonic(t *testing.T) {
	l := NewLocalLimiter(LocalLimiterConfig{})
	a := l.nanotime()
	time.Sleep(time.Millisecond)
	b := l.nanotime()
	if b-a < int64(time.Millisecond) {
		t.Errorf("nanotime advanced %dns over a 1ms sleep", b-a)
	}
	if d := a - time.Now().UnixNano(); d > int64(time.Second) || d < -int64(time.Second) {
		t.Errorf("nanotime %d is %dns away from the wall clock", a, d)
	}
	if NewLocalLimiter(LocalLimiterConfig{Now: time.Now}).now != nil {
		t.Error("Now: time.Now is not read through the monotonic clock alone")
	}
	if got := NewLocalLimiter(LocalLimiterConfig{Shards: 100}).mask; got != 127 {
		t.Errorf("100 shards: mask %d, want 127", got)
	}
}

// TestLocalShardTable drives a shard's hash table with random inserts, updates, removals and
// sweeps over few distinct hashes (so probe runs are long, wrap around the table and collide),
// checking it against a plain map after every step.
func TestLocalShardTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var sh localShard
	ref := map[RateKey]localEntry{}
	hashOf := func(k RateKey) uint64 {
		n, _ := strconv.Atoi(k.Tenant[1:])
		return uint64(n%7) * 0x1234567 // 7 distinct hashes for 300 keys
	}
	check := func(step int) {
		t.Helper()
		if sh.live != len(ref) {
			t.Fatalf("step %d: live %d, want %d", step, sh.live, len(ref))
		}
		for k, e := range ref {
			i := sh.find(e.hash, k)
			if i < 0 || sh.slots[i].tat != e.tat {
				t.Fatalf("step %d: find(%v) = %d, want its entry (tat %d)", step, k, i, e.tat)
			}
		}
		n := 0
		for _, e := range sh.slots {
			if e.key.Tenant != "" {
				n++
			}
		}
		if n != len(ref) {
			t.Fatalf("step %d: %d full slots, want %d", step, n, len(ref))
		}
	}
	for step := 0; step < 20000; step++ {
		k := RateKey{Tenant: "t" + strconv.Itoa(rng.IntN(300)), Resource: "requests"}
		h := hashOf(k)
		switch op := rng.IntN(10); {
		case op < 6: // allow: insert or update
			tat := int64(rng.IntN(1000))
			if i := sh.find(h, k); i >= 0 {
				sh.slots[i].tat = tat
			} else {
				sh.insert(h, k, tat)
			}
			ref[k] = localEntry{key: k, hash: h, tat: tat}
		case op < 9: // reset
			if i := sh.find(h, k); i >= 0 {
				sh.remove(i)
			}
			delete(ref, k)
		default: // sweep
			now := int64(rng.IntN(1000))
			sh.sweep(now, 1)
			for k, e := range ref {
				if e.tat <= now {
					delete(ref, k)
				}
			}
		}
		check(step)
	}
	sh.sweep(1<<62, 1)
	if sh.live != 0 || sh.slots != nil {
		t.Errorf("after sweeping everything: live %d, %d slots", sh.live, len(sh.slots))
	}
}
