package billing_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// jobsStore is a replica's Store in the jobs tests: a sqlite Store that also implements
// billing.Maintainer, counting the calls of every replica in maint, and blocking in Maintain
// while gate is set and open.
type jobsStore struct {
	*sqlite.Store
	maint *atomic.Int64
	gate  *gate // nil: Maintain returns at once
}

// Maintain implements billing.Maintainer.
func (s jobsStore) Maintain(ctx context.Context, now time.Time) error {
	s.maint.Add(1)
	if s.gate != nil {
		select {
		case <-s.gate.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// greedyStore grants every job claim, as if each replica had a Store of its own: it makes
// replicas run the same job at the same time.
type greedyStore struct{ *sqlite.Store }

// ClaimJob grants c.
func (greedyStore) ClaimJob(context.Context, billing.JobClaim) (bool, error) { return true, nil }

// FinishJob accepts c.
func (greedyStore) FinishJob(context.Context, billing.JobClaim) error { return nil }

// jobsReplicas opens n sqlite Stores on one file (each a replica's own connections) and builds a
// Meter on each with cfg, whose Store is wrap(store) (the store itself when wrap is nil). The
// Meters share clock.
func jobsReplicas(t *testing.T, n int, clock *invClock, cfg billing.Config, wrap func(*sqlite.Store) billing.Store) ([]*billing.Meter, []*sqlite.Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "billing.db")
	var ms []*billing.Meter
	var sts []*sqlite.Store
	for range n {
		st := invOpenFile(t, path)
		c := cfg
		c.Store, c.Now = st, clock.Now
		if wrap != nil {
			c.Store = wrap(st)
		}
		ms = append(ms, newMeter(t, c))
		sts = append(sts, st)
	}
	return ms, sts
}

// jobsRun runs every Meter's Run concurrently until the test ends.
func jobsRun(t *testing.T, ms []*billing.Meter) {
	t.Helper()
	for _, m := range ms {
		invRun(t, m)
	}
}

// jobRuns sums the runs and failures of job over ms.
func jobRuns(ms []*billing.Meter, job string) (runs, failures uint64) {
	for _, m := range ms {
		c := m.JobRuns()[job]
		runs += c.Runs
		failures += c.Failures
	}
	return runs, failures
}

// waitRuns waits until the Meters ran job want times in all, and fails if they ran it more or if
// a run failed.
func waitRuns(t *testing.T, ms []*billing.Meter, job string, want uint64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d runs of %s", want, job), func() bool {
		runs, _ := jobRuns(ms, job)
		return runs >= want
	})
	if runs, failures := jobRuns(ms, job); runs != want || failures != 0 {
		t.Fatalf("%s: %d runs and %d failures over the replicas, want %d runs and none failed", job, runs, failures, want)
	}
}

// TestJobsOncePerSlot runs three Meters on one SQLite file, their Run ticking every 2ms with a
// shared clock that moves a minute at a time: each job runs exactly once per slot, however many
// ticks the replicas make in it.
func TestJobsOncePerSlot(t *testing.T) {
	t0 := time.Date(2026, time.January, 10, 10, 0, 0, 0, time.UTC)
	clock := invNewClock(t0)
	var maint atomic.Int64
	ms, _ := jobsReplicas(t, 3, clock, billing.Config{CheckInterval: 2 * time.Millisecond},
		func(st *sqlite.Store) billing.Store { return jobsStore{Store: st, maint: &maint} })
	ids := map[string]bool{}
	for _, m := range ms {
		ids[m.InstanceID()] = true
	}
	if len(ids) != 3 {
		t.Fatalf("instance ids %v: want three different ones", ids)
	}
	jobsRun(t, ms)
	for k := uint64(1); k <= 5; k++ {
		waitRuns(t, ms, billing.JobCheckQuotas, k)
		waitRuns(t, ms, billing.JobInvoices, k)
		time.Sleep(20 * time.Millisecond) // ten ticks of each replica in the same slot
		waitRuns(t, ms, billing.JobCheckQuotas, k)
		waitRuns(t, ms, billing.JobInvoices, k)
		clock.Set(t0.Add(time.Duration(k) * time.Minute))
	}
	// Maintenance is hourly: once in the first hour, once more in the next.
	waitRuns(t, ms, billing.JobMaintain, 1)
	if got := maint.Load(); got != 1 {
		t.Fatalf("Maintain called %d times in the first hour, want 1", got)
	}
	clock.Set(t0.Add(time.Hour))
	waitRuns(t, ms, billing.JobMaintain, 2)
	time.Sleep(20 * time.Millisecond)
	waitRuns(t, ms, billing.JobMaintain, 2)
	if got := maint.Load(); got != 2 {
		t.Fatalf("Maintain called %d times over two hours, want 2", got)
	}
}

