package billing_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

// errorLog collects what a Meter reports to Config.OnError.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errorLog) get() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

func event(id, tenant string, qty int64, attrs map[string]string) billing.Event {
	return billing.Event{ID: id, Tenant: tenant, Resource: "tokens.output", Quantity: qty, Time: fixedNow.Add(-time.Minute), Attrs: attrs}
}

// trackReturns runs Track and fails the test if it has not returned within 10 seconds.
func trackReturns(t *testing.T, m *billing.Meter, ctx context.Context, events ...billing.Event) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- m.Track(ctx, events...) }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Track did not return")
		return nil
	}
}

// groups returns the all-time usage of tenant by model: model -> "sum/count".
func groups(t *testing.T, m *billing.Meter, tenant string) map[string]string {
	t.Helper()
	rows, err := m.Usage(context.Background(), billing.UsageQuery{Tenant: tenant, GroupBy: []string{"model", "extra"}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rows {
		out[r.Group["model"]+"|"+r.Group["extra"]] = fmt.Sprintf("%d/%d", r.Sum, r.Count)
	}
	return out
}

// Async Track returns while its events are still waiting for the writer, and owns a copy of
// their attributes: the caller may reuse its map at once.
func TestAsyncReturnsBeforeCommitAndCopiesAttrs(t *testing.T) {
	st := openStore(t)
	g := newGate()
	hs := &hookStore{Store: st, before: g.hook}
	m := newMeter(t, billing.Config{Store: hs, Async: true})
	ctx := context.Background()

	attrs := map[string]string{"model": "gpt-4o"}
	if err := trackReturns(t, m, ctx, event("a1", "acme", 5, attrs)); err != nil {
		t.Fatal(err)
	}
	g.waitEntered(t) // the writer holds the event, not yet committed
	if err := trackReturns(t, m, ctx, event("a2", "acme", 7, attrs)); err != nil {
		t.Fatal(err)
	}
	if sum, n := sumOf(t, m, "acme", "tokens.output"); sum != 0 || n != 0 {
		t.Fatalf("usage before the commit = %d of %d events, want nothing yet", sum, n)
	}
	// The caller reuses its map for the next request.
	attrs["model"] = "mutated"
	attrs["extra"] = "x"
	delete(attrs, "model")

	close(g.release)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"gpt-4o|": "12/2"}
	if d := cmp.Diff(want, groups(t, m, "acme")); d != "" {
		t.Errorf("recorded groups (-want +got):\n%s", d)
	}
}

// A durable Track whose context ends while it waits may still commit (as documented), so the
// queued event must not share the caller's attribute map either.
func TestDurableTrackCanceledCopiesAttrs(t *testing.T) {
	st := openStore(t)
	g := newGate()
	hs := &hookStore{Store: st, before: g.hook}
	m := newMeter(t, billing.Config{Store: hs})

	attrs := map[string]string{"model": "gpt-4o"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := trackReturns(t, m, ctx, event("d1", "acme", 5, attrs))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Track = %v, want context.DeadlineExceeded", err)
	}
	g.waitEntered(t)
	attrs["model"] = "mutated"

	close(g.release)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// The event was handed to the writer, so it is recorded, with the attributes it had.
	if d := cmp.Diff(map[string]string{"gpt-4o|": "5/1"}, groups(t, m, "acme")); d != "" {
		t.Errorf("recorded groups (-want +got):\n%s", d)
	}
	// Retrying with the same id, as the doc advises, does not count it twice.
	m2 := newMeter(t, billing.Config{Store: st})
	if err := m2.Track(context.Background(), event("d1", "acme", 5, map[string]string{"model": "gpt-4o"})); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if sum, n := sumOf(t, m2, "acme", "tokens.output"); sum != 5 || n != 1 {
		t.Errorf("after retry: %d of %d events, want 5 of 1", sum, n)
	}
}

// blockedMeter returns an async Meter with a queue of one call whose writer is stuck committing
// the call "first"; one more call ("second") fills the queue.
func blockedMeter(t *testing.T, overflow billing.Overflow) (*billing.Meter, *gate) {
	t.Helper()
	g := newGate()
	hs := &hookStore{Store: openStore(t), before: g.hook}
	m := newMeter(t, billing.Config{Store: hs, Async: true, QueueSize: 1, Overflow: overflow})
	ctx := context.Background()
	if err := trackReturns(t, m, ctx, event("first", "acme", 1, nil)); err != nil {
		t.Fatal(err)
	}
	g.waitEntered(t)
	if err := trackReturns(t, m, ctx, event("second", "acme", 2, nil)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release) // let the writer finish, so Close in cleanups returns
		}
	})
	return m, g
}

