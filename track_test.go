package billing_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

// Retrying with the same ids is a no-op; the same id with different content is reported as a
// conflict naming the events, while the rest of the call is recorded.
func TestTrackDuplicatesAndConflicts(t *testing.T) {
	m := newMeter(t, billing.Config{})
	ctx := context.Background()
	gpt := map[string]string{"model": "gpt-4o"}
	first := []billing.Event{event("e1", "acme", 10, gpt), event("e2", "acme", 20, gpt)}
	if err := m.Track(ctx, first...); err != nil {
		t.Fatal(err)
	}
	// The retry: same ids, same content, also repeated inside the call.
	if err := m.Track(ctx, first[0], first[1], first[0]); err != nil {
		t.Fatalf("retry = %v, want nil", err)
	}
	// The same id of another tenant is another event.
	if err := m.Track(ctx, event("e1", "globex", 5, gpt)); err != nil {
		t.Fatal(err)
	}
	// Conflicts: another quantity, other attributes, another resource.
	qty := event("e1", "acme", 11, gpt)
	attrs := event("e2", "acme", 20, map[string]string{"model": "gpt-4o-mini"})
	res := event("e2", "acme", 20, gpt)
	res.Resource = "tokens.input"
	fresh := event("e3", "acme", 3, gpt)
	err := m.Track(ctx, qty, fresh, attrs, res)
	var ce *billing.EventConflictError
	if !errors.Is(err, billing.ErrEventConflict) || !errors.As(err, &ce) {
		t.Fatalf("Track with conflicting ids = %v, want an *EventConflictError", err)
	}
	if d := cmp.Diff([]billing.Event{qty, attrs, res}, ce.Events); d != "" {
		t.Errorf("conflicting events (-want +got):\n%s", d)
	}
	want := map[string]string{"gpt-4o|": "33/3"}
	if d := cmp.Diff(want, groups(t, m, "acme")); d != "" {
		t.Errorf("acme usage (-want +got):\n%s", d)
	}
	if sum, n := sumOf(t, m, "acme", "tokens.input"); n != 0 {
		t.Errorf("the conflicting resource was recorded: %d of %d", sum, n)
	}
	if sum, n := sumOf(t, m, "globex", ""); sum != 5 || n != 1 {
		t.Errorf("globex: %d of %d events, want 5 of 1", sum, n)
	}
}

// In async mode nobody waits for the answer, so conflicts go to OnError.
func TestAsyncConflictGoesToOnError(t *testing.T) {
	var log errorLog
	st := openStore(t)
	m := newMeter(t, billing.Config{Store: st, Async: true, OnError: log.add})
	ctx := context.Background()
	if err := m.Track(ctx, event("e1", "acme", 10, nil)); err != nil {
		t.Fatal(err)
	}
	if err := m.Track(ctx, event("e1", "acme", 10, nil), event("e2", "acme", 1, nil)); err != nil {
		t.Fatal(err)
	}
	if err := m.Track(ctx, event("e1", "acme", 99, nil)); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	errs := log.get()
	var ce *billing.EventConflictError
	if len(errs) != 1 || !errors.As(errs[0], &ce) || len(ce.Events) != 1 || ce.Events[0].Quantity != 99 {
		t.Fatalf("OnError got %v, want one conflict for the event of quantity 99", errs)
	}
	if sum, n := sumOf(t, m, "acme", ""); sum != 11 || n != 2 {
		t.Errorf("usage = %d of %d events, want 11 of 2", sum, n)
	}
}

// A durable Track returns only once its events are committed.
func TestDurableTrackWaitsForCommit(t *testing.T) {
	g := newGate()
	m := newMeter(t, billing.Config{Store: &hookStore{Store: openStore(t), before: g.hook}})
	done := make(chan error, 1)
	go func() { done <- m.Track(context.Background(), event("d1", "acme", 3, nil)) }()
	g.waitEntered(t)
	select {
	case err := <-done:
		t.Fatalf("durable Track returned %v before its commit", err)
	case <-time.After(30 * time.Millisecond):
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Returned means committed: visible at once.
	if sum, n := sumOf(t, m, "acme", ""); sum != 3 || n != 1 {
		t.Errorf("usage right after Track = %d of %d events, want 3 of 1", sum, n)
	}
}

// The writer commits queued calls together, in order, up to MaxBatch events per transaction, and
// never splits a call: a call larger than MaxBatch commits alone.
func TestWriterBatchesCalls(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) {
			g := newGate()
			hs := &hookStore{Store: openStore(t), before: g.hook}
			const maxBatch = 10
			m := newMeter(t, billing.Config{Store: hs, Async: async, MaxBatch: maxBatch})
			ctx := context.Background()

			go m.Track(ctx, event("block", "acme", 1, nil))
			g.waitEntered(t)
			sizes := []int{3, 3, 3, 3, 25, 2, 4, 4, 10, 1}
			var calls [][]string
			errs := make(chan error, len(sizes))
			for i, n := range sizes {
				var evs []billing.Event
				var ids []string
				for j := 0; j < n; j++ {
					id := fmt.Sprintf("c%d-%d", i, j)
					evs = append(evs, event(id, "acme", 1, nil))
					ids = append(ids, id)
				}
				calls = append(calls, ids)
				go func() { errs <- m.Track(ctx, evs...) }()
				// One call at a time, so that the queue holds them in this order.
				waitFor(t, "the call to be queued", func() bool { return billing.QueueLen(m) == i+1 })
			}
			close(g.release)
			for range sizes {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}

			commits := hs.Calls()[1:] // after the blocking call
			var flat []string
			for _, c := range commits {
				if len(c) > maxBatch && len(c) != 25 {
					t.Errorf("a commit of %d events exceeds MaxBatch", len(c))
				}
				flat = append(flat, c...)
			}
			var want []string
			for _, c := range calls {
				want = append(want, c...)
			}
			if d := cmp.Diff(want, flat); d != "" {
				t.Fatalf("committed events out of order (-queued +committed):\n%s", d)
			}
			// Each call lies inside one commit.
			for _, call := range calls {
				whole := false
				for _, c := range commits {
					for k := 0; k+len(call) <= len(c) && !whole; k++ {
						whole = cmp.Equal(c[k:k+len(call)], call)
					}
				}
				if !whole {
					t.Errorf("call %v was split across commits %v", call, commits)
				}
			}
			if len(commits) >= len(sizes) {
				t.Errorf("%d commits for %d queued calls: nothing was batched", len(commits), len(sizes))
			}
			if _, n := sumOf(t, m, "acme", ""); n != 1+58 {
				t.Errorf("%d events recorded, want %d", n, 1+58)
			}
		})
	}
}
