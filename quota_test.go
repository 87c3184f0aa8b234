package billing_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// Helpers shared by the quota, reservation, plan, anchor and alert tests. They carry a q prefix
// so that they never clash with the helpers of other test files of the package.

// qClock is a settable clock for Config.Now; safe for concurrent use.
type qClock struct {
	mu sync.Mutex
	t  time.Time
}

func qNewClock(t time.Time) *qClock { return &qClock{t: t} }

func (c *qClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *qClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *qClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// qT0 is the fixed instant most tests run at: mid-month, mid-day, far from any boundary.
var qT0 = time.Date(2026, 3, 11, 12, 0, 0, 0, time.UTC)

// qQuiet discards the Meter's operational log (the default notifier logs every alert).
var qQuiet = slog.New(slog.DiscardHandler)

// qOpenStore opens a SQLite store at path (":memory:" or a file) and closes it after the test.
func qOpenStore(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("sqlite.Open(%q): %v", path, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// qNewMeter creates a Meter on cfg (an in-memory store when cfg.Store is nil) and closes it after
// the test, before the store.
func qNewMeter(t testing.TB, cfg billing.Config) *billing.Meter {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = qOpenStore(t, ":memory:")
	}
	if cfg.Logger == nil {
		cfg.Logger = qQuiet
	}
	m, err := billing.New(cfg)
	if err != nil {
		t.Fatalf("billing.New: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func qSetQuota(t testing.TB, m *billing.Meter, r billing.QuotaRule) {
	t.Helper()
	if err := m.SetQuota(context.Background(), r); err != nil {
		t.Fatalf("SetQuota(%+v): %v", r, err)
	}
}

// qState returns the QuotaStatus entry of tenant for resource and period.
func qState(t testing.TB, m *billing.Meter, tenant, resource string, p billing.Period) billing.QuotaState {
	t.Helper()
	states, err := m.QuotaStatus(context.Background(), tenant)
	if err != nil {
		t.Fatalf("QuotaStatus(%q): %v", tenant, err)
	}
	for _, s := range states {
		if s.Rule.Resource == resource && s.Rule.Period == p {
			return s
		}
	}
	t.Fatalf("QuotaStatus(%q) has no rule for %s per %s: %+v", tenant, resource, p, states)
	return billing.QuotaState{}
}

// qUsage returns the all-time sum and count of tenant's resource from Meter.Usage.
func qUsage(t testing.TB, m *billing.Meter, tenant, resource string) (sum, count int64) {
	t.Helper()
	rows, err := m.Usage(context.Background(), billing.UsageQuery{Tenant: tenant, Resource: resource, Window: billing.PeriodTotal})
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	for _, r := range rows {
		sum += r.Sum
		count += r.Count
	}
	return sum, count
}

// qWantFieldError checks that err is a *billing.FieldError for field matching kind.
func qWantFieldError(t testing.TB, err error, kind error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want a *FieldError for %q", field)
	}
	var fe *billing.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *billing.FieldError (want field %q)", err, err, field)
	}
	if fe.Field != field {
		t.Errorf("FieldError.Field = %q, want %q (error: %v)", fe.Field, field, err)
	}
	if !errors.Is(err, kind) {
		t.Errorf("error %v does not match %v", err, kind)
	}
	if !strings.Contains(err.Error(), field) {
		t.Errorf("message %q does not name the field %q", err.Error(), field)
	}
}

// qChecker polls QuotaStatus until stopped and records any moment when used plus reserved is
// above the limit of a hard rule.
type qChecker struct {
	stop      chan struct{}
	done      chan struct{}
	polls     atomic.Int64
	violation atomic.Pointer[string]
}

func qStartChecker(t *testing.T, m *billing.Meter, tenant string) *qChecker {
	c := &qChecker{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			states, err := m.QuotaStatus(context.Background(), tenant)
			if err != nil {
				msg := "QuotaStatus: " + err.Error()
				c.violation.CompareAndSwap(nil, &msg)
				return
			}
			for _, s := range states {
				if s.Rule.Hard && s.Used+s.Reserved > s.Rule.Limit {
					msg := fmt.Sprintf("observed used %d + reserved %d > limit %d", s.Used, s.Reserved, s.Rule.Limit)
					c.violation.CompareAndSwap(nil, &msg)
				}
			}
			c.polls.Add(1)
		}
	}()
	return c
}

func (c *qChecker) finish(t *testing.T) {
	t.Helper()
	close(c.stop)
	<-c.done
	if v := c.violation.Load(); v != nil {
		t.Errorf("checker: %s", *v)
	}
	if c.polls.Load() == 0 {
		t.Errorf("checker never completed a QuotaStatus poll")
	}
	t.Logf("checker polled QuotaStatus %d times", c.polls.Load())
}

// qCheckRefusal checks that err is a proper refusal by the hard rule want, at qT0's day.
func qCheckRefusal(err error, want billing.QuotaRule, n int64, resetAt time.Time) string {
	if !errors.Is(err, billing.ErrQuotaExceeded) {
		return fmt.Sprintf("Reserve error %v does not match ErrQuotaExceeded", err)
	}
	var qe *billing.QuotaExceededError
	if !errors.As(err, &qe) {
		return fmt.Sprintf("Reserve error %v (%T) is not a *QuotaExceededError", err, err)
	}
	switch {
	case qe.Rule.Tenant != want.Tenant || qe.Rule.Resource != want.Resource || qe.Rule.Period != want.Period || !qe.Rule.Hard:
		return fmt.Sprintf("refusal names rule %+v, want %+v", qe.Rule, want)
	case qe.Limit != want.Limit:
		return fmt.Sprintf("refusal Limit = %d, want %d", qe.Limit, want.Limit)
	case qe.Requested != n:
		return fmt.Sprintf("refusal Requested = %d, want %d", qe.Requested, n)
	case qe.Used+qe.Reserved+qe.Requested <= qe.Limit:
		return fmt.Sprintf("refusal of an admissible request: used %d + reserved %d + requested %d <= limit %d",
			qe.Used, qe.Reserved, qe.Requested, qe.Limit)
	case qe.Used < 0 || qe.Reserved < 0:
		return fmt.Sprintf("refusal with negative counts: used %d, reserved %d", qe.Used, qe.Reserved)
	case !qe.ResetAt.Equal(resetAt):
		return fmt.Sprintf("refusal ResetAt = %v, want %v", qe.ResetAt, resetAt)
	}
	return ""
}

const (
	qWorkers   = 64
	qPerWorker = 2000
	qLimit     = 10000
)

// qExactness runs qWorkers goroutines of qPerWorker reservations each against a hard daily limit of
// qLimit, with a checker polling QuotaStatus all along. step performs one request given the
// worker's random source; it returns the units committed (0 for a refusal or a cancel), whether
// it was admitted, and an error description. It returns the total committed and admitted.
func qExactness(t *testing.T, step func(m *billing.Meter, rule billing.QuotaRule, rnd *rand.Rand) (committed int64, admitted bool, problem string)) (*billing.Meter, billing.QuotaRule, int64, int64) {
	t.Helper()
	ctx := context.Background()
	m := qNewMeter(t, billing.Config{Now: qNewClock(qT0).Now}) // durable: Commit returns once recorded
	rule := billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: qLimit, Hard: true}
	qSetQuota(t, m, rule)
	if _, err := m.QuotaStatus(ctx, "acme"); err != nil { // load before the race starts
		t.Fatal(err)
	}
	checker := qStartChecker(t, m, "acme")
	var committed, admitted atomic.Int64
	var problem atomic.Pointer[string]
	var wg sync.WaitGroup
	for w := range qWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 42))
			for range qPerWorker {
				c, ok, p := step(m, rule, rnd)
				if p != "" {
					problem.CompareAndSwap(nil, &p)
					return
				}
				committed.Add(c)
				if ok {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	checker.finish(t)
	if p := problem.Load(); p != nil {
		t.Fatal(*p)
	}
	// Every reservation was committed or cancelled: nothing stays held, and usage is exact.
	s := qState(t, m, "acme", "requests", billing.PeriodDay)
	if s.Reserved != 0 {
		t.Errorf("after the run Reserved = %d, want 0 (leaked holds)", s.Reserved)
	}
	if s.Used != committed.Load() {
		t.Errorf("QuotaStatus Used = %d, want the %d units committed", s.Used, committed.Load())
	}
	if s.Used > qLimit {
		t.Errorf("Used = %d is above the hard limit %d", s.Used, qLimit)
	}
	if sum, _ := qUsage(t, m, "acme", "requests"); sum != committed.Load() {
		t.Errorf("Usage total = %d, want the %d units committed", sum, committed.Load())
	}
	if s.Remaining != qLimit-s.Used {
		t.Errorf("Remaining = %d, want %d", s.Remaining, qLimit-s.Used)
	}
	return m, rule, committed.Load(), admitted.Load()
}

var qDayEnd = time.Date(2026, 3, 12, 0, 0, 0, 0, time.UTC) // when qT0's day resets

func TestQuotaExactnessReserveCommit(t *testing.T) {
	_, _, committed, admitted := qExactness(t, func(m *billing.Meter, rule billing.QuotaRule, _ *rand.Rand) (int64, bool, string) {
		ctx := context.Background()
		r, err := m.Reserve(ctx, "acme", "requests", 1)
		if err != nil {
			return 0, false, qCheckRefusal(err, rule, 1, qDayEnd)
		}
		if err := r.Commit(ctx, 1); err != nil {
			return 0, true, "Commit: " + err.Error()
		}
		return 1, true, ""
	})
	if admitted != qLimit || committed != qLimit {
		t.Errorf("%d reservations admitted, %d units committed; want exactly %d of %d attempts",
			admitted, committed, qLimit, qWorkers*qPerWorker)
	}
}

func TestQuotaExactnessRandomCommit(t *testing.T) {
	m, rule, committed, _ := qExactness(t, func(m *billing.Meter, rule billing.QuotaRule, rnd *rand.Rand) (int64, bool, string) {
		ctx := context.Background()
		k := 1 + rnd.Int64N(8)
		r, err := m.Reserve(ctx, "acme", "requests", k)
		if err != nil {
			return 0, false, qCheckRefusal(err, rule, k, qDayEnd)
		}
		j := rnd.Int64N(k + 1) // 0..k: at most what was reserved
		if err := r.Commit(ctx, j); err != nil {
			return 0, true, "Commit: " + err.Error()
		}
		return j, true, ""
	})
	if committed == 0 {
		t.Fatal("nothing was committed")
	}
	// No hold leaked: what is left can still be reserved, and not one unit more.
	qReserveRest(t, m, rule, committed)
}

func TestQuotaExactnessWithCancels(t *testing.T) {
	m, rule, committed, _ := qExactness(t, func(m *billing.Meter, rule billing.QuotaRule, rnd *rand.Rand) (int64, bool, string) {
		ctx := context.Background()
		k := 1 + rnd.Int64N(4)
		r, err := m.Reserve(ctx, "acme", "requests", k)
		if err != nil {
			return 0, false, qCheckRefusal(err, rule, k, qDayEnd)
		}
		if rnd.IntN(3) == 0 {
			if err := r.Cancel(ctx); err != nil {
				return 0, true, "Cancel: " + err.Error()
			}
			return 0, true, ""
		}
		j := rnd.Int64N(k + 1)
		if err := r.Commit(ctx, j); err != nil {
			return 0, true, "Commit: " + err.Error()
		}
		return j, true, ""
	})
	qReserveRest(t, m, rule, committed)
}

// qReserveRest checks that exactly limit-used units can still be reserved.
func qReserveRest(t *testing.T, m *billing.Meter, rule billing.QuotaRule, used int64) {
	t.Helper()
	ctx := context.Background()
	rest := rule.Limit - used
	if rest > 0 {
		r, err := m.Reserve(ctx, rule.Tenant, rule.Resource, rest)
		if err != nil {
			t.Fatalf("Reserve of the %d units left: %v", rest, err)
		}
		defer r.Cancel(ctx)
	}
	if _, err := m.Reserve(ctx, rule.Tenant, rule.Resource, 1); !errors.Is(err, billing.ErrQuotaExceeded) {
		t.Errorf("Reserve of one unit beyond the limit: err = %v, want ErrQuotaExceeded", err)
	}
}

// TestQuotaExactnessAsync runs the plain exactness scenario with Config.Async: Commit returns
// once queued, and the hold is released only when the writer has counted the event.
func TestQuotaExactnessAsync(t *testing.T) {
	ctx := context.Background()
	st := qOpenStore(t, ":memory:")
	m := qNewMeter(t, billing.Config{Store: st, Now: qNewClock(qT0).Now, Async: true})
	rule := billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: qLimit, Hard: true}
	qSetQuota(t, m, rule)
	checker := qStartChecker(t, m, "acme")
	var ok atomic.Int64
	var problem atomic.Pointer[string]
	var wg sync.WaitGroup
	for range qWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range qPerWorker {
				r, err := m.Reserve(ctx, "acme", "requests", 1)
				if err != nil {
					if p := qCheckRefusal(err, rule, 1, qDayEnd); p != "" {
						problem.CompareAndSwap(nil, &p)
						return
					}
					continue
				}
				if err := r.Commit(ctx, 1); err != nil {
					p := "Commit: " + err.Error()
					problem.CompareAndSwap(nil, &p)
					return
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	checker.finish(t)
	if p := problem.Load(); p != nil {
		t.Fatal(*p)
	}
	if err := m.Close(); err != nil { // drains the queue
		t.Fatal(err)
	}
	if ok.Load() != qLimit {
		t.Errorf("%d reservations committed, want exactly %d", ok.Load(), qLimit)
	}
	m2 := qNewMeter(t, billing.Config{Store: st, Now: qNewClock(qT0).Now})
	if sum, n := qUsage(t, m2, "acme", "requests"); sum != qLimit || n != qLimit {
		t.Errorf("Usage after drain: sum %d over %d events, want %d over %d", sum, n, qLimit, qLimit)
	}
	if s := qState(t, m2, "acme", "requests", billing.PeriodDay); s.Used != qLimit || s.Reserved != 0 {
		t.Errorf("QuotaStatus after drain: used %d reserved %d, want %d and 0", s.Used, s.Reserved, qLimit)
	}
}

// TestQuotaTrackCountsAgainstHardLimit: plain Track is never refused, but usage it records past
// a hard limit makes the next Reserve fail.
func TestQuotaTrackCountsAgainstHardLimit(t *testing.T) {
	ctx := context.Background()
	m := qNewMeter(t, billing.Config{Now: qNewClock(qT0).Now})
	rule := billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: 100, Hard: true}
	qSetQuota(t, m, rule)

	// Before the counter is loaded: the Reserve reads the tracked usage from the rollups.
	if err := m.Track(ctx, billing.Event{Tenant: "acme", Resource: "requests", Quantity: 90}); err != nil {
		t.Fatal(err)
	}
	r, err := m.Reserve(ctx, "acme", "requests", 10)
	if err != nil {
		t.Fatalf("Reserve of the last 10 units: %v", err)
	}
	if err := r.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	// With the counter loaded: the writer counts the Track that crosses the limit.
	if err := m.Track(ctx, billing.Event{Tenant: "acme", Resource: "requests", Quantity: 25}); err != nil {
		t.Fatalf("Track crossing the hard limit must be recorded: %v", err)
	}
	_, err = m.Reserve(ctx, "acme", "requests", 1)
	if p := qCheckRefusal(err, rule, 1, qDayEnd); p != "" {
		t.Fatal(p)
	}
	var qe *billing.QuotaExceededError
	errors.As(err, &qe)
	if qe.Used != 115 || qe.Reserved != 0 {
		t.Errorf("refusal: used %d reserved %d, want 115 and 0", qe.Used, qe.Reserved)
	}
	s := qState(t, m, "acme", "requests", billing.PeriodDay)
	want := billing.QuotaState{Used: 115, Remaining: 0, Percent: 115, Exceeded: true, HardExceeded: true}
	if s.Used != want.Used || s.Remaining != 0 || s.Percent != want.Percent || !s.Exceeded || !s.HardExceeded || s.SoftExceeded {
		t.Errorf("QuotaStatus = %+v, want used 115, remaining 0, 115%%, exceeded, hard exceeded", s)
	}
	if sum, _ := qUsage(t, m, "acme", "requests"); sum != 115 {
		t.Errorf("Usage = %d, want 115", sum)
	}
}

// TestQuotaSoftRuleNeverRefuses: a soft rule admits beyond its limit and shows SoftExceeded.
func TestQuotaSoftRuleNeverRefuses(t *testing.T) {
	ctx := context.Background()
	m := qNewMeter(t, billing.Config{Now: qNewClock(qT0).Now})
	qSetQuota(t, m, billing.QuotaRule{Tenant: "acme", Resource: "tokens", Period: billing.PeriodDay, Limit: 10})
	r, err := m.Reserve(ctx, "acme", "tokens", 50)
	if err != nil {
		t.Fatalf("Reserve under a soft rule: %v", err)
	}
	if err := r.Commit(ctx, 50); err != nil {
		t.Fatal(err)
	}
	s := qState(t, m, "acme", "tokens", billing.PeriodDay)
	if s.Used != 50 || !s.SoftExceeded || s.HardExceeded || !s.Exceeded || s.Percent != 500 {
		t.Errorf("QuotaStatus = %+v, want used 50, 500%%, soft exceeded", s)
	}
}

// TestQuotaEveryRuleApplies: a reservation must fit every hard rule of the resource; the refusal
// names the rule that is crossed.
func TestQuotaEveryRuleApplies(t *testing.T) {
	ctx := context.Background()
	m := qNewMeter(t, billing.Config{Now: qNewClock(qT0).Now})
	hour := billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodHour, Limit: 10, Hard: true}
	month := billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodMonth, Limit: 1000, Hard: true}
	qSetQuota(t, m, hour)
	qSetQuota(t, m, month)
	r, err := m.Reserve(ctx, "acme", "requests", 10)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Reserve(ctx, "acme", "requests", 1)
	if p := qCheckRefusal(err, hour, 1, qT0.Add(time.Hour)); p != "" {
		t.Error(p)
	}
	if err := r.Commit(ctx, 10); err != nil {
		t.Fatal(err)
	}
	for _, p := range []billing.Period{billing.PeriodHour, billing.PeriodMonth} {
		if s := qState(t, m, "acme", "requests", p); s.Used != 10 || s.Reserved != 0 {
			t.Errorf("%s: used %d reserved %d, want 10 and 0", p, s.Used, s.Reserved)
		}
	}
}

