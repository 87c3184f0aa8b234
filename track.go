package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Track records usage events. Every event is validated first; if any is invalid, Track returns a
// *FieldError (matching ErrInvalidEvent) naming it, and records none of them. Valid events are
// handed to the Meter's single writer, which commits them in batches (group commit); the events
// of one call always commit in the same transaction.
//
// In durable mode (the default) Track returns nil only once its events are committed: an
// acknowledged event survives a crash. With Config.Async it returns once they are queued.
//
// An event whose (Tenant, ID) is already recorded with the same resource, quantity and attributes
// is a no-op, so retrying a call with the same IDs never counts twice. One recorded with different
// content is refused with a *EventConflictError (matching ErrEventConflict); the call's other
// events are still recorded.
//
// If ctx ends while a durable Track waits for its commit, Track returns ctx.Err() but the events
// may still be committed; retry with the same IDs to be sure. Track after Close returns ErrClosed.
// Safe for concurrent use.
func (m *Meter) Track(ctx context.Context, events ...Event) error {
	evs := make([]Event, len(events))
	copy(evs, events)
	return m.track(ctx, evs, "")
}

// trackCommit records the event of a reservation's Commit: its id, tenant and resource were
// made or checked by Reserve, so only its quantity and attributes are validated.
func (m *Meter) trackCommit(ctx context.Context, e Event) error {
	if err := e.validateUsage(""); err != nil {
		return err
	}
	e.Time = m.cfg.Now()
	e.Attrs = ownAttrs(e.Attrs)
	req := &request{release: e.ID}
	req.one[0] = e
	req.events = req.one[:]
	return m.submit(ctx, req)
}

// track validates and records events, which it owns from then on; release names a reservation
// whose hold the writer returns in the same step that counts the events.
func (m *Meter) track(ctx context.Context, evs []Event, release string) error {
	if len(evs) == 0 {
		return nil
	}
	now := m.cfg.Now()
	for i := range evs {
		e := &evs[i]
		prefix := ""
		if len(evs) > 1 {
			prefix = "events[" + strconv.Itoa(i) + "]."
		}
		if release == "" {
			if err := e.validate(prefix); err != nil {
				return err
			}
		}
		if e.Time.IsZero() {
			e.Time = now
		} else if err := m.checkTime(e.Time, now, prefix); err != nil {
			return err
		}
		if e.ID == "" {
			e.ID = NewEventID()
		}
		e.Attrs = ownAttrs(e.Attrs)
	}
	return m.submit(ctx, &request{events: evs, release: release})
}

// ownAttrs copies attrs: the caller may reuse its map once Track returns (at once in async mode,
// or after ctx ends in durable mode, while the event may still be committed).
func ownAttrs(attrs map[string]string) map[string]string {
	if attrs == nil {
		return nil
	}
	own := make(map[string]string, len(attrs))
	for k, v := range attrs {
		own[k] = v
	}
	return own
}