func TestAsyncOverflowReject(t *testing.T) {
	m, g := blockedMeter(t, billing.OverflowReject)
	ctx := context.Background()

	rejected := []billing.Event{event("r1", "rejected", 10, nil), event("r2", "rejected", 20, nil)}
	for i := 0; i < 3; i++ {
		err := trackReturns(t, m, ctx, rejected...)
		if !errors.Is(err, billing.ErrBackpressure) {
			t.Fatalf("Track on a full queue = %v, want ErrBackpressure", err)
		}
	}
	close(g.release)
	// Once there is room, the same call goes through: retrying later works.
	waitFor(t, "room in the queue", func() bool {
		return !errors.Is(m.Track(ctx, event("later", "later", 3, nil)), billing.ErrBackpressure)
	})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if sum, n := sumOf(t, m, "acme", "tokens.output"); sum != 3 || n != 2 {
		t.Errorf("accepted calls: %d of %d events, want 3 of 2", sum, n)
	}
	if sum, n := sumOf(t, m, "rejected", ""); sum != 0 || n != 0 {
		t.Errorf("rejected calls recorded %d of %d events, want nothing", sum, n)
	}
	if sum, n := sumOf(t, m, "later", ""); sum != 3 || n != 1 {
		t.Errorf("later call: %d of %d events, want 3 of 1", sum, n)
	}
}

