package postgres_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/postgres"
)

// replica is one Meter with its own Store (connection pool) and Quota on a shared schema: what
// one replica of a service holds.
type replica struct {
	st *postgres.Store
	q  *postgres.Quota
	m  *billing.Meter
}

// newReplica opens a replica on schema; it is closed (Meter, Quota, Store) when the test ends.
func newReplica(t testing.TB, schema string, qc postgres.QuotaConfig, mc billing.Config) *replica {
	t.Helper()
	st := openCleanup(t, postgres.Config{URL: testURL(t), Schema: schema})
	q, err := postgres.NewQuota(st, qc)
	if err != nil {
		t.Fatalf("NewQuota: %v", err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("Quota.Close: %v", err)
		}
	})
	mc.Store, mc.Quota = st, q
	m, err := billing.New(mc)
	if err != nil {
		t.Fatalf("billing.New: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Meter.Close: %v", err)
		}
	})
	return &replica{st: st, q: q, m: m}
}

func setHardLimit(t testing.TB, m *billing.Meter, tenant, resource string, limit int64) {
	t.Helper()
	if err := m.SetQuota(context.Background(), billing.QuotaRule{Tenant: tenant, Resource: resource,
		Period: billing.PeriodDay, Limit: limit, Hard: true}); err != nil {
		t.Fatalf("SetQuota: %v", err)
	}
}

func usedNow(t testing.TB, m *billing.Meter, tenant, resource string) (used, reserved int64) {
	t.Helper()
	qs, err := m.QuotaStatus(context.Background(), tenant)
	if err != nil {
		t.Fatalf("QuotaStatus: %v", err)
	}
	for _, s := range qs {
		if s.Rule.Resource == resource {
			return s.Used, s.Reserved
		}
	}
	t.Fatalf("QuotaStatus(%s): no rule for %s", tenant, resource)
	return 0, 0
}

