package billing_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// invPlanP is a one-price plan: requests at 1.00 USD each.
var invPlanP = billing.Plan{ID: "p", Currency: "USD", Prices: []billing.Price{
	{Resource: "requests", Model: billing.PerUnit, UnitPrice: invD("1")}}}

// invBody returns the JSON the store keeps for invoice id: what must never change once final.
func invBody(t testing.TB, st *sqlite.Store, id string) string {
	t.Helper()
	var body string
	if err := st.DB().Get(&body, `SELECT body FROM invoices WHERE id = ?`, id); err != nil {
		t.Fatalf("read stored invoice %s: %v", id, err)
	}
	return body
}

// invEventCount returns the number of raw events stored.
func invEventCount(t testing.TB, st *sqlite.Store) int {
	t.Helper()
	var n int
	if err := st.DB().Get(&n, `SELECT count(*) FROM events`); err != nil {
		t.Fatal(err)
	}
	return n
}

// invOpenFile opens a file store at path, closed when the test ends.
func invOpenFile(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("sqlite.Open(%s): %v", path, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// invGenerate generates tenant's invoice for span and fails the test on error.
func invGenerate(t testing.TB, m *billing.Meter, tenant string, span billing.Span) *billing.Invoice {
	t.Helper()
	inv, err := m.GenerateInvoice(context.Background(), tenant, span)
	if err != nil {
		t.Fatalf("GenerateInvoice(%s, %s): %v", tenant, span, err)
	}
	return inv
}

// invFinalize finalizes id and fails the test on error.
func invFinalize(t testing.TB, m *billing.Meter, id string) *billing.Invoice {
	t.Helper()
	inv, err := m.FinalizeInvoice(context.Background(), id)
	if err != nil {
		t.Fatalf("FinalizeInvoice(%s): %v", id, err)
	}
	return inv
}

// invQuantity is the quantity of the invoice's first line (invPlanP's requests).
func invQuantity(inv *billing.Invoice) int64 {
	if len(inv.Lines) == 0 {
		return -1
	}
	return inv.Lines[0].Quantity
}

// invRun runs m.Run in the background until the test ends (stopped before m is closed).
func invRun(t *testing.T, m *billing.Meter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil when its context ends", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

// invOf returns the invoices of tenant (any status), or fails the test.
func invOf(t testing.TB, m *billing.Meter, tenant string) []*billing.Invoice {
	t.Helper()
	invs, err := m.Invoices(context.Background(), billing.InvoiceQuery{Tenant: tenant})
	if err != nil {
		t.Fatalf("Invoices(%s): %v", tenant, err)
	}
	return invs
}

func TestInvoiceLifecycleGenerateIsIdempotent(t *testing.T) {
	ctx := context.Background()
	m, clock := invMeter(t, billing.Config{DefaultPlan: "p"}, invAt(20, 0, 0))
	invSetPlan(t, m, invPlanP)
	invTrack(t, m, invEv("requests", 5, invAt(10, 0, 0)))
	first := invGenerate(t, m, "acme", invFeb)
	again := invGenerate(t, m, "acme", invFeb)
	if again.ID != first.ID {
		t.Fatalf("regenerating gave ID %s, want the draft's %s", again.ID, first.ID)
	}
	invTrack(t, m, invEv("requests", 7, invAt(20, 0, 0)))
	clock.Set(invAt(21, 0, 0))
	third := invGenerate(t, m, "acme", invFeb)
	if third.ID != first.ID || invQuantity(third) != 12 || !third.Created.Equal(invAt(21, 0, 0)) {
		t.Errorf("regenerated draft: ID %s (want %s), quantity %d (want 12), created %s", third.ID, first.ID,
			invQuantity(third), third.Created)
	}
	if invs := invOf(t, m, "acme"); len(invs) != 1 || invQuantity(invs[0]) != 12 || invs[0].Status != billing.InvoiceDraft {
		t.Errorf("stored invoices of acme: %d, want one draft of quantity 12", len(invs))
	}
	// Another span, or another tenant, is another invoice.
	jan := billing.MonthOf(invFeb.Start.Add(-time.Hour), time.UTC)
	if inv := invGenerate(t, m, "acme", jan); inv.ID == first.ID || invQuantity(inv) != 0 {
		t.Errorf("January's draft: ID %s (February's is %s), quantity %d", inv.ID, first.ID, invQuantity(inv))
	}
	if inv := invGenerate(t, m, "globex", invFeb); inv.ID == first.ID {
		t.Errorf("globex's draft has acme's ID %s", inv.ID)
	}
	// Finalizing recomputes from the usage recorded until then, not the draft's.
	invTrack(t, m, invEv("requests", 100, invAt(21, 0, 0)))
	fin := invFinalize(t, m, first.ID)
	if invQuantity(fin) != 112 || fin.ID != first.ID || fin.Status != billing.InvoiceFinalized ||
		!fin.Created.Equal(third.Created) || !fin.FinalizedAt.Equal(invAt(21, 0, 0)) {
		t.Errorf("finalized: %+v; want quantity 112, created %s, finalized %s", fin, third.Created, invAt(21, 0, 0))
	}
	if got, err := m.Invoice(ctx, fin.ID); err != nil {
		t.Fatal(err)
	} else if diff := cmp.Diff(fin, got, invCmp); diff != "" {
		t.Errorf("stored finalized invoice differs from the returned one (-returned +stored):\n%s", diff)
	}
}

func TestInvoiceLifecycleFinalizedNeverChanges(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	m, clock := invMeter(t, billing.Config{Store: st, DefaultPlan: "p"}, invAt(20, 0, 0))
	invSetPlan(t, m, invPlanP)
	invTrack(t, m, invEv("requests", 5, invAt(10, 0, 0)))
	clock.Set(invInGrace)
	fin := invFinalize(t, m, invGenerate(t, m, "acme", invFeb).ID)
	if fin.Number != "INV-2026-000001" {
		t.Errorf("number %q, want INV-2026-000001", fin.Number)
	}
	body := invBody(t, st, fin.ID)

	inv, err := m.GenerateInvoice(ctx, "acme", invFeb)
	if !errors.Is(err, billing.ErrPeriodClosed) {
		t.Errorf("GenerateInvoice after finalization: %v, want ErrPeriodClosed", err)
	}
	if inv != nil && inv.ID == fin.ID && inv.Status == billing.InvoiceDraft {
		t.Errorf("GenerateInvoice after finalization returned a draft with the final invoice's ID")
	}
	if invs, err := m.GenerateInvoices(ctx, invFeb); err != nil || len(invs) != 0 {
		t.Errorf("GenerateInvoices after finalization: %d drafts, %v; want none, nil", len(invs), err)
	}
	if err := m.Track(ctx, invEv("requests", 1, invAt(28, 23, 0))); !errors.Is(err, billing.ErrPeriodClosed) {
		t.Errorf("late event: %v, want ErrPeriodClosed", err)
	}
	clock.Set(invInGrace.Add(48 * time.Hour))
	again, err := m.FinalizeInvoice(ctx, fin.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fin, again, invCmp); diff != "" {
		t.Errorf("finalizing again changed the invoice (-first +again):\n%s", diff)
	}
	if got := invBody(t, st, fin.ID); got != body {
		t.Errorf("stored finalized invoice changed:\nbefore %s\nafter  %s", body, got)
	}
	if invs := invOf(t, m, "acme"); len(invs) != 1 {
		t.Errorf("%d invoices of acme, want 1", len(invs))
	}
	// Paying it changes only its status and paid time.
	paid, err := m.MarkPaid(ctx, fin.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := *fin
	want.Status, want.PaidAt = billing.InvoicePaid, invInGrace.Add(48*time.Hour)
	if diff := cmp.Diff(&want, paid, invCmp); diff != "" {
		t.Errorf("paid invoice (-want +got):\n%s", diff)
	}
	if again, err := m.FinalizeInvoice(ctx, fin.ID); err != nil || again.Status != billing.InvoicePaid || again.Number != fin.Number {
		t.Errorf("FinalizeInvoice of a paid invoice: %+v, %v; want it unchanged", again, err)
	}
}

func TestInvoiceLifecycleLateEventRefused(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	m, clock := invMeter(t, billing.Config{Store: st, DefaultPlan: "p"}, invAt(20, 0, 0))
	invSetPlan(t, m, invPlanP)
	before := invEv("requests", 5, invAt(10, 0, 0))
	before.ID = "before"
	invTrack(t, m, before)
	clock.Set(invInGrace)
	fin := invFinalize(t, m, invGenerate(t, m, "acme", invFeb).ID)
	body := invBody(t, st, fin.ID)
	usage, events := totals(t, m), invEventCount(t, st)
	unchanged := func(when string) {
		t.Helper()
		if diff := cmp.Diff(usage, totals(t, m)); diff != "" {
			t.Errorf("%s: usage changed (-before +after):\n%s", when, diff)
		}
		if n := invEventCount(t, st); n != events {
			t.Errorf("%s: %d stored events, want %d", when, n, events)
		}
		if got := invBody(t, st, fin.ID); got != body {
			t.Errorf("%s: the finalized invoice changed", when)
		}
	}

	late := invEv("requests", 7, invAt(28, 23, 59))
	late.ID = "late"
	for i := range 2 { // a retry of a refused event is refused again: it left no trace
		err := m.Track(ctx, late)
		if !errors.Is(err, billing.ErrPeriodClosed) {
			t.Fatalf("late event (try %d): %v, want ErrPeriodClosed", i+1, err)
		}
		var pe *billing.PeriodClosedError
		if !errors.As(err, &pe) || len(pe.Events) != 1 || pe.Events[0].ID != "late" {
			t.Errorf("late event: %v is not a *PeriodClosedError naming event late", err)
		}
		unchanged(fmt.Sprintf("late event, try %d", i+1))
	}
	for _, at := range []time.Time{invFeb.Start, invFeb.End.Add(-time.Nanosecond)} {
		if err := m.Track(ctx, invEv("requests", 1, at)); !errors.Is(err, billing.ErrPeriodClosed) {
			t.Errorf("event at %s: %v, want ErrPeriodClosed", at.Format(time.RFC3339Nano), err)
		}
	}
	unchanged("events on the span's bounds")

	// An event recorded before finalization is still a duplicate: its retry is a no-op.
	if err := m.Track(ctx, before); err != nil {
		t.Errorf("retry of an event recorded before finalization: %v, want nil (a duplicate)", err)
	}
	conflict := before
	conflict.Quantity = 6
	if err := m.Track(ctx, conflict); !errors.Is(err, billing.ErrEventConflict) {
		t.Errorf("changed retry of an event recorded before finalization: %v, want ErrEventConflict", err)
	}
	unchanged("retries")

	// One call mixing a late event with current ones: only the late one is refused.
	late2 := invEv("requests", 11, invAt(15, 0, 0))
	late2.ID = "late2"
	march := invEv("requests", 13, invFeb.End) // the first instant after the span
	march.ID = "march"
	other := invEv("requests", 17, invAt(15, 0, 0)) // another tenant's February is still open
	other.Tenant, other.ID = "globex", "other"
	err := m.Track(ctx, march, late2, other)
	var pe *billing.PeriodClosedError
	if !errors.As(err, &pe) || len(pe.Events) != 1 || pe.Events[0].ID != "late2" {
		t.Errorf("mixed call: %v, want a *PeriodClosedError for late2 only", err)
	}
	if sum, _ := sumOf(t, m, "acme", "requests"); sum != 5+13 {
		t.Errorf("acme's requests: %d, want 18 (5 before finalization + 13 in March)", sum)
	}
	if sum, _ := sumOf(t, m, "globex", "requests"); sum != 17 {
		t.Errorf("globex's requests: %d, want 17", sum)
	}
	if got := invBody(t, st, fin.ID); got != body {
		t.Errorf("the finalized invoice changed")
	}

	// Async: the refusal reaches OnError, and nothing is recorded.
	errs := make(chan error, 4)
	async := newMeter(t, billing.Config{Store: st, Async: true, Now: clock.Now, OnError: func(err error) { errs <- err }})
	if err := async.Track(ctx, invEv("requests", 19, invAt(27, 0, 0))); err != nil {
		t.Fatalf("async Track: %v", err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, billing.ErrPeriodClosed) {
			t.Errorf("async late event reported %v, want ErrPeriodClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("async late event: OnError was never called")
	}
	if sum, _ := sumOf(t, m, "acme", "requests"); sum != 18 {
		t.Errorf("after the async late event: acme's requests %d, want 18", sum)
	}
}

// TestInvoiceLifecycleGrace drives the grace by hand: drafts before and during the grace take
// late events, finalization closes the span.
func TestInvoiceLifecycleGrace(t *testing.T) {
	ctx := context.Background()
	m, clock := invMeter(t, billing.Config{DefaultPlan: "p"}, invAt(28, 23, 0))
	invSetPlan(t, m, invPlanP, "assigned-idle")
	invTrack(t, m, invEv("requests", 5, invAt(28, 22, 0)))
	walkin := invEv("requests", 3, invAt(28, 22, 30))
	walkin.Tenant = "walkin" // no tenant record: on the default plan because it has usage
	invTrack(t, m, walkin)

	clock.Set(invFeb.End.Add(10 * time.Minute))
	drafts, err := m.GenerateInvoices(ctx, invFeb)
	if err != nil {
		t.Fatal(err)
	}
	byTenant := map[string]*billing.Invoice{}
	for _, d := range drafts {
		byTenant[d.Tenant] = d
		invCheck(t, d)
	}
	if len(byTenant) != 3 || invQuantity(byTenant["acme"]) != 5 || invQuantity(byTenant["walkin"]) != 3 ||
		invQuantity(byTenant["assigned-idle"]) != 0 {
		t.Fatalf("drafts: %v; want acme 5, walkin 3, assigned-idle 0", byTenant)
	}
	// Late events within the grace are accepted and update the drafts.
	clock.Set(invFeb.End.Add(50 * time.Minute))
	invTrack(t, m, invEv("requests", 7, invAt(28, 23, 59)))
	again, err := m.GenerateInvoices(ctx, invFeb)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range again {
		if d.ID != byTenant[d.Tenant].ID {
			t.Errorf("tenant %s: regenerated draft %s, want %s", d.Tenant, d.ID, byTenant[d.Tenant].ID)
		}
		if d.Tenant == "acme" && invQuantity(d) != 12 {
			t.Errorf("acme's draft after a late event: quantity %d, want 12", invQuantity(d))
		}
	}
	// After the grace, finalize; late events are refused from then on.
	clock.Set(invFeb.End.Add(time.Hour))
	var numbers []string
	for _, tenant := range []string{"acme", "assigned-idle", "walkin"} {
		fin := invFinalize(t, m, byTenant[tenant].ID)
		numbers = append(numbers, fin.Number)
	}
	if want := []string{"INV-2026-000001", "INV-2026-000002", "INV-2026-000003"}; !slices.Equal(numbers, want) {
		t.Errorf("numbers %v, want %v", numbers, want)
	}
	if err := m.Track(ctx, invEv("requests", 1, invAt(28, 23, 59))); !errors.Is(err, billing.ErrPeriodClosed) {
		t.Errorf("late event after finalization: %v, want ErrPeriodClosed", err)
	}
	if drafts, err := m.GenerateInvoices(ctx, invFeb); err != nil || len(drafts) != 0 {
		t.Errorf("GenerateInvoices after finalization: %d drafts, %v", len(drafts), err)
	}
}

// TestInvoiceLifecycleRun runs Meter.Run with a controllable clock: during the grace it keeps the
// previous month's drafts current with late events, after the grace it finalizes them.
func TestInvoiceLifecycleRun(t *testing.T) {
	ctx := context.Background()
	m, clock := invMeter(t, billing.Config{DefaultPlan: "p", CheckInterval: 2 * time.Millisecond}, invAt(28, 22, 0))
	invSetPlan(t, m, invPlanP, "acme")
	invTrack(t, m, invEv("requests", 5, invAt(28, 21, 0)))

	clock.Set(invFeb.End.Add(time.Minute)) // within the default grace of an hour
	invRun(t, m)
	waitFor(t, "a draft of February", func() bool {
		invs := invOf(t, m, "acme")
		return len(invs) == 1 && invs[0].Status == billing.InvoiceDraft && invQuantity(invs[0]) == 5
	})
	// A late event within the grace is accepted and reaches the draft.
	invTrack(t, m, invEv("requests", 7, invAt(28, 23, 59)))
	walkin := invEv("requests", 3, invAt(28, 23, 30))
	walkin.Tenant = "walkin"
	invTrack(t, m, walkin)
	clock.Set(invFeb.End.Add(2 * time.Minute)) // the invoice job's next slot, still within the grace
	waitFor(t, "the drafts to include the late events", func() bool {
		a, w := invOf(t, m, "acme"), invOf(t, m, "walkin")
		return len(a) == 1 && invQuantity(a[0]) == 12 && len(w) == 1 && invQuantity(w[0]) == 3
	})
	if invs := invOf(t, m, "acme"); invs[0].Status != billing.InvoiceDraft {
		t.Fatalf("acme's invoice is %s during the grace, want draft", invs[0].Status)
	}
	// The grace ends: Run finalizes.
	clock.Set(invFeb.End.Add(time.Hour))
	waitFor(t, "February's invoices to be finalized", func() bool {
		a, w := invOf(t, m, "acme"), invOf(t, m, "walkin")
		return len(a) == 1 && a[0].Status == billing.InvoiceFinalized && len(w) == 1 && w[0].Status == billing.InvoiceFinalized
	})
	a, w := invOf(t, m, "acme")[0], invOf(t, m, "walkin")[0]
	if invQuantity(a) != 12 || invQuantity(w) != 3 || !a.Start.Equal(invFeb.Start) || !a.End.Equal(invFeb.End) {
		t.Errorf("finalized: acme %d, walkin %d over %s/%s; want 12 and 3 over February", invQuantity(a), invQuantity(w), a.Start, a.End)
	}
	if nums := []string{a.Number, w.Number}; !slices.Contains(nums, "INV-2026-000001") || !slices.Contains(nums, "INV-2026-000002") {
		t.Errorf("numbers %v, want INV-2026-000001 and 000002", nums)
	}
	if err := m.Track(ctx, invEv("requests", 1, invAt(28, 23, 59))); !errors.Is(err, billing.ErrPeriodClosed) {
		t.Errorf("late event after Run finalized: %v, want ErrPeriodClosed", err)
	}
	// March (the current month) is not invoiced yet.
	all, err := m.Invoices(ctx, billing.InvoiceQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, inv := range all {
		if !inv.Start.Equal(invFeb.Start) {
			t.Errorf("Run made an invoice for %s/%s; want February only", inv.Start, inv.End)
		}
	}
}

// TestInvoiceLifecycleRunAfterGrace starts Run only after the grace has passed (the service was
// down during the first hour of the month, or CheckInterval is longer than InvoiceGrace): the
// previous month must still be invoiced.
func TestInvoiceLifecycleRunAfterGrace(t *testing.T) {
	m, clock := invMeter(t, billing.Config{DefaultPlan: "p", CheckInterval: 2 * time.Millisecond}, invAt(28, 22, 0))
	invSetPlan(t, m, invPlanP, "acme")
	invTrack(t, m, invEv("requests", 5, invAt(28, 21, 0)))
	clock.Set(invFeb.End.Add(26 * time.Hour)) // March 2, 02:00: long after the grace
	invRun(t, m)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if invs := invOf(t, m, "acme"); len(invs) == 1 && invs[0].Status == billing.InvoiceFinalized {
			if invQuantity(invs[0]) != 5 {
				t.Errorf("finalized quantity %d, want 5", invQuantity(invs[0]))
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("Run started after February's grace did not invoice February: acme has %d invoices, want one finalized "+
		"(a month whose grace no Run saw must still be drafted and finalized)", len(invOf(t, m, "acme")))
}

// TestInvoiceLifecycleRunPlanAssignedLater: a tenant put on a plan after a month ended is not
// invoiced for that month by Run.
func TestInvoiceLifecycleRunPlanAssignedLater(t *testing.T) {
	m, clock := invMeter(t, billing.Config{CheckInterval: 2 * time.Millisecond}, invAt(28, 22, 0))
	invSetPlan(t, m, invPlanP, "early")
	clock.Set(invFeb.End.Add(10 * time.Minute)) // March 1, 00:10, within the grace
	invSetPlan(t, m, invPlanP, "late")
	clock.Set(invFeb.End.Add(3 * time.Hour))
	invRun(t, m)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if invs := invOf(t, m, "early"); len(invs) == 1 && invs[0].Status == billing.InvoiceFinalized {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if invs := invOf(t, m, "early"); len(invs) != 1 || invs[0].Status != billing.InvoiceFinalized {
		t.Fatalf("tenant on the plan all February: %d invoices, want one finalized", len(invs))
	}
	if invs := invOf(t, m, "late"); len(invs) != 0 {
		t.Errorf("tenant put on the plan on March 1 got %d February invoices, want none", len(invs))
	}
}

// TestInvoiceLifecycleRunAnchored checks that Run invoices a tenant with an anchor day on its own
// cycle only, never on the calendar month (which would bill the same usage twice and close its
// open cycle early).
func TestInvoiceLifecycleRunAnchored(t *testing.T) {
	ctx := context.Background()
	m, clock := invMeter(t, billing.Config{CheckInterval: 2 * time.Millisecond}, invAt(28, 22, 0))
	invSetPlan(t, m, invPlanP, "acme", "anch")
	if err := m.SetAnchorDay(ctx, "anch", 15); err != nil {
		t.Fatal(err)
	}
	anch := func(qty int64, at time.Time) billing.Event {
		e := invEv("requests", qty, at)
		e.Tenant = "anch"
		return e
	}
	invTrack(t, m, invEv("requests", 5, invAt(20, 0, 0)), anch(2, invAt(10, 0, 0)), anch(3, invAt(20, 0, 0)))
	mar15 := time.Date(2026, time.March, 15, 0, 0, 0, 0, time.UTC)
	cycle := billing.Span{Start: invAt(15, 0, 0), End: mar15}
	onCycle := func(when string) {
		t.Helper()
		for _, inv := range invOf(t, m, "anch") {
			if inv.Start.Day() != 15 || inv.End.Day() != 15 {
				t.Errorf("%s: anchored tenant got an invoice for %s/%s (%s, quantity %d), not on its cycle (the 15th)",
					when, inv.Start.Format(time.DateOnly), inv.End.Format(time.DateOnly), inv.Status, invQuantity(inv))
			}
		}
	}

	clock.Set(invFeb.End.Add(time.Minute))
	invRun(t, m)
	waitFor(t, "acme's February draft", func() bool { return len(invOf(t, m, "acme")) == 1 })
	onCycle("during February's grace")
	clock.Set(invFeb.End.Add(time.Hour))
	waitFor(t, "acme's February invoice", func() bool {
		a := invOf(t, m, "acme")
		return len(a) == 1 && a[0].Status == billing.InvoiceFinalized
	})
	onCycle("after February's grace")
	if err := m.Track(ctx, anch(1, invAt(25, 0, 0))); err != nil {
		t.Errorf("an event of the anchored tenant's open cycle was refused: %v", err)
	}

	clock.Set(cycle.End.Add(time.Minute))
	waitFor(t, "the anchored draft", func() bool {
		return slices.ContainsFunc(invOf(t, m, "anch"), func(inv *billing.Invoice) bool { return inv.Start.Equal(cycle.Start) })
	})
	clock.Set(cycle.End.Add(time.Hour))
	waitFor(t, "the anchored invoice to be finalized", func() bool {
		invs := invOf(t, m, "anch")
		return len(invs) >= 1 && invs[0].Start.Equal(cycle.Start) && invs[0].Status == billing.InvoiceFinalized
	})
	onCycle("after the anchored cycle's grace")
	var found *billing.Invoice
	for _, inv := range invOf(t, m, "anch") {
		if inv.Start.Equal(cycle.Start) {
			if found != nil {
				t.Errorf("two invoices of the anchored tenant for %s", cycle)
			}
			found = inv
		}
	}
	if found == nil || !found.End.Equal(cycle.End) || invQuantity(found) != 4 || found.Number != "INV-2026-000002" {
		t.Errorf("anchored tenant's invoice for %s: %+v; want quantity 4 (3 + 1 late), INV-2026-000002", cycle, found)
	}
	// The cycle before (January 15 to February 15) ended before Run started; whether it is
	// invoiced is TestInvoiceLifecycleRunAfterGrace's concern.
}

func TestInvoiceLifecycleTransitions(t *testing.T) {
	ctx := context.Background()
	m, clock := invMeter(t, billing.Config{DefaultPlan: "p"}, invInGrace)
	invSetPlan(t, m, invPlanP)
	invTrack(t, m, invEv("requests", 5, invAt(10, 0, 0)))

	draft := invGenerate(t, m, "acme", invFeb)
	if _, err := m.MarkPaid(ctx, draft.ID); err == nil {
		t.Error("MarkPaid of a draft succeeded")
	}
	if _, err := m.VoidInvoice(ctx, draft.ID); err == nil {
		t.Error("VoidInvoice of a draft succeeded")
	}
	if inv, _ := m.Invoice(ctx, draft.ID); inv.Status != billing.InvoiceDraft {
		t.Errorf("after refused transitions the draft is %s", inv.Status)
	}

	fin := invFinalize(t, m, draft.ID)
	clock.Set(invInGrace.Add(time.Hour))
	voided, err := m.VoidInvoice(ctx, fin.ID)
	if err != nil {
		t.Fatalf("VoidInvoice: %v", err)
	}
	if voided.Status != billing.InvoiceVoid || voided.Number != fin.Number || !voided.VoidedAt.Equal(invInGrace.Add(time.Hour)) ||
		!voided.Total.Equal(fin.Total) {
		t.Errorf("voided: %+v", voided)
	}
	for name, fn := range map[string]func(context.Context, string) (*billing.Invoice, error){
		"MarkPaid": m.MarkPaid, "VoidInvoice": m.VoidInvoice, "FinalizeInvoice": m.FinalizeInvoice,
	} {
		if _, err := fn(ctx, fin.ID); err == nil {
			t.Errorf("%s of a void invoice succeeded", name)
		}
		if _, err := fn(ctx, "inv_missing"); !errors.Is(err, billing.ErrNotFound) {
			t.Errorf("%s of a missing invoice: %v, want ErrNotFound", name, err)
		}
	}
	if _, err := m.Invoice(ctx, "inv_missing"); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("Invoice of a missing invoice: %v, want ErrNotFound", err)
	}
	// The void invoice is kept; its span stays closed; a new draft can be made and finalized.
	if err := m.Track(ctx, invEv("requests", 1, invAt(28, 23, 0))); !errors.Is(err, billing.ErrPeriodClosed) {
		t.Errorf("late event after voiding: %v, want ErrPeriodClosed (the span stays closed)", err)
	}
	redraft := invGenerate(t, m, "acme", invFeb)
	if redraft.ID == fin.ID || invQuantity(redraft) != 5 {
		t.Errorf("new draft after voiding: ID %s (void is %s), quantity %d", redraft.ID, fin.ID, invQuantity(redraft))
	}
	refin := invFinalize(t, m, redraft.ID)
	if refin.Number != "INV-2026-000002" {
		t.Errorf("re-finalized number %q, want INV-2026-000002", refin.Number)
	}
	if inv, err := m.Invoice(ctx, fin.ID); err != nil || inv.Status != billing.InvoiceVoid || inv.Number != "INV-2026-000001" {
		t.Errorf("the void invoice: %+v, %v; want it kept, void, INV-2026-000001", inv, err)
	}
	paid, err := m.MarkPaid(ctx, refin.ID)
	if err != nil || paid.Status != billing.InvoicePaid || !paid.PaidAt.Equal(invInGrace.Add(time.Hour)) {
		t.Errorf("MarkPaid: %+v, %v", paid, err)
	}
	if _, err := m.VoidInvoice(ctx, refin.ID); err == nil {
		t.Error("VoidInvoice of a paid invoice succeeded")
	}
	if _, err := m.GenerateInvoice(ctx, "acme", invFeb); !errors.Is(err, billing.ErrPeriodClosed) {
		t.Errorf("GenerateInvoice with a paid invoice for the span: %v, want ErrPeriodClosed", err)
	}
	invs := invOf(t, m, "acme")
	statuses := []billing.InvoiceStatus{}
	for _, inv := range invs {
		statuses = append(statuses, inv.Status)
	}
	slices.Sort(statuses)
	if want := []billing.InvoiceStatus{billing.InvoicePaid, billing.InvoiceVoid}; !slices.Equal(statuses, want) {
		t.Errorf("acme's invoices: %v, want %v", statuses, want)
	}
}

func TestInvoiceLifecycleInvoicesFilters(t *testing.T) {
	ctx := context.Background()
	m, _ := invMeter(t, billing.Config{DefaultPlan: "p"}, invInGrace)
	invSetPlan(t, m, invPlanP)
	jan := billing.MonthOf(invFeb.Start.Add(-time.Hour), time.UTC)
	dec := billing.MonthOf(jan.Start.Add(-time.Hour), time.UTC)
	ids := map[string]string{} // tenant/month -> id
	for _, tenant := range []string{"a", "b", "c"} {
		for _, span := range []billing.Span{dec, jan, invFeb} {
			ids[tenant+"/"+span.Start.Month().String()] = invGenerate(t, m, tenant, span).ID
		}
	}
	invFinalize(t, m, ids["a/January"])
	invFinalize(t, m, ids["b/January"])
	invFinalize(t, m, ids["c/December"])
	if _, err := m.MarkPaid(ctx, ids["b/January"]); err != nil {
		t.Fatal(err)
	}
	if _, err := m.VoidInvoice(ctx, ids["c/December"]); err != nil {
		t.Fatal(err)
	}
	name := func(inv *billing.Invoice) string { return inv.Tenant + "/" + inv.Start.Month().String() }
	for _, tc := range []struct {
		q     billing.InvoiceQuery
		want  []string
		order bool // want is in the required order
	}{
		{billing.InvoiceQuery{Tenant: "a"}, []string{"a/February", "a/January", "a/December"}, true},
		{billing.InvoiceQuery{Status: billing.InvoiceFinalized}, []string{"a/January"}, true},
		{billing.InvoiceQuery{Status: billing.InvoicePaid}, []string{"b/January"}, true},
		{billing.InvoiceQuery{Status: billing.InvoiceVoid}, []string{"c/December"}, true},
		{billing.InvoiceQuery{Status: billing.InvoiceDraft, Tenant: "c"}, []string{"c/February", "c/January"}, true},
		{billing.InvoiceQuery{Start: jan.Start}, []string{"a/January", "b/January", "c/January"}, false},
		{billing.InvoiceQuery{Start: jan.Start, Status: billing.InvoiceDraft}, []string{"c/January"}, true},
		{billing.InvoiceQuery{Tenant: "b", Start: dec.Start}, []string{"b/December"}, true},
		{billing.InvoiceQuery{Tenant: "nobody"}, nil, true},
	} {
		invs, err := m.Invoices(ctx, tc.q)
		if err != nil {
			t.Fatalf("Invoices(%+v): %v", tc.q, err)
		}
		var got []string
		for _, inv := range invs {
			got = append(got, name(inv))
		}
		if !tc.order {
			slices.Sort(got)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Invoices(%+v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	all, err := m.Invoices(ctx, billing.InvoiceQuery{})
	if err != nil || len(all) != 9 {
		t.Fatalf("Invoices() = %d, %v; want 9", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Start.After(all[i-1].Start) {
			t.Errorf("Invoices() not newest period first: %s before %s", name(all[i-1]), name(all[i]))
		}
	}
	if invs, err := m.Invoices(ctx, billing.InvoiceQuery{Limit: 4}); err != nil || len(invs) != 4 || !invs[3].Start.Equal(jan.Start) {
		t.Errorf("Invoices(Limit 4) = %d, %v; want the 3 of February and one of January", len(invs), err)
	}
}

// invSequence returns the numbers prefix YYYY-000001 .. n.
func invSequence(prefix string, year, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d-%06d", prefix, year, i+1)
	}
	return out
}

// TestInvoiceNumberingConcurrent finalizes many drafts from 32 goroutines spread over two Meters,
// each on its own connection to one database file (as two processes would be).
func TestInvoiceNumberingConcurrent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "billing.db")
	stA, stB := invOpenFile(t, path), invOpenFile(t, path)
	mA, clock := invMeter(t, billing.Config{Store: stA, DefaultPlan: "p"}, invInGrace)
	mB := newMeter(t, billing.Config{Store: stB, DefaultPlan: "p", Now: clock.Now})
	invSetPlan(t, mA, invPlanP)
	const n, workers = 48, 32
	ids := make([]string, n)
	for i := range ids {
		ids[i] = invGenerate(t, mA, fmt.Sprintf("t%02d", i), invFeb).ID
	}
	var (
		mu      sync.Mutex
		numbers = map[string]string{} // id -> number
		wg      sync.WaitGroup
	)
	work := make(chan string, n)
	for _, id := range ids {
		work <- id
	}
	close(work)
	start := make(chan struct{})
	for w := range workers {
		m := mA
		if w%2 == 1 {
			m = mB
		}
		wg.Go(func() {
			<-start
			for id := range work {
				inv, err := m.FinalizeInvoice(ctx, id)
				if err != nil {
					t.Errorf("FinalizeInvoice(%s): %v", id, err)
					continue
				}
				mu.Lock()
				numbers[id] = inv.Number
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	var got []string
	for _, id := range ids {
		got = append(got, numbers[id])
		for _, m := range []*billing.Meter{mA, mB} {
			if inv, err := m.Invoice(ctx, id); err != nil || inv.Number != numbers[id] || inv.Status != billing.InvoiceFinalized {
				t.Errorf("stored invoice %s: %+v, %v; want finalized %s", id, inv, err, numbers[id])
			}
		}
	}
	slices.Sort(got)
	if want := invSequence("INV-", 2026, n); !slices.Equal(got, want) {
		t.Errorf("numbers are not consecutive and distinct:\ngot  %v\nwant %v", got, want)
	}

	// One draft finalized by every goroutine at once gets one number.
	id := invGenerate(t, mA, "same", invFeb).ID
	results := make([]*billing.Invoice, workers)
	start = make(chan struct{})
	for w := range workers {
		m := mA
		if w%2 == 1 {
			m = mB
		}
		wg.Go(func() {
			<-start
			inv, err := m.FinalizeInvoice(ctx, id)
			if err != nil {
				t.Errorf("FinalizeInvoice(%s) from goroutine %d: %v", id, w, err)
				return
			}
			results[w] = inv
		})
	}
	close(start)
	wg.Wait()
	want := fmt.Sprintf("INV-2026-%06d", n+1)
	for w, inv := range results {
		if inv != nil && inv.Number != want {
			t.Errorf("goroutine %d got number %q, want %q", w, inv.Number, want)
		}
	}
	if next := invFinalize(t, mB, invGenerate(t, mB, "next", invFeb).ID); next.Number != fmt.Sprintf("INV-2026-%06d", n+2) {
		t.Errorf("the number after the contended one: %q, want INV-2026-%06d (no gap)", next.Number, n+2)
	}
}

func TestInvoiceNumberingPrefixAndYear(t *testing.T) {
	st := openStore(t)
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	m, clock := invMeter(t, billing.Config{Store: st, DefaultPlan: "p", InvoicePrefix: "ACME/"}, invInGrace)
	other, _ := invMeter(t, billing.Config{Store: st, DefaultPlan: "p"}, invInGrace)
	invSetPlan(t, m, invPlanP)
	num := func(m *billing.Meter, tenant string) string {
		t.Helper()
		return invFinalize(t, m, invGenerate(t, m, tenant, invFeb).ID).Number
	}
	got := []string{num(m, "a"), num(m, "b"), num(other, "c"), num(m, "d"), num(other, "e")}
	want := []string{"ACME/2026-000001", "ACME/2026-000002", "INV-2026-000001", "ACME/2026-000003", "INV-2026-000002"}
	if !slices.Equal(got, want) {
		t.Errorf("numbers %v, want %v (each prefix its own sequence)", got, want)
	}
	// The year is the finalization's, in Config.Location, and each year starts a new sequence.
	clock.Set(time.Date(2027, time.January, 1, 0, 30, 0, 0, time.UTC))
	if n := num(m, "f"); n != "ACME/2027-000001" {
		t.Errorf("first number of 2027: %q, want ACME/2027-000001", n)
	}
	ny, _ := invMeter(t, billing.Config{Store: st, DefaultPlan: "p", InvoicePrefix: "ACME/", Location: newYork},
		time.Date(2027, time.January, 1, 3, 0, 0, 0, time.UTC)) // still December 31 in New York
	nyFeb := billing.MonthOf(invAt(10, 0, 0), newYork)
	if n := invFinalize(t, ny, invGenerate(t, ny, "g", nyFeb).ID).Number; n != "ACME/2026-000004" {
		t.Errorf("finalized on New York's December 31: %q, want ACME/2026-000004", n)
	}
	for _, bad := range []string{"INV\n", "a-very-long-prefix-of-more-than-32-bytes-"} {
		_, err := billing.New(billing.Config{Store: st, InvoicePrefix: bad})
		requireFieldError(t, err, billing.ErrInvalidConfig, "InvoicePrefix")
	}
}