// TestQuotaEnforceOff: with enforcement off nothing is refused, but the status tells the truth.
func TestQuotaEnforceOff(t *testing.T) {
	ctx := context.Background()
	m := qNewMeter(t, billing.Config{Now: qNewClock(qT0).Now, Enforce: billing.EnforceOff})
	qSetQuota(t, m, billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: 10, Hard: true})
	for i := range 3 {
		r, err := m.Reserve(ctx, "acme", "requests", 8)
		if err != nil {
			t.Fatalf("Reserve #%d with EnforceOff: %v", i, err)
		}
		if err := r.Commit(ctx, 8); err != nil {
			t.Fatal(err)
		}
	}
	s := qState(t, m, "acme", "requests", billing.PeriodDay)
	if s.Used != 24 || !s.HardExceeded || !s.Exceeded || s.Remaining != 0 {
		t.Errorf("QuotaStatus = %+v, want used 24, hard exceeded, remaining 0", s)
	}
}

// qFlakyStore is a Store whose rule and usage reads can be made to fail.
type qFlakyStore struct {
	*sqlite.Store
	failTenant, failRollups atomic.Bool
}

var qErrStoreDown = errors.New("qflaky: database unavailable")

func (s *qFlakyStore) GetTenant(ctx context.Context, id string) (billing.Tenant, error) {
	if s.failTenant.Load() {
		return billing.Tenant{}, qErrStoreDown
	}
	return s.Store.GetTenant(ctx, id)
}