// TestJobsTakeOverAfterLease: a replica that claimed a job and died (a claim by a fake owner that
// is never finished or renewed) holds it until its lease expires; then another replica runs it.
func TestJobsTakeOverAfterLease(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, time.January, 10, 10, 0, 0, 0, time.UTC)
	clock := invNewClock(t0)
	ms, sts := jobsReplicas(t, 3, clock, billing.Config{CheckInterval: 2 * time.Millisecond, JobLease: time.Minute}, nil)
	dead := billing.JobClaim{Name: billing.JobCheckQuotas, Slot: t0, Owner: "dead-replica", Now: t0, Until: t0.Add(time.Minute)}
	if ok, err := sts[0].ClaimJob(ctx, dead); err != nil || !ok {
		t.Fatalf("ClaimJob(%+v) = %v, %v; want true", dead, ok, err)
	}
	clock.Set(t0.Add(30 * time.Second)) // a later slot, but the dead replica's claim still holds
	jobsRun(t, ms)
	waitRuns(t, ms, billing.JobInvoices, 1) // Run runs
	time.Sleep(30 * time.Millisecond)
	if runs, _ := jobRuns(ms, billing.JobCheckQuotas); runs != 0 {
		t.Fatalf("check-quotas ran %d times while another owner's claim held, want 0", runs)
	}
	clock.Set(t0.Add(time.Minute)) // the claim expires (its Until is not after now)
	waitRuns(t, ms, billing.JobCheckQuotas, 1)
	if err := sts[1].FinishJob(ctx, dead); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("FinishJob by the dead replica after the takeover: %v, want ErrNotFound", err)
	}
}

// TestJobsRenewWhileRunning: a long job keeps its claim while it runs, however far the clock
// moves, so no other replica starts the job meanwhile; once it ends the current slot runs.
func TestJobsRenewWhileRunning(t *testing.T) {
	t0 := time.Date(2026, time.January, 10, 10, 0, 0, 0, time.UTC)
	clock := invNewClock(t0)
	var maint atomic.Int64
	g := newGate()
	ms, _ := jobsReplicas(t, 3, clock, billing.Config{CheckInterval: 2 * time.Millisecond, JobLease: time.Hour},
		func(st *sqlite.Store) billing.Store { return jobsStore{Store: st, maint: &maint, gate: g} })
	jobsRun(t, ms)
	waitFor(t, "the first maintenance run", func() bool { return maint.Load() > 0 })
	// Three hours pass in steps much shorter than the lease, each long enough (in real time) for
	// a few renewals: the running replica's claim never expires. (The clock runs fast: a step
	// of 3 minutes takes 10ms, so the lease must also cover the replicas' waits for SQLite's
	// write lock, which can take tens of milliseconds under -race.)
	for range 60 {
		clock.Set(clock.Now().Add(3 * time.Minute))
		time.Sleep(10 * time.Millisecond)
	}
	if got := maint.Load(); got != 1 {
		t.Fatalf("Maintain started %d times while the first run was still running, want 1", got)
	}
	if runs, failures := jobRuns(ms, billing.JobMaintain); runs != 0 || failures != 0 {
		t.Fatalf("maintain: %d runs, %d failures before the first run ended; want none", runs, failures)
	}
	close(g.release)
	waitRuns(t, ms, billing.JobMaintain, 2) // the first slot's run, then the current slot's
	if got := maint.Load(); got != 2 {
		t.Fatalf("Maintain called %d times, want 2", got)
	}
}

// TestJobsFailedRunRetried: a job that fails is not finished, and runs again at a later tick.
func TestJobsFailedRunRetried(t *testing.T) {
	t0 := time.Date(2026, time.January, 10, 10, 0, 0, 0, time.UTC)
	clock := invNewClock(t0)
	var calls atomic.Int64
	ms, _ := jobsReplicas(t, 2, clock, billing.Config{CheckInterval: 2 * time.Millisecond},
		func(st *sqlite.Store) billing.Store { return failingMaintainer{Store: st, calls: &calls} })
	jobsRun(t, ms)
	waitFor(t, "the failing maintenance run and its retry", func() bool {
		runs, _ := jobRuns(ms, billing.JobMaintain)
		return runs == 1
	})
	runs, failures := jobRuns(ms, billing.JobMaintain)
	if runs != 1 || failures != 2 || calls.Load() != 3 {
		t.Errorf("maintain: %d runs, %d failures, %d calls; want 1 run after 2 failures, 3 calls", runs, failures, calls.Load())
	}
}