func TestAsyncOverflowBlockHonoursContext(t *testing.T) {
	m, g := blockedMeter(t, billing.OverflowBlock)

	// A deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := trackReturns(t, m, ctx, event("t1", "timedout", 10, nil)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Track on a full queue with a deadline = %v, want context.DeadlineExceeded", err)
	}
	// A cancellation while waiting.
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel2)
	if err := trackReturns(t, m, ctx2, event("c1", "canceled", 10, nil)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Track on a full queue, canceled = %v, want context.Canceled", err)
	}
	// Without a deadline, Track waits for room instead of dropping.
	blocked := make(chan error, 1)
	go func() { blocked <- m.Track(context.Background(), event("w1", "waited", 4, nil)) }()
	select {
	case err := <-blocked:
		t.Fatalf("Track returned %v with the queue full; OverflowBlock must wait", err)
	case <-time.After(30 * time.Millisecond):
	}
	close(g.release)
	if err := <-blocked; err != nil {
		t.Fatalf("blocked Track = %v, want nil once there is room", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for tenant, want := range map[string][2]int64{"acme": {3, 2}, "waited": {4, 1}, "timedout": {0, 0}, "canceled": {0, 0}} {
		if sum, n := sumOf(t, m, tenant, ""); sum != want[0] || n != want[1] {
			t.Errorf("%s: %d of %d events, want %d of %d", tenant, sum, n, want[0], want[1])
		}
	}
}

var errTransient = errors.New("disk I/O error (test)")

// Transient commit failures of async events are retried until they succeed, silently.
func TestAsyncRetriesTransientFailures(t *testing.T) {
	const failures = 3
	hs := &hookStore{Store: openStore(t), before: func(call int, _ []billing.Event) error {
		if call <= failures {
			return errTransient
		}
		return nil
	}}
	var log errorLog
	m := newMeter(t, billing.Config{Store: hs, Async: true, OnError: log.add})
	if err := m.Track(context.Background(), event("x1", "acme", 9, nil), event("x2", "acme", 1, nil)); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil { // Close waits for the retries
		t.Fatal(err)
	}
	if errs := log.get(); len(errs) != 0 {
		t.Errorf("OnError got %v; a failure that a retry fixed is not an error", errs)
	}
	calls := hs.Calls()
	if len(calls) != failures+1 {
		t.Errorf("AppendEvents called %d times, want %d failures and one success", len(calls), failures+1)
	}
	for _, c := range calls {
		if !cmp.Equal(c, []string{"x1", "x2"}) {
			t.Errorf("a retry committed %v, want the whole call [x1 x2]", c)
		}
	}
	if sum, n := sumOf(t, m, "acme", ""); sum != 10 || n != 2 {
		t.Errorf("usage = %d of %d events, want 10 of 2", sum, n)
	}
}

var errPoison = errors.New("constraint failed (test poison)")

// A request that can never be committed is retried, then reported to OnError with its cause; the
// requests batched with it are committed all the same.
func TestAsyncPermanentFailureIsReported(t *testing.T) {
	g := newGate()
	hs := &hookStore{Store: openStore(t), before: func(call int, events []billing.Event) error {
		g.hook(call, events)
		for _, e := range events {
			if e.ID == "poison" {
				return errPoison
			}
		}
		return nil
	}}
	var log errorLog
	m := newMeter(t, billing.Config{Store: hs, Async: true, OnError: log.add})
	ctx := context.Background()
	if err := m.Track(ctx, event("block", "acme", 1, nil)); err != nil {
		t.Fatal(err)
	}
	g.waitEntered(t)
	for _, e := range []billing.Event{event("ok1", "acme", 10, nil), event("poison", "acme", 100, nil), event("ok2", "acme", 1000, nil)} {
		if err := m.Track(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	close(g.release)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	errs := log.get()
	if len(errs) != 1 {
		t.Fatalf("OnError got %d errors %v, want exactly one", len(errs), errs)
	}
	if !errors.Is(errs[0], errPoison) || !strings.Contains(errs[0].Error(), "not recorded") {
		t.Errorf("OnError got %q; want it to wrap the store's error and say the events were not recorded", errs[0])
	}
	if sum, n := sumOf(t, m, "acme", ""); sum != 1011 || n != 3 {
		t.Errorf("usage = %d of %d events, want 1011 of 3 (all but the poison)", sum, n)
	}
	// The three queued calls shared a transaction first; the poison was then retried alone.
	calls := hs.Calls()
	if !slices.ContainsFunc(calls, func(c []string) bool { return cmp.Equal(c, []string{"ok1", "poison", "ok2"}) }) {
		t.Errorf("calls %v: the queued requests were never batched, so the test proves nothing", calls)
	}
	alone := 0
	for _, c := range calls {
		if cmp.Equal(c, []string{"poison"}) {
			alone++
		}
	}
	if alone < 2 {
		t.Errorf("the failing request was tried alone %d times, want a first try and retries", alone)
	}
}

// ErrPeriodClosed cannot be fixed by retrying: it is reported at once.
func TestAsyncPeriodClosedIsNotRetried(t *testing.T) {
	hs := &hookStore{Store: openStore(t), before: func(int, []billing.Event) error {
		return fmt.Errorf("invoice 2026-02 finalized: %w", billing.ErrPeriodClosed)
	}}
	var log errorLog
	m := newMeter(t, billing.Config{Store: hs, Async: true, OnError: log.add})
	if err := m.Track(context.Background(), event("late", "acme", 1, nil)); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if errs := log.get(); len(errs) != 1 || !errors.Is(errs[0], billing.ErrPeriodClosed) {
		t.Errorf("OnError got %v, want one ErrPeriodClosed", errs)
	}
	if n := len(hs.Calls()); n != 1 {
		t.Errorf("AppendEvents called %d times, want 1", n)
	}
}

// Durable calls that share a batch do not share a failure: only the call whose event cannot be
// committed gets the error.
func TestDurableBatchIsolatesFailingRequest(t *testing.T) {
	g := newGate()
	hs := &hookStore{Store: openStore(t), before: func(call int, events []billing.Event) error {
		g.hook(call, events)
		for _, e := range events {
			if e.ID == "poison" {
				return errPoison
			}
		}
		return nil
	}}
	m := newMeter(t, billing.Config{Store: hs})
	ctx := context.Background()

	blockDone := make(chan error, 1)
	go func() { blockDone <- m.Track(ctx, event("block", "acme", 1, nil)) }()
	g.waitEntered(t)

	ids := []string{"ok0", "ok1", "poison", "ok2", "ok3"}
	results := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = m.Track(ctx, event(id, "acme", 10, nil), event(id+"-b", "acme", 1, nil))
		}()
	}
	waitFor(t, "all calls queued", func() bool { return billing.QueueLen(m) == len(ids) })
	close(g.release)
	wg.Wait()
	if err := <-blockDone; err != nil {
		t.Fatal(err)
	}

	for i, id := range ids {
		if id == "poison" {
			if !errors.Is(results[i], errPoison) {
				t.Errorf("Track(poison) = %v, want the store's error", results[i])
			}
		} else if results[i] != nil {
			t.Errorf("Track(%s) = %v, want nil: it was batched with a failing call", id, results[i])
		}
	}
	if sum, n := sumOf(t, m, "acme", ""); sum != 1+4*11 || n != 1+4*2 {
		t.Errorf("usage = %d of %d events, want %d of %d", sum, n, 1+4*11, 1+4*2)
	}
	var batched bool
	for _, c := range hs.Calls() {
		batched = batched || len(c) == 2*len(ids)
	}
	if !batched {
		t.Errorf("calls %v: the queued requests were never batched, so the test proves nothing", hs.Calls())
	}
}