// TestQuotaExactAcrossReplicas: two replicas, 64 goroutines each, reserve and commit one unit
// until refused: exactly the limit is admitted and recorded, never more.
func TestQuotaExactAcrossReplicas(t *testing.T) {
	schema := testSchema(t)
	const limit = 1000
	reps := []*replica{
		newReplica(t, schema, postgres.QuotaConfig{}, billing.Config{}),
		newReplica(t, schema, postgres.QuotaConfig{}, billing.Config{}),
		newReplica(t, schema, postgres.QuotaConfig{}, billing.Config{}),
	}
	setHardLimit(t, reps[0].m, "acme", "requests", limit)
	ctx := context.Background()
	var admitted atomic.Int64
	perReplica := make([]atomic.Int64, len(reps))
	var wg sync.WaitGroup
	for ri, r := range reps {
		for range 64 {
			wg.Go(func() {
				for {
					res, err := r.m.Reserve(ctx, "acme", "requests", 1)
					if errors.Is(err, billing.ErrQuotaExceeded) {
						return
					}
					if err != nil {
						t.Errorf("Reserve: %v", err)
						return
					}
					admitted.Add(1)
					perReplica[ri].Add(1)
					if err := res.Commit(ctx, 1); err != nil {
						t.Errorf("Commit: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	if got := admitted.Load(); got != limit {
		t.Errorf("admitted %d reservations across replicas, want exactly the limit %d", got, limit)
	}
	for ri, r := range reps {
		used, reserved := usedNow(t, r.m, "acme", "requests")
		if used != limit || reserved != 0 {
			t.Errorf("replica %d: QuotaStatus used %d, reserved %d; want %d, 0", ri, used, reserved, limit)
		}
		t.Logf("replica %d admitted %d", ri, perReplica[ri].Load())
	}
	rows, err := reps[1].m.Usage(ctx, billing.UsageQuery{Tenant: "acme", Resource: "requests", Window: billing.PeriodTotal})
	if err != nil || len(rows) != 1 || rows[0].Sum != limit || rows[0].Count != limit {
		t.Errorf("Usage = %+v, %v; want one row of sum and count %d", rows, err, limit)
	}
	if _, err := reps[2].m.Reserve(ctx, "acme", "requests", 1); !errors.Is(err, billing.ErrQuotaExceeded) {
		t.Errorf("Reserve after the limit: %v, want ErrQuotaExceeded", err)
	}
}

// TestQuotaNeverOver: random reservation sizes, commits below, at and above nothing, cancels, on
// two replicas: recorded usage never passes the limit, and once everything is returned the
// whole remaining headroom can be reserved from one replica (no lease leaks).
func TestQuotaNeverOver(t *testing.T) {
	schema := testSchema(t)
	const limit = 20_000
	qc := postgres.QuotaConfig{IdleReturn: 50 * time.Millisecond, LeaseTTL: 600 * time.Millisecond}
	a := newReplica(t, schema, qc, billing.Config{})
	b := newReplica(t, schema, qc, billing.Config{})
	setHardLimit(t, a.m, "acme", "tokens", limit)
	ctx := context.Background()
	stop := make(chan struct{})
	var over atomic.Int64
	var wg, watch sync.WaitGroup
	watch.Go(func() { // recorded usage, read straight from the rollups, never passes the limit
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			var used int64
			a.st.Pool().QueryRow(ctx, `SELECT COALESCE(sum(sum), 0) FROM rollups WHERE tenant = 'acme' AND resource = 'tokens' AND period = 'total'`).Scan(&used)
			if used > limit {
				over.Store(used)
			}
		}
	})
	for gi := range 64 {
		r := []*replica{a, b}[gi%2]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(gi), 7))
			refusals := 0
			for refusals < 20 {
				n := 1 + rng.Int64N(64)
				res, err := r.m.Reserve(ctx, "acme", "tokens", n)
				if errors.Is(err, billing.ErrQuotaExceeded) {
					refusals++
					continue
				}
				if err != nil {
					t.Errorf("Reserve: %v", err)
					return
				}
				if rng.IntN(5) == 0 {
					err = res.Cancel(ctx)
				} else {
					err = res.Commit(ctx, rng.Int64N(n+1))
				}
				if err != nil {
					t.Errorf("Commit/Cancel: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	watch.Wait()
	if v := over.Load(); v > 0 {
		t.Fatalf("recorded usage reached %d, over the hard limit %d", v, limit)
	}
	// Another replica's cancelled reservations show as reserved until its next renewal.
	used, reserved := usedNow(t, b.m, "acme", "tokens")
	for end := time.Now().Add(3 * time.Second); reserved != 0 && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
		used, reserved = usedNow(t, b.m, "acme", "tokens")
	}
	if used > limit || reserved != 0 {
		t.Fatalf("used %d, reserved %d; want used <= %d and nothing reserved", used, reserved, limit)
	}
	if used < limit-64 {
		t.Logf("used %d of %d (the rest was refused while other reservations held it)", used, limit)
	}
	// Idle leases return; then the whole remaining headroom fits in one reservation.
	rest := limit - used
	if rest == 0 {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err := b.m.Reserve(ctx, "acme", "tokens", rest)
		if err == nil {
			res.Cancel(ctx)
			break
		}
		if !errors.Is(err, billing.ErrQuotaExceeded) || time.Now().After(deadline) {
			t.Fatalf("Reserve of the remaining %d units: %v (leases not returned?)", rest, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := b.m.Reserve(ctx, "acme", "tokens", rest+1); !errors.Is(err, billing.ErrQuotaExceeded) {
		t.Fatalf("Reserve of %d units, one more than remains: %v, want ErrQuotaExceeded", rest+1, err)
	}
}

// TestQuotaLeaseSettlesWithEvent: a committed reservation lowers its lease in the transaction
// that records it.
func TestQuotaLeaseSettlesWithEvent(t *testing.T) {
	schema := testSchema(t)
	a := newReplica(t, schema, postgres.QuotaConfig{LeaseUnits: -1, IdleReturn: time.Hour}, billing.Config{})
	setHardLimit(t, a.m, "acme", "tokens", 100)
	ctx := context.Background()
	lease := func() (units int64) {
		t.Helper()
		err := a.st.Pool().QueryRow(ctx, `SELECT COALESCE(sum(units), 0) FROM quota_leases WHERE tenant = 'acme'`).Scan(&units)
		if err != nil {
			t.Fatal(err)
		}
		return units
	}
	r1, err := a.m.Reserve(ctx, "acme", "tokens", 40)
	if err != nil {
		t.Fatal(err)
	}
	if got := lease(); got != 40 {
		t.Fatalf("lease after Reserve(40) with LeaseUnits -1: %d, want 40", got)
	}
	if err := r1.Commit(ctx, 25); err != nil {
		t.Fatal(err)
	}
	if got := lease(); got != 0 {
		t.Errorf("lease after Commit(25): %d, want 0 (lowered with the event)", got)
	}
	if used, _ := usedNow(t, a.m, "acme", "tokens"); used != 25 {
		t.Errorf("used %d, want 25", used)
	}
	// 75 remain: 76 is refused, 75 admitted.
	if _, err := a.m.Reserve(ctx, "acme", "tokens", 76); !errors.Is(err, billing.ErrQuotaExceeded) {
		t.Errorf("Reserve(76): %v, want ErrQuotaExceeded", err)
	}
	r2, err := a.m.Reserve(ctx, "acme", "tokens", 75)
	if err != nil {
		t.Fatalf("Reserve(75): %v", err)
	}
	if err := r2.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestQuotaDeadReplica: units leased by a replica that stopped renewing return after its lease
// expires.
func TestQuotaDeadReplica(t *testing.T) {
	schema := testSchema(t)
	a := newReplica(t, schema, postgres.QuotaConfig{}, billing.Config{})
	setHardLimit(t, a.m, "acme", "requests", 10)
	ctx := context.Background()
	// What a replica that died holding the whole headroom leaves behind.
	if _, err := a.st.Pool().Exec(ctx, `INSERT INTO quota_leases (tenant, resource, owner, units, held, expires)
		VALUES ('acme', 'requests', 'dead-replica', 10, 3, now() + interval '700 milliseconds')`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.m.Reserve(ctx, "acme", "requests", 1); !errors.Is(err, billing.ErrQuotaExceeded) {
		t.Fatalf("Reserve while a live lease holds every unit: %v, want ErrQuotaExceeded", err)
	}
	if _, reserved := usedNow(t, a.m, "acme", "requests"); reserved != 3 {
		t.Errorf("QuotaStatus reserved %d, want the 3 the other replica reported", reserved)
	}
	time.Sleep(800 * time.Millisecond)
	r, err := a.m.Reserve(ctx, "acme", "requests", 10)
	if err != nil {
		t.Fatalf("Reserve after the dead replica's lease expired: %v", err)
	}
	r.Cancel(ctx)
}

// TestQuotaRuleChange: a lowered limit applies at once, even to a replica holding a lease taken
// under the old one.
func TestQuotaRuleChange(t *testing.T) {
	schema := testSchema(t)
	a := newReplica(t, schema, postgres.QuotaConfig{LeaseUnits: 500, IdleReturn: time.Hour}, billing.Config{})
	setHardLimit(t, a.m, "acme", "requests", 1000)
	ctx := context.Background()
	r, err := a.m.Reserve(ctx, "acme", "requests", 1)
	if err != nil {
		t.Fatal(err)
	}
	r.Commit(ctx, 1)
	setHardLimit(t, a.m, "acme", "requests", 3)
	for i := range 2 {
		r, err := a.m.Reserve(ctx, "acme", "requests", 1)
		if err != nil {
			t.Fatalf("Reserve %d under the new limit: %v", i, err)
		}
		r.Commit(ctx, 1)
	}
	if _, err := a.m.Reserve(ctx, "acme", "requests", 1); !errors.Is(err, billing.ErrQuotaExceeded) {
		t.Fatalf("Reserve past the lowered limit: %v, want ErrQuotaExceeded", err)
	}
}

// TestQuotaSoftAndOff: soft rules and enforcement off never refuse and need no lease.
func TestQuotaSoftAndOff(t *testing.T) {
	schema := testSchema(t)
	a := newReplica(t, schema, postgres.QuotaConfig{}, billing.Config{Enforce: billing.EnforceOff})
	setHardLimit(t, a.m, "acme", "requests", 1)
	ctx := context.Background()
	for range 3 {
		r, err := a.m.Reserve(ctx, "acme", "requests", 1)
		if err != nil {
			t.Fatalf("Reserve with enforcement off: %v", err)
		}
		defer r.Cancel(ctx)
	}
	if _, reserved := usedNow(t, a.m, "acme", "requests"); reserved != 3 {
		t.Errorf("reserved %d, want 3", reserved)
	}
}

// BenchmarkQuotaReserveLeased is Reserve+Commit of one unit (async Meter) on a shared Quota whose
// lease serves most reservations in memory, beside BenchmarkQuotaReserveEveryTrip, where each
// reservation asks the database (LeaseUnits -1: every committed unit must be leased again).
func BenchmarkQuotaReserveLeased(b *testing.B) {
	benchReserve(b, postgres.QuotaConfig{})
}

func BenchmarkQuotaReserveEveryTrip(b *testing.B) {
	benchReserve(b, postgres.QuotaConfig{LeaseUnits: -1})
}

func benchReserve(b *testing.B, qc postgres.QuotaConfig) {
	schema := testSchema(b)
	r := newReplica(b, schema, qc, billing.Config{Async: true})
	setHardLimit(b, r.m, "acme", "requests", 1<<40)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := r.m.Reserve(ctx, "acme", "requests", 1)
		if err != nil {
			b.Fatal(err)
		}
		if err := res.Commit(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
}
