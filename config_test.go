package billing_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

func TestNewWithoutStoreSuggestsSQLite(t *testing.T) {
	m, err := billing.New(billing.Config{})
	if m != nil {
		t.Errorf("New returned a Meter with its error")
	}
	if !errors.Is(err, billing.ErrInvalidConfig) {
		t.Fatalf("New(Config{}) = %v, want ErrInvalidConfig", err)
	}
	for _, s := range []string{"Store", "sqlite.Open"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q does not mention %q", err, s)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(c *billing.Config)
		field string
		rule  []string
	}{
		{"negative FlushInterval", func(c *billing.Config) { c.FlushInterval = -time.Millisecond }, "FlushInterval", []string{"must not be negative", "-1ms", "use 0 for the default 2ms"}},
		{"negative LateWindow", func(c *billing.Config) { c.LateWindow = -1 }, "LateWindow", []string{"must not be negative"}},
		{"negative MaxFuture", func(c *billing.Config) { c.MaxFuture = -time.Hour }, "MaxFuture", []string{"must not be negative", "-1h0m0s"}},
		{"negative MaxBatch", func(c *billing.Config) { c.MaxBatch = -1 }, "MaxBatch", []string{"must not be negative", "got -1", "default 1000"}},
		{"negative QueueSize", func(c *billing.Config) { c.QueueSize = -10 }, "QueueSize", []string{"must not be negative", "got -10", "default 4096"}},
		{"unknown Overflow", func(c *billing.Config) { c.Overflow = 7 }, "Overflow", []string{"OverflowBlock or OverflowReject", "got 7"}},
		{"empty dimension", func(c *billing.Config) { c.Dimensions = []string{"model", ""} }, "Dimensions[1]", []string{"must not be empty"}},
		{"dimension with space", func(c *billing.Config) { c.Dimensions = []string{"the model"} }, "Dimensions[0]", []string{"ASCII letters", "' '"}},
		{"dimension non-ASCII", func(c *billing.Config) { c.Dimensions = []string{"model", "région"} }, "Dimensions[1]", []string{"ASCII letters"}},
		{"dimension too long", func(c *billing.Config) { c.Dimensions = []string{strings.Repeat("d", 65)} }, "Dimensions[0]", []string{"at most 64 bytes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := billing.Config{Store: openStore(t)}
			tc.edit(&cfg)
			m, err := billing.New(cfg)
			if m != nil {
				m.Close()
				t.Errorf("New returned a Meter with its error")
			}
			requireFieldError(t, err, billing.ErrInvalidConfig, tc.field, tc.rule...)
		})
	}
}