func (s *qFlakyStore) QueryRollups(ctx context.Context, q billing.RollupQuery) ([]billing.Rollup, error) {
	if s.failRollups.Load() {
		return nil, qErrStoreDown
	}
	return s.Store.QueryRollups(ctx, q)
}

func TestQuotaFailClosedAndFailOpen(t *testing.T) {
	ctx := context.Background()
	for _, failOpen := range []bool{false, true} {
		t.Run(fmt.Sprintf("FailOpen=%v", failOpen), func(t *testing.T) {
			st := &qFlakyStore{Store: qOpenStore(t, ":memory:")}
			m := qNewMeter(t, billing.Config{Store: st, Now: qNewClock(qT0).Now, FailOpen: failOpen})
			for _, tenant := range []string{"t1", "t2"} {
				qSetQuota(t, m, billing.QuotaRule{Tenant: tenant, Resource: "requests", Period: billing.PeriodDay, Limit: 5, Hard: true})
			}
			// t1: the rules cannot be read. t2: the rules are cached, the usage cannot be read.
			if _, err := m.Quotas(ctx, "t2"); err != nil {
				t.Fatal(err)
			}
			st.failTenant.Store(true)
			st.failRollups.Store(true)
			for _, tenant := range []string{"t1", "t2"} {
				r, err := m.Reserve(ctx, tenant, "requests", 100)
				if !failOpen {
					if err == nil {
						t.Fatalf("%s: Reserve admitted while the store is down (want fail closed)", tenant)
					}
					if !errors.Is(err, qErrStoreDown) || !strings.Contains(err.Error(), "fail closed") {
						t.Errorf("%s: Reserve error %q: want the store's error, saying it fails closed", tenant, err)
					}
					if errors.Is(err, billing.ErrQuotaExceeded) {
						t.Errorf("%s: a store failure must not look like a quota refusal: %v", tenant, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: Reserve with FailOpen: %v", tenant, err)
				}
				if r.Quantity != 100 {
					t.Errorf("%s: Quantity = %d, want 100", tenant, r.Quantity)
				}
				if err := r.Commit(ctx, 3); err != nil { // the writer still works
					t.Errorf("%s: Commit: %v", tenant, err)
				}
			}
			st.failTenant.Store(false)
			st.failRollups.Store(false)
			r, err := m.Reserve(ctx, "t1", "requests", 1)
			if err != nil {
				t.Fatalf("Reserve once the store is back: %v", err)
			}
			r.Cancel(ctx)
		})
	}
}

// TestQuotaBadInput: invalid rules and reservations are refused with errors naming the field;
// nothing already stored is harmed.
func TestQuotaBadInput(t *testing.T) {
	ctx := context.Background()
	m := qNewMeter(t, billing.Config{Now: qNewClock(qT0).Now})
	good := billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: 10, Hard: true}
	qSetQuota(t, m, good)

	rules := []struct {
		name  string
		edit  func(*billing.QuotaRule)
		field string
	}{
		{"negative limit", func(r *billing.QuotaRule) { r.Limit = -1 }, "limit"},
		{"unknown period", func(r *billing.QuotaRule) { r.Period = "week" }, "period"},
		{"empty period", func(r *billing.QuotaRule) { r.Period = "" }, "period"},
		{"threshold 0", func(r *billing.QuotaRule) { r.NotifyAt = []int{0} }, "notify_at[0]"},
		{"threshold 1001", func(r *billing.QuotaRule) { r.NotifyAt = []int{50, 1001} }, "notify_at[1]"},
		{"negative threshold", func(r *billing.QuotaRule) { r.NotifyAt = []int{-80} }, "notify_at[0]"},
		{"duplicate threshold", func(r *billing.QuotaRule) { r.NotifyAt = []int{80, 100, 80} }, "notify_at[2]"},
		{"empty tenant", func(r *billing.QuotaRule) { r.Tenant = "" }, "tenant"},
		{"control char in tenant", func(r *billing.QuotaRule) { r.Tenant = "a\x00b" }, "tenant"},
		{"empty resource", func(r *billing.QuotaRule) { r.Resource = "" }, "resource"},
		{"bad resource", func(r *billing.QuotaRule) { r.Resource = "tokens output" }, "resource"},
	}
	for _, tc := range rules {
		t.Run("SetQuota/"+tc.name, func(t *testing.T) {
			r := good
			r.Limit = 7 // would change the stored rule if it were accepted
			tc.edit(&r)
			qWantFieldError(t, m.SetQuota(ctx, r), billing.ErrInvalidConfig, tc.field)
			qWantFieldError(t, r.Validate(), billing.ErrInvalidConfig, tc.field)
		})
	}
	// Edge values that are valid.
	for _, ok := range [][]int{{1}, {1000}, {1, 1000}, {}, nil} {
		r := good
		r.NotifyAt = ok
		if err := r.Validate(); err != nil {
			t.Errorf("NotifyAt %v: %v", ok, err)
		}
	}
	zero := good
	zero.Limit = 0
	if err := zero.Validate(); err != nil {
		t.Errorf("Limit 0 is valid (refuses everything): %v", err)
	}

	reserves := []struct {
		name             string
		tenant, resource string
		n                int64
		field            string
	}{
		{"n zero", "acme", "requests", 0, "n"},
		{"n negative", "acme", "requests", -5, "n"},
		{"n too large", "acme", "requests", billing.MaxQuantity + 1, "n"},
		{"empty tenant", "", "requests", 1, "tenant"},
		{"empty resource", "acme", "", 1, "resource"},
		{"bad resource", "acme", "req uests", 1, "resource"},
	}
	for _, tc := range reserves {
		t.Run("Reserve/"+tc.name, func(t *testing.T) {
			r, err := m.Reserve(ctx, tc.tenant, tc.resource, tc.n)
			if r != nil {
				t.Errorf("Reserve returned a reservation with an error")
			}
			qWantFieldError(t, err, billing.ErrInvalidConfig, tc.field)
		})
	}
	t.Run("Commit/negative", func(t *testing.T) {
		r, err := m.Reserve(ctx, "acme", "requests", 2)
		if err != nil {
			t.Fatal(err)
		}
		qWantFieldError(t, r.Commit(ctx, -1), billing.ErrInvalidEvent, "actual")
		if err := r.Commit(ctx, 2); err != nil { // the reservation is still usable
			t.Fatalf("Commit after a refused Commit: %v", err)
		}
	})
	t.Run("DeleteQuota/QuotaStatus/Quotas empty tenant", func(t *testing.T) {
		qWantFieldError(t, m.DeleteQuota(ctx, "", "requests", billing.PeriodDay), billing.ErrInvalidConfig, "tenant")
		_, err := m.QuotaStatus(ctx, "")
		qWantFieldError(t, err, billing.ErrInvalidConfig, "tenant")
		_, err = m.Quotas(ctx, "")
		qWantFieldError(t, err, billing.ErrInvalidConfig, "tenant")
	})
	t.Run("SetAnchorDay", func(t *testing.T) {
		qWantFieldError(t, m.SetAnchorDay(ctx, "acme", 32), billing.ErrInvalidConfig, "anchor_day")
		qWantFieldError(t, m.SetAnchorDay(ctx, "acme", -1), billing.ErrInvalidConfig, "anchor_day")
	})

	// The stored rule is untouched by all of the above.
	rules2, err := m.Quotas(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(rules2) != 1 || rules2[0].Limit != 10 || rules2[0].Period != billing.PeriodDay || !rules2[0].Hard {
		t.Errorf("Quotas after bad input = %+v, want the one good rule", rules2)
	}
}

// TestQuotaZeroLimit: a hard limit of 0 refuses everything; nothing used is 0%, not exceeded.
func TestQuotaZeroLimit(t *testing.T) {
	ctx := context.Background()
	m := qNewMeter(t, billing.Config{Now: qNewClock(qT0).Now})
	rule := billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: 0, Hard: true}
	qSetQuota(t, m, rule)
	_, err := m.Reserve(ctx, "acme", "requests", 1)
	if p := qCheckRefusal(err, rule, 1, qDayEnd); p != "" {
		t.Error(p)
	}
	s := qState(t, m, "acme", "requests", billing.PeriodDay)
	if s.Used != 0 || s.Percent != 0 || s.Exceeded || s.HardExceeded || s.Remaining != 0 {
		t.Errorf("QuotaStatus = %+v, want nothing used, 0%%, not exceeded", s)
	}
}
