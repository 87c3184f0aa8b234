package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/postgres"
)

// TestJobsOncePerIntervalAcrossReplicas: three replicas run Meter.Run on one database with a
// short CheckInterval on the real clock; each job runs at most once per interval slot in all,
// and it does run.
func TestJobsOncePerIntervalAcrossReplicas(t *testing.T) {
	schema := testSchema(t)
	const interval = 100 * time.Millisecond
	var reps []*replica
	for range 3 {
		reps = append(reps, newReplica(t, schema, postgres.QuotaConfig{}, billing.Config{CheckInterval: interval}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	var wg sync.WaitGroup
	for _, r := range reps {
		wg.Go(func() {
			if err := r.m.Run(ctx); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()
	end := time.Now()
	slots := int(end.Truncate(interval).Sub(start.Truncate(interval))/interval) + 1
	for _, job := range []string{billing.JobCheckQuotas, billing.JobInvoices} {
		var runs, failures uint64
		for _, r := range reps {
			c := r.m.JobRuns()[job]
			runs += c.Runs
			failures += c.Failures
		}
		t.Logf("%s: %d runs and %d failures in %d slots", job, runs, failures, slots)
		if failures != 0 {
			t.Errorf("%s failed %d times", job, failures)
		}
		if runs > uint64(slots) {
			t.Errorf("%s ran %d times across the replicas in %d slots of %v: more than once per slot", job, runs, slots, interval)
		}
		if runs < uint64(slots)/2 {
			t.Errorf("%s ran only %d times in %d slots", job, runs, slots)
		}
	}
}