// failingMaintainer's Maintain fails the first two times.
type failingMaintainer struct {
	*sqlite.Store
	calls *atomic.Int64
}

// Maintain implements billing.Maintainer.
func (s failingMaintainer) Maintain(ctx context.Context, now time.Time) error {
	if s.calls.Add(1) <= 2 {
		return errors.New("maintenance failed")
	}
	return nil
}

// TestJobsBadLease: a negative JobLease makes New return an error naming it.
func TestJobsBadLease(t *testing.T) {
	st, err := sqlite.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = billing.New(billing.Config{Store: st, JobLease: -time.Second})
	requireFieldError(t, err, billing.ErrInvalidConfig, "JobLease", "negative")
}

// TestJobsInvoicesNumberedOnce: two replicas run the invoice job for the same month at the same
// time, after its grace. Every invoice is finalized once, with one number, and the numbers are
// consecutive from 1. It runs with the job claims of the Store (one replica runs the job) and
// with claims always granted (both run it at once, and FinalizeInvoice alone keeps the numbers
// right).
func TestJobsInvoicesNumberedOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(*sqlite.Store) billing.Store
	}{
		{"Claims", nil},
		{"BothRun", func(st *sqlite.Store) billing.Store { return greedyStore{st} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clock := invNewClock(invAt(28, 22, 0))
			ms, _ := jobsReplicas(t, 2, clock, billing.Config{CheckInterval: 2 * time.Millisecond, JobLease: time.Hour}, tc.wrap)
			const n = 30
			var tenants []string
			var events []billing.Event
			for i := range n {
				tenant := fmt.Sprintf("tenant-%02d", i)
				tenants = append(tenants, tenant)
				e := invEv("requests", int64(i+1), invAt(20, 0, i))
				e.Tenant = tenant
				events = append(events, e)
			}
			invSetPlan(t, ms[0], invPlanP, tenants...)
			invTrack(t, ms[0], events...)
			clock.Set(invFeb.End.Add(2 * time.Hour)) // February's grace has passed
			jobsRun(t, ms)
			var invs []*billing.Invoice
			waitFor(t, "every February invoice finalized", func() bool {
				var err error
				invs, err = ms[1].Invoices(ctx, billing.InvoiceQuery{Limit: 1000})
				if err != nil {
					t.Fatal(err)
				}
				done := 0
				for _, inv := range invs {
					if inv.Status == billing.InvoiceFinalized {
						done++
					}
				}
				return done == n
			})
			if tc.wrap != nil {
				waitFor(t, "both replicas to run the invoice job", func() bool {
					return ms[0].JobRuns()[billing.JobInvoices].Runs > 0 && ms[1].JobRuns()[billing.JobInvoices].Runs > 0
				})
			}
			// A few more slots: nothing changes.
			for k := range 3 {
				clock.Set(invFeb.End.Add(2*time.Hour + time.Duration(k+1)*time.Minute))
				time.Sleep(10 * time.Millisecond)
			}
			invs, err := ms[0].Invoices(ctx, billing.InvoiceQuery{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			var numbers, want []string
			byTenant := map[string]int{}
			for i, inv := range invs {
				numbers = append(numbers, inv.Number)
				want = append(want, fmt.Sprintf("INV-2026-%06d", i+1))
				byTenant[inv.Tenant]++
				if inv.Status != billing.InvoiceFinalized || !inv.Start.Equal(invFeb.Start) {
					t.Errorf("invoice %s of %s: %s for %s, want finalized for February", inv.ID, inv.Tenant, inv.Status, inv.Start)
				}
			}
			slices.Sort(numbers)
			if diff := cmp.Diff(want, numbers); diff != "" {
				t.Errorf("invoice numbers (-want +got), want each once, consecutive from 1:\n%s", diff)
			}
			for _, tenant := range tenants {
				if byTenant[tenant] != 1 {
					t.Errorf("tenant %s has %d invoices, want 1", tenant, byTenant[tenant])
				}
			}
		})
	}
}
