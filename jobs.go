package billing

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Maintainer is an optional part of a Store: housekeeping that must happen now and then, such as
// creating the event partitions of the coming months (store/postgres). When Config.Store
// implements it, Meter.Run calls Maintain once per maintenance interval (the longer of
// Config.CheckInterval and DefaultMaintainInterval) across every replica that runs it. Maintain
// must be idempotent: a replica that dies while it runs leaves the run to another one, which
// runs it again. now is the Meter's clock (Config.Now).
type Maintainer interface {
	Maintain(ctx context.Context, now time.Time) error
}

// The background jobs of Meter.Run, by the names they have in the JobStore, in logs and in
// Meter.JobRuns.
const (
	// JobCheckQuotas runs Meter.CheckQuotas, once per Config.CheckInterval.
	JobCheckQuotas = "check-quotas"
	// JobInvoices keeps the previous period's drafts current during Config.InvoiceGrace and
	// then finalizes them, once per Config.CheckInterval.
	JobInvoices = "invoices"
	// JobMaintain runs the Store's Maintainer, when it has one, once per the longer of
	// Config.CheckInterval and DefaultMaintainInterval.
	JobMaintain = "maintain"
)

// Defaults of the background jobs.
const (
	// DefaultJobLease is the shortest default of Config.JobLease; the default is the longer of
	// it and Config.CheckInterval.
	DefaultJobLease = time.Minute
	// DefaultMaintainInterval is the shortest interval of JobMaintain.
	DefaultMaintainInterval = time.Hour
)

// JobCount counts the runs of one background job by one Meter since New.
type JobCount struct {
	// Runs counts the runs this Meter claimed and completed without error.
	Runs uint64
	// Failures counts the runs this Meter claimed that failed (returned an error, or lost their
	// claim). A failed run is not recorded as finished, so the job runs again at a later tick.
	Failures uint64
}

// job is one of Run's background jobs.
type job struct {
	name     string
	interval time.Duration // the length of a slot: the job runs once per interval
	run      func(ctx context.Context, now time.Time) error
}

// jobRunner is the Meter's state for Run: its instance id and what its jobs did. The zero value
// is ready.
type jobRunner struct {
	once sync.Once
	id   string

	mu      sync.Mutex
	running map[string]bool      // jobs running now in this Meter (Run may be called twice)
	done    map[string]time.Time // the last slot this Meter finished, by job
	counts  map[string]JobCount
}

// InstanceID returns the Meter's instance id: a new random id for every Meter, which owns the
// claims of the background jobs its Run runs (see JobStore). Operators find it in the jobs of
// the Store and in Run's log lines.
func (m *Meter) InstanceID() string {
	r := &m.runner
	r.once.Do(func() { r.id = NewEventID() })
	return r.id
}

// JobRuns returns, by job name (JobCheckQuotas, JobInvoices, JobMaintain), how often this Meter's
// Run ran each job since New. A job that another replica ran in a slot is not counted here: the
// sum over every replica is the number of slots the job ran for. Jobs that never ran are absent.
func (m *Meter) JobRuns() map[string]JobCount {
	r := &m.runner
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]JobCount, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

// jobList returns Run's jobs.
func (m *Meter) jobList() []job {
	jobs := []job{
		{JobCheckQuotas, m.cfg.CheckInterval, func(ctx context.Context, _ time.Time) error {
			_, err := m.CheckQuotas(ctx)
			return err
		}},
		{JobInvoices, m.cfg.CheckInterval, func(ctx context.Context, _ time.Time) error { return m.invoiceJobs(ctx) }},
	}
	if mt, ok := m.cfg.Store.(Maintainer); ok {
		jobs = append(jobs, job{JobMaintain, max(m.cfg.CheckInterval, DefaultMaintainInterval), mt.Maintain})
	}
	return jobs
}

