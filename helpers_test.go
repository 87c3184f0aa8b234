package billing_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	_ "time/tzdata" // the zones of the period tests, whatever the host has installed

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// fixedNow is the clock of most tests: a Sunday in March 2026, noon UTC.
var fixedNow = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return fixedNow }

// openStore opens a private in-memory SQLite store, closed when the test ends.
func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(":memory:")
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newMeter opens a Meter on cfg (a fresh in-memory store when cfg.Store is nil, and the fixed
// clock when cfg.Now is nil); it is closed when the test ends, before its store.
func newMeter(t testing.TB, cfg billing.Config) *billing.Meter {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = openStore(t)
	}
	if cfg.Now == nil {
		cfg.Now = fixedClock
	}
	m, err := billing.New(cfg)
	if err != nil {
		t.Fatalf("billing.New: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// totals returns the all-time usage of every tenant and resource, split by every attribute the
// test uses, so that any recorded change shows.
func totals(t testing.TB, m *billing.Meter) []billing.UsageRow {
	t.Helper()
	rows, err := m.Usage(context.Background(), billing.UsageQuery{})
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	return rows
}

// sumOf returns the all-time (sum, count) of tenant's resource.
func sumOf(t testing.TB, m *billing.Meter, tenant, resource string) (sum, count int64) {
	t.Helper()
	rows, err := m.Usage(context.Background(), billing.UsageQuery{Tenant: tenant, Resource: resource})
	if err != nil {
		t.Fatalf("Usage(%s, %s): %v", tenant, resource, err)
	}
	for _, r := range rows {
		sum += r.Sum
		count += r.Count
	}
	return sum, count
}

// requireFieldError checks that err is a *FieldError of kind with the given field, whose rule
// contains every one of ruleParts, and whose message names the field.
func requireFieldError(t testing.TB, err, kind error, field string, ruleParts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v on field %q", kind, field)
	}
	if !errors.Is(err, kind) {
		t.Errorf("errors.Is(%v, %v) = false", err, kind)
	}
	var fe *billing.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *billing.FieldError", err, err)
	}
	if fe.Field != field {
		t.Errorf("Field = %q, want %q (error: %v)", fe.Field, field, err)
	}
	for _, p := range ruleParts {
		if !strings.Contains(fe.Rule, p) {
			t.Errorf("Rule = %q, want it to contain %q", fe.Rule, p)
		}
	}
	if !strings.Contains(err.Error(), field+": ") {
		t.Errorf("message %q does not name the field %q", err.Error(), field)
	}
}

// hookStore wraps a real store to control the timing and failures of AppendEvents. It records
// every call; before, when set, runs first and fails the call if it returns an error.
type hookStore struct {
	billing.Store

	mu     sync.Mutex
	calls  [][]string // the event ids of every AppendEvents call, in order
	before func(call int, events []billing.Event) error
}

func (s *hookStore) AppendEvents(ctx context.Context, spec billing.RollupSpec, events []billing.Event) ([]billing.AppendStatus, error) {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	s.mu.Lock()
	s.calls = append(s.calls, ids)
	n, before := len(s.calls), s.before
	s.mu.Unlock()
	if before != nil {
		if err := before(n, events); err != nil {
			return nil, err
		}
	}
	return s.Store.AppendEvents(ctx, spec, events)
}

// Calls returns a copy of the ids of every AppendEvents call so far.
func (s *hookStore) Calls() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]string, len(s.calls))
	for i, c := range s.calls {
		out[i] = append([]string(nil), c...)
	}
	return out
}

// gate makes the first AppendEvents call of a hookStore block: entered is closed when the call
// arrives, and the call proceeds when release is closed.
type gate struct {
	entered, release chan struct{}
	once             sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) hook(call int, _ []billing.Event) error {
	if call == 1 {
		g.once.Do(func() { close(g.entered) })
		<-g.release
	}
	return nil
}

// waitEntered waits until the gated call has reached the store.
func (g *gate) waitEntered(t testing.TB) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never called AppendEvents")
	}
}

// waitFor polls cond until it holds or 10 seconds pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