// submit hands req to the writer and, in durable mode, waits for its commit.
func (m *Meter) submit(ctx context.Context, req *request) error {
	if !m.cfg.Async {
		req.done = make(chan error, 1)
	}
	if err := m.enqueue(ctx, req); err != nil {
		return err
	}
	if m.cfg.Async {
		return nil
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Meter) checkTime(t, now time.Time, prefix string) error {
	if t.Before(now.Add(-m.cfg.LateWindow)) {
		return fieldErr(ErrInvalidEvent, prefix+"time", "must be at most %v old (Config.LateWindow); got %s, now %s",
			m.cfg.LateWindow, t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if t.After(now.Add(m.cfg.MaxFuture)) {
		return fieldErr(ErrInvalidEvent, prefix+"time", "must be at most %v in the future (Config.MaxFuture); got %s, now %s",
			m.cfg.MaxFuture, t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// request is one Track call waiting for the writer.
type request struct {
	events  []Event
	release string     // reservation id whose hold to return once committed
	done    chan error // nil in async mode
	one     [1]Event   // the storage of events for a single event (a Commit)
}

func (m *Meter) enqueue(ctx context.Context, req *request) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	if m.cfg.Overflow == OverflowReject {
		select {
		case m.queue <- req:
			return nil
		default:
			return ErrBackpressure
		}
	}
	select {
	case m.queue <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writer gathers queued requests into batches and commits each batch in one store transaction,
// until the queue is closed and drained. Up to Config.Writers batches commit at once; while they
// do, requests queue up and the next batch grows.
func (m *Meter) writer() {
	defer close(m.done)
	slots := make(chan struct{}, m.cfg.Writers)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	// A batch with an async request commits alone, after every batch before it: async callers
	// do not wait, so only the queue's order says which of two events with one id came first.
	// Batches of waiting callers only may overlap.
	dispatch := func(batch []*request, ordered bool) {
		if m.cfg.Writers == 1 {
			m.commit(batch)
			return
		}
		if ordered {
			inflight.Wait()
			m.commit(batch)
			<-slots
			return
		}
		own := slices.Clone(batch)
		inflight.Go(func() {
			defer func() { <-slots }()
			m.commit(own)
		})
	}
	var batch []*request
	for {
		first, ok := <-m.queue
		if !ok {
			return
		}
		if m.cfg.Writers > 1 {
			slots <- struct{}{} // wait for a free committer; the queue fills meanwhile
		}
		batch = append(batch[:0], first)
		n, async, lingered := len(first.events), first.done == nil, false
		ordered := async
	gather:
		for n < m.cfg.MaxBatch {
			var r *request
			select {
			case r, ok = <-m.queue:
			default:
				// The queue is empty. A durable caller is waiting: commit now. An async-only
				// batch waits FlushInterval, once, for company. It sleeps rather than waiting
				// on the queue, so that callers only drop requests into its buffer instead of
				// waking the writer one by one.
				if !async || lingered {
					break gather
				}
				lingered = true
				time.Sleep(m.cfg.FlushInterval)
				continue
			}
			if !ok {
				break gather // closed: commit what we have; the next receive returns
			}
			if n+len(r.events) > m.cfg.MaxBatch {
				dispatch(batch, ordered)
				if m.cfg.Writers > 1 {
					slots <- struct{}{}
				}
				batch, n, async, ordered = append(batch[:0], r), 0, true, false
			} else {
				batch = append(batch, r)
			}
			n += len(r.events)
			async = async && r.done == nil
			ordered = ordered || r.done == nil
		}
		dispatch(batch, ordered)
		clear(batch)
	}
}

// commit records a batch and answers its requests. If the batch fails as a whole, each request is
// retried alone, so one bad request cannot fail the others.
func (m *Meter) commit(batch []*request) {
	if len(batch) == 0 {
		return
	}
	if len(batch) > 1 {
		var events []Event
		for _, r := range batch {
			events = append(events, r.events...)
		}
		m.book.commitMu.RLock()
		start := time.Now()
		statuses, err := m.cfg.Store.AppendEvents(context.Background(), m.spec, events)
		m.observeCommit(len(events), time.Since(start), err)
		if err == nil {
			all := statuses
			for _, r := range batch {
				m.applied(r, all[:len(r.events)])
				all = all[len(r.events):]
			}
		}
		m.book.commitMu.RUnlock()
		if err == nil {
			for _, r := range batch {
				m.answer(r, statuses[:len(r.events)], nil)
				statuses = statuses[len(r.events):]
			}
			return
		}
	}
	for _, r := range batch {
		m.commitOne(r)
	}
}

// asyncRetries is how many times an async request is retried after a failed commit, with
// exponential backoff starting at asyncBackoff.
const (
	asyncRetries = 5
	asyncBackoff = 50 * time.Millisecond
)

func (m *Meter) commitOne(r *request) {
	statuses, err := m.append(r)
	if err != nil && r.done == nil {
		wait := asyncBackoff
		for i := 0; i < asyncRetries && err != nil && !errors.Is(err, ErrPeriodClosed); i++ {
			time.Sleep(wait)
			wait *= 2
			statuses, err = m.append(r)
		}
	}
	m.answer(r, statuses, err)
}

// append commits one request and applies it to the quota book.
func (m *Meter) append(r *request) ([]AppendStatus, error) {
	m.book.commitMu.RLock()
	defer m.book.commitMu.RUnlock()
	start := time.Now()
	statuses, err := m.cfg.Store.AppendEvents(context.Background(), m.spec, r.events)
	m.observeCommit(len(r.events), time.Since(start), err)
	if err == nil {
		m.applied(r, statuses)
	}
	return statuses, err
}

// applied tells the Quota and the alerter about a committed request. The built-in Quota counts
// the events and returns the request's reservation hold in one step; a shared Quota counts
// through the Store, so it is only told to release the hold, and the alerter checks the rules.
func (m *Meter) applied(r *request, statuses []AppendStatus) {
	if m.localQuota {
		m.book.apply(r.events, statuses, r.release)
		return
	}
	for i := range r.events {
		if statuses[i] == AppendInserted {
			m.alerts.check(RateKey{Tenant: r.events[i].Tenant, Resource: r.events[i].Resource})
		}
	}
	if r.release != "" {
		e := &r.events[0]
		if err := m.quota.Release(context.Background(), RateKey{Tenant: e.Tenant, Resource: e.Resource}, r.release); err != nil {
			m.cfg.Logger.Warn("billing: cannot release reservation; it expires at its TTL", "id", r.release, "err", err)
		}
	}
}

// answer reports the outcome of one request to its caller (durable) or to OnError (async).
func (m *Meter) answer(r *request, statuses []AppendStatus, err error) {
	m.stats.answered(statuses, len(r.events), err)
	if err == nil {
		var conflicts, closed []Event
		for i, s := range statuses {
			switch s {
			case AppendConflict:
				conflicts = append(conflicts, r.events[i])
			case AppendClosed:
				closed = append(closed, r.events[i])
			}
		}
		var errs []error
		if conflicts != nil {
			errs = append(errs, &EventConflictError{Events: conflicts})
		}
		if closed != nil {
			errs = append(errs, &PeriodClosedError{Events: closed})
		}
		if len(errs) == 1 {
			err = errs[0]
		} else if len(errs) > 1 {
			err = errors.Join(errs...)
		}
	} else if r.done == nil {
		err = fmt.Errorf("billing: %d async events not recorded: %w", len(r.events), err)
	}
	if r.done != nil {
		r.done <- err
	} else if err != nil {
		m.cfg.OnError(err)
	}
}

// observeCommit counts one store transaction of n events for Stats.
func (m *Meter) observeCommit(n int, d time.Duration, err error) {
	if err != nil {
		m.stats.commitErrors.Add(1)
		return
	}
	m.stats.committed(n, d)
}