// The zero Config with a Store works: defaults are filled, events are tracked durably and
// bucketed in UTC, on the real clock.
func TestZeroConfigWorks(t *testing.T) {
	st := openStore(t)
	m, err := billing.New(billing.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Location() != time.UTC {
		t.Errorf("Location() = %v, want UTC", m.Location())
	}
	before := time.Now()
	if d := m.Now().Sub(before); d < 0 || d > time.Minute {
		t.Errorf("Now() is %v from time.Now", d)
	}
	ctx := context.Background()
	if err := m.Track(ctx, billing.Event{Tenant: "acme", Resource: "requests", Quantity: 1},
		billing.Event{Tenant: "acme", Resource: "requests", Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	// Durable by default: the events are visible as soon as Track returns.
	if sum, n := sumOf(t, m, "acme", "requests"); sum != 3 || n != 2 {
		t.Errorf("usage = %d of %d events, want 3 of 2", sum, n)
	}
	rows, err := m.Usage(ctx, billing.UsageQuery{Tenant: "acme", Window: billing.PeriodDay})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Start.Location() != time.UTC || rows[0].End.Sub(rows[0].Start) != 24*time.Hour {
		t.Errorf("day rows = %+v, want one UTC day", rows)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	m := newMeter(t, billing.Config{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
	}
	wg.Wait()
	if err := m.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
}

func TestTrackAfterClose(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) {
			m := newMeter(t, billing.Config{Async: async})
			ctx := context.Background()
			if err := m.Track(ctx, validEvent()); err != nil {
				t.Fatal(err)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			err := m.Track(ctx, validEvent())
			if !errors.Is(err, billing.ErrClosed) {
				t.Fatalf("Track after Close = %v, want ErrClosed", err)
			}
			// Validation still comes first: a bad event says what is wrong with it.
			bad := validEvent()
			bad.Quantity = 0
			requireFieldError(t, m.Track(ctx, bad), billing.ErrInvalidEvent, "quantity")
			// Queries keep working on the store.
			if sum, n := sumOf(t, m, "acme", "tokens.output"); sum != 10 || n != 1 {
				t.Errorf("usage after Close = %d of %d, want 10 of 1", sum, n)
			}
		})
	}
}

// Close drains: every event an async Track accepted is in the store when Close returns, as a new
// Meter on the same store and a reopened database file both see. The writer is held in its first
// commit until Close has been called, so nearly all events are still queued when Close starts.
func TestCloseDrainsAsyncQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "billing.db")
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := newGate()
	hs := &hookStore{Store: st, before: g.hook}
	m, err := billing.New(billing.Config{Store: hs, Now: fixedClock, Async: true, MaxBatch: 7})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const calls, perCall = 300, 3
	for i := 0; i < calls; i++ {
		evs := make([]billing.Event, perCall)
		for j := range evs {
			evs[j] = billing.Event{ID: fmt.Sprintf("e-%d-%d", i, j), Tenant: "acme", Resource: "requests", Quantity: 1,
				Time: fixedNow.Add(-time.Duration(i) * time.Minute)}
		}
		if err := m.Track(ctx, evs...); err != nil {
			t.Fatalf("Track %d: %v", i, err)
		}
	}
	g.waitEntered(t)
	closed := make(chan error)
	go func() { closed <- m.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while the writer was still holding queued events", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(g.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if n := len(hs.Calls()); n < calls*perCall/7 {
		t.Errorf("%d commits; batches of at most 7 events need at least %d", n, calls*perCall/7)
	}

	m2 := newMeter(t, billing.Config{Store: st})
	if sum, n := sumOf(t, m2, "acme", "requests"); sum != calls*perCall || n != calls*perCall {
		t.Errorf("after Close, a new Meter sees %d of %d events, want %d", n, sum, calls*perCall)
	}
	m2.Close()
	st.Close()

	st3, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st3.Close()
	m3 := newMeter(t, billing.Config{Store: st3})
	if sum, n := sumOf(t, m3, "acme", "requests"); sum != calls*perCall || n != calls*perCall {
		t.Errorf("reopened file has %d of %d events, want %d", n, sum, calls*perCall)
	}
}

// Track racing with Close either fails with ErrClosed or is drained: never accepted and lost.
func TestCloseRacingTrack(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) {
			st := openStore(t)
			m, err := billing.New(billing.Config{Store: st, Now: fixedClock, Async: async, QueueSize: 8})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var (
				wg       sync.WaitGroup
				mu       sync.Mutex
				accepted int64
				started  = make(chan struct{})
				once     sync.Once
			)
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer once.Do(func() { close(started) })
					for i := 0; ; i++ {
						if i == 20 {
							once.Do(func() { close(started) })
						}
						e := billing.Event{ID: fmt.Sprintf("g%d-%d", g, i), Tenant: "acme", Resource: "requests", Quantity: 1, Time: fixedNow}
						err := m.Track(ctx, e)
						if errors.Is(err, billing.ErrClosed) {
							return
						}
						if err != nil {
							t.Errorf("Track: %v", err)
							return
						}
						mu.Lock()
						accepted++
						mu.Unlock()
					}
				}()
			}
			<-started
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			m2 := newMeter(t, billing.Config{Store: st})
			if _, n := sumOf(t, m2, "acme", "requests"); n != accepted {
				t.Errorf("store has %d events, Track accepted %d", n, accepted)
			}
		})
	}
}