// runJobs runs jobs until ctx ends, each in its own goroutine so that a long job does not delay
// the others, and each trying its current slot every Config.CheckInterval.
func (m *Meter) runJobs(ctx context.Context, jobs []job, lease time.Duration) {
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() {
			tick := time.NewTicker(m.cfg.CheckInterval)
			defer tick.Stop()
			for {
				m.tryJob(ctx, j, lease)
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	wg.Wait()
}

// tryJob runs j for the slot of the current time, unless this Meter already finished that slot,
// the job is running in this Meter, or another Meter claimed or finished it. While the job runs
// its claim is renewed; a completed run is finished in the Store, and a failed one is released
// (its claim expires at once) so that the next tick of any Meter retries it.
func (m *Meter) tryJob(ctx context.Context, j job, lease time.Duration) {
	r, owner := &m.runner, m.InstanceID()
	now := m.cfg.Now()
	slot := now.Truncate(j.interval)
	r.mu.Lock()
	if r.running[j.name] || !r.done[j.name].IsZero() && !slot.After(r.done[j.name]) {
		r.mu.Unlock()
		return
	}
	if r.running == nil {
		r.running, r.done, r.counts = map[string]bool{}, map[string]time.Time{}, map[string]JobCount{}
	}
	r.running[j.name] = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.running, j.name)
		r.mu.Unlock()
	}()

	log := m.cfg.Logger.With("job", j.name, "slot", slot, "owner", owner)
	c := JobClaim{Name: j.name, Slot: slot, Owner: owner, Now: now, Until: now.Add(lease)}
	ok, err := m.cfg.Store.ClaimJob(ctx, c)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("billing: claim job failed", "err", err)
		}
		return
	}
	if !ok {
		return
	}

	jctx, cancel := context.WithCancelCause(ctx)
	stopped := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		m.renewJob(jctx, cancel, stopped, c, lease)
	}()
	start := time.Now()
	err = j.run(jctx, now)
	close(stopped)
	<-renewed
	lost := context.Cause(jctx)
	if !errors.Is(lost, errClaimLost) {
		lost = nil // the job ended by itself, or with Run
	}
	cancel(nil)
	took := time.Since(start)

	// Finish or release even when ctx ended (Run stopping): the claim must not block the job.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer scancel()
	var finishErr error
	if err == nil && lost == nil {
		c.Now = m.cfg.Now()
		finishErr = m.cfg.Store.FinishJob(sctx, c)
	}
	r.mu.Lock()
	n := r.counts[j.name]
	if err == nil && lost == nil && finishErr == nil {
		n.Runs++
		r.done[j.name] = slot
	} else {
		n.Failures++
	}
	r.counts[j.name] = n
	r.mu.Unlock()

	switch {
	case err == nil && lost == nil && finishErr == nil:
		log.Debug("billing: job ran", "took", took)
	case lost != nil:
		log.Warn("billing: job stopped: its claim was lost; another Meter runs it", "took", took, "err", lost)
	case errors.Is(finishErr, ErrNotFound):
		log.Warn("billing: job ran but its claim had expired and was taken over; it may run twice", "took", took, "err", finishErr)
	default:
		if finishErr != nil {
			log.Error("billing: job ran but recording it failed; it runs again", "took", took, "err", finishErr)
		} else if ctx.Err() == nil {
			log.Error("billing: job failed; it runs again at the next tick", "took", took, "err", err)
		} else {
			log.Debug("billing: job stopped with Run", "took", took, "err", err)
		}
		c.Now = m.cfg.Now()
		c.Until = c.Now
		if _, rerr := m.cfg.Store.ClaimJob(sctx, c); rerr != nil {
			log.Warn("billing: release of a failed job's claim failed; it expires by itself", "err", rerr)
		}
	}
}

// errClaimLost is the cause of a job's context when the Meter lost the job's claim.
var errClaimLost = errors.New("billing: job claim lost (expired and taken over by another Meter, or not renewed in time)")

// renewJob renews the claim c until stopped is closed, every third of lease (at most every
// Config.CheckInterval). When the claim is taken over, or cannot be renewed before it expires,
// it cancels the job with errClaimLost.
func (m *Meter) renewJob(ctx context.Context, cancel context.CancelCauseFunc, stopped <-chan struct{}, c JobClaim, lease time.Duration) {
	tick := time.NewTicker(max(min(lease/3, m.cfg.CheckInterval), time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-stopped:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := m.cfg.Now()
		next := c
		next.Now, next.Until = now, now.Add(lease)
		ok, err := m.cfg.Store.ClaimJob(ctx, next)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && ok:
			c = next
		case err == nil:
			cancel(errClaimLost)
			return
		case !now.Before(c.Until):
			cancel(errors.Join(errClaimLost, err))
			return
		default:
			m.cfg.Logger.Warn("billing: renew job claim failed; retrying", "job", c.Name, "owner", c.Owner, "err", err)
		}
	}
}
