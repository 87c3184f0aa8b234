package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
)

// testInvoices checks the InvoiceStore interface directly, without a Meter: drafts replaced in
// place, gap-free numbering, status transitions, spans closed to late events, and listing.
func testInvoices(t *testing.T, newStore func(t *testing.T) billing.Store) {
	t.Run("PutDrafts", func(t *testing.T) { testInvPutDrafts(t, newStore(t)) })
	t.Run("Finalize", func(t *testing.T) { testInvFinalize(t, newStore(t)) })
	t.Run("FinalizeConcurrent", func(t *testing.T) { testInvFinalizeConcurrent(t, newStore(t)) })
	t.Run("Status", func(t *testing.T) { testInvStatus(t, newStore(t)) })
	t.Run("CloseSpan", func(t *testing.T) { testInvCloseSpan(t, newStore(t)) })
	t.Run("List", func(t *testing.T) { testInvList(t, newStore(t)) })
}

// invCmpOpts compare invoices: decimals by value, times by instant, nil like empty.
var invCmpOpts = cmp.Options{
	cmp.Comparer(func(a, b decimal.Decimal) bool { return a.Equal(b) }),
	cmpopts.EquateEmpty(),
}

// The months of the invoice tests, in UTC.
var (
	invDec = billing.Span{Start: utc(2025, time.December, 1, 0, 0), End: utc(2026, time.January, 1, 0, 0)}
	invJan = billing.Span{Start: utc(2026, time.January, 1, 0, 0), End: utc(2026, time.February, 1, 0, 0)}
	invFeb = billing.Span{Start: utc(2026, time.February, 1, 0, 0), End: utc(2026, time.March, 1, 0, 0)}
)

// invDraft is a draft of tenant for span charging qty requests at 0.015 USD (one rounded line
// with a tier breakdown).
func invDraft(tenant string, span billing.Span, qty int64) *billing.Invoice {
	price := decimal.RequireFromString("0.015")
	exact := price.Mul(decimal.NewFromInt(qty))
	amount := exact.Round(2)
	line := billing.InvoiceLine{Kind: billing.LineUsage, Description: "requests", Resource: "requests",
		Match: map[string]string{"model": "m"}, Model: billing.PerUnit, Quantity: qty, Billable: qty, Exact: exact, Amount: amount}
	if qty > 0 {
		line.Tiers = []billing.TierCharge{{First: 1, Last: qty, Units: qty, UnitPrice: price, Amount: exact}}
	}
	return &billing.Invoice{Tenant: tenant, PlanID: "pro", Start: span.Start, End: span.End, Currency: "USD",
		Status: billing.InvoiceDraft, Lines: []billing.InvoiceLine{line}, Subtotal: amount, Total: amount,
		Created: span.End.Add(10 * time.Minute)}
}

// invPut stores drafts and fails the test on a call error; it returns the per-invoice errors.
func invPut(t *testing.T, st billing.Store, invs ...*billing.Invoice) []error {
	t.Helper()
	errs, err := st.PutDrafts(context.Background(), invs)
	if err != nil {
		t.Fatalf("PutDrafts: %v", err)
	}
	if len(errs) != len(invs) {
		t.Fatalf("PutDrafts returned %d errors for %d invoices", len(errs), len(invs))
	}
	return errs
}

// invPutOK stores drafts that must all be accepted.
func invPutOK(t *testing.T, st billing.Store, invs ...*billing.Invoice) {
	t.Helper()
	for i, err := range invPut(t, st, invs...) {
		if err != nil {
			t.Fatalf("PutDrafts: invoice %d (%s): %v", i, invs[i].Tenant, err)
		}
		if invs[i].ID == "" {
			t.Fatalf("PutDrafts left invoice %d without an ID", i)
		}
	}
}

// invGet reads invoice id and fails the test on error.
func invGet(t *testing.T, st billing.Store, id string) *billing.Invoice {
	t.Helper()
	inv, err := st.GetInvoice(context.Background(), id)
	if err != nil {
		t.Fatalf("GetInvoice(%s): %v", id, err)
	}
	return inv
}

// invNumber formats numbers of sequence seq like the Meter does.
func invNumber(seq string) func(int64) string {
	return func(n int64) string { return fmt.Sprintf("%s-%06d", seq, n) }
}

// invFinal is draft as the Meter finalizes it: lines recomputed (qty), FinalizedAt set.
func invFinal(draft *billing.Invoice, qty int64, at time.Time) *billing.Invoice {
	f := invDraft(draft.Tenant, billing.Span{Start: draft.Start, End: draft.End}, qty)
	f.ID, f.Created, f.FinalizedAt = draft.ID, draft.Created, at
	return f
}

// invFinalizeOK finalizes inv in sequence seq and fails the test on error.
func invFinalizeOK(t *testing.T, st billing.Store, inv *billing.Invoice, seq string) *billing.Invoice {
	t.Helper()
	out, err := st.FinalizeInvoice(context.Background(), inv, seq, invNumber(seq))
	if err != nil {
		t.Fatalf("FinalizeInvoice(%s, %s): %v", inv.ID, seq, err)
	}
	return out
}

func testInvPutDrafts(t *testing.T, st billing.Store) {
	ctx := context.Background()
	a := invDraft("acme", invFeb, 100)
	a.Status = "" // PutDrafts sets it
	invPutOK(t, st, a)
	if a.Status != billing.InvoiceDraft {
		t.Errorf("PutDrafts left status %q, want draft", a.Status)
	}
	if diff := cmp.Diff(a, invGet(t, st, a.ID), invCmpOpts); diff != "" {
		t.Errorf("stored draft (-put +stored):\n%s", diff)
	}
	// A draft for the same tenant and span replaces it and keeps its ID, whatever ID it carries.
	for i, id := range []string{"", "inv_other"} {
		again := invDraft("acme", invFeb, 200+int64(i))
		again.ID = id
		invPutOK(t, st, again)
		if again.ID != a.ID {
			t.Errorf("replacing draft (ID %q) got ID %q, want the replaced one's %q", id, again.ID, a.ID)
		}
		if diff := cmp.Diff(again, invGet(t, st, a.ID), invCmpOpts); diff != "" {
			t.Errorf("replaced draft (-put +stored):\n%s", diff)
		}
	}
	if _, err := st.GetInvoice(ctx, "inv_other"); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("GetInvoice of the ID a replacing draft carried: %v, want ErrNotFound", err)
	}
	// A batch: new spans and tenants get new IDs, the existing one keeps its own.
	jan, globex, feb := invDraft("acme", invJan, 1), invDraft("globex", invFeb, 2), invDraft("acme", invFeb, 3)
	invPutOK(t, st, jan, globex, feb)
	if feb.ID != a.ID || jan.ID == a.ID || globex.ID == a.ID || jan.ID == globex.ID {
		t.Errorf("batch IDs: jan %s, globex %s, feb %s (want feb = %s, the others new and distinct)", jan.ID, globex.ID, feb.ID, a.ID)
	}
	for _, inv := range []*billing.Invoice{jan, globex, feb} {
		if diff := cmp.Diff(inv, invGet(t, st, inv.ID), invCmpOpts); diff != "" {
			t.Errorf("stored %s/%s (-put +stored):\n%s", inv.Tenant, inv.Start.Month(), diff)
		}
	}
	// A draft given an ID that replaces nothing keeps it.
	own := invDraft("initech", invFeb, 4)
	own.ID = "inv_own"
	invPutOK(t, st, own)
	if own.ID != "inv_own" || invGet(t, st, "inv_own").Tenant != "initech" {
		t.Errorf("a new draft with ID inv_own was stored as %q", own.ID)
	}
	// Once finalized, the span refuses drafts; the others of the batch are stored.
	final := invFinalizeOK(t, st, invFinal(feb, 3, invFeb.End.Add(time.Hour)), "INV-2026")
	late, other := invDraft("acme", invFeb, 999), invDraft("globex", invFeb, 5)
	errs := invPut(t, st, late, other)
	if !errors.Is(errs[0], billing.ErrPeriodClosed) || errs[1] != nil {
		t.Errorf("PutDrafts after finalization: %v; want [ErrPeriodClosed, nil]", errs)
	}
	if diff := cmp.Diff(final, invGet(t, st, final.ID), invCmpOpts); diff != "" {
		t.Errorf("a refused draft changed the finalized invoice (-final +stored):\n%s", diff)
	}
	if other.ID != globex.ID || invGet(t, st, globex.ID).Lines[0].Quantity != 5 {
		t.Errorf("globex's draft was not replaced next to the refused one")
	}
	// A draft carrying the ID of another invoice (here another tenant's finalized one) that it
	// does not replace gets a new ID: it never overwrites that invoice.
	thief := invDraft("umbrella", invFeb, 666)
	thief.ID = final.ID
	invPutOK(t, st, thief)
	if thief.ID == final.ID {
		t.Errorf("a new draft of another tenant took the ID %s of a finalized invoice", final.ID)
	}
	if diff := cmp.Diff(final, invGet(t, st, final.ID), invCmpOpts); diff != "" {
		t.Errorf("a draft carrying a finalized invoice's ID changed it (-final +stored):\n%s", diff)
	}
	if _, err := st.GetInvoice(ctx, "inv_missing"); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("GetInvoice of a missing invoice: %v, want ErrNotFound", err)
	}
	if errs, err := st.PutDrafts(ctx, nil); err != nil || len(errs) != 0 {
		t.Errorf("PutDrafts(nil) = %v, %v", errs, err)
	}
}

func testInvFinalize(t *testing.T, st billing.Store) {
	ctx := context.Background()
	d1, d2, d3 := invDraft("a", invFeb, 1), invDraft("b", invFeb, 2), invDraft("c", invFeb, 3)
	invPutOK(t, st, d1, d2, d3)
	at := invFeb.End.Add(2 * time.Hour)
	f1 := invFinal(d1, 10, at) // lines recomputed since the draft
	got := invFinalizeOK(t, st, f1, "INV-2026")
	want := *f1
	want.Number, want.Status = "INV-2026-000001", billing.InvoiceFinalized
	if diff := cmp.Diff(&want, got, invCmpOpts); diff != "" {
		t.Errorf("finalized (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&want, invGet(t, st, d1.ID), invCmpOpts); diff != "" {
		t.Errorf("stored finalized (-want +stored):\n%s", diff)
	}
	// Finalizing again returns it unchanged and takes no number.
	again := invFinalizeOK(t, st, invFinal(d1, 99, at.Add(time.Hour)), "INV-2026")
	if diff := cmp.Diff(&want, again, invCmpOpts); diff != "" {
		t.Errorf("finalizing again (-first +again):\n%s", diff)
	}
	if n := invFinalizeOK(t, st, invFinal(d2, 2, at), "INV-2026").Number; n != "INV-2026-000002" {
		t.Errorf("second number %q, want INV-2026-000002", n)
	}
	// Each sequence counts on its own.
	if n := invFinalizeOK(t, st, invFinal(d3, 3, at), "ACME-2026").Number; n != "ACME-2026-000001" {
		t.Errorf("first number of another sequence %q, want ACME-2026-000001", n)
	}
	d4 := invDraft("d", invFeb, 4)
	invPutOK(t, st, d4)
	var asked []int64
	f4, err := st.FinalizeInvoice(ctx, invFinal(d4, 4, at), "INV-2026", func(n int64) string {
		asked = append(asked, n)
		return fmt.Sprintf("custom/%d", n)
	})
	if err != nil || f4.Number != "custom/3" || !slices.Equal(asked, []int64{3}) {
		t.Errorf("FinalizeInvoice with a custom format: %q, %v (asked %v); want custom/3", f4.Number, err, asked)
	}
	if _, err := st.FinalizeInvoice(ctx, &billing.Invoice{ID: "inv_missing", Tenant: "x", Start: invFeb.Start, End: invFeb.End},
		"INV-2026", invNumber("INV-2026")); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("FinalizeInvoice of a missing invoice: %v, want ErrNotFound", err)
	}
	d5 := invDraft("e", invFeb, 5)
	invPutOK(t, st, d5)
	if n := invFinalizeOK(t, st, invFinal(d5, 5, at), "INV-2026").Number; n != "INV-2026-000004" {
		t.Errorf("number after a missing invoice's attempt %q, want INV-2026-000004 (no gap)", n)
	}
}

func testInvFinalizeConcurrent(t *testing.T, st billing.Store) {
	ctx := context.Background()
	const n, workers = 40, 16
	drafts := make([]*billing.Invoice, n)
	for i := range drafts {
		drafts[i] = invDraft(fmt.Sprintf("t%02d", i), invFeb, int64(i))
	}
	invPutOK(t, st, drafts...)
	at := invFeb.End.Add(time.Hour)
	var (
		mu      sync.Mutex
		numbers []string
		wg      sync.WaitGroup
	)
	work := make(chan *billing.Invoice, n)
	for _, d := range drafts {
		work <- d
	}
	close(work)
	for range workers {
		wg.Go(func() {
			for d := range work {
				f, err := st.FinalizeInvoice(ctx, invFinal(d, int64(len(d.Tenant)), at), "INV-2026", invNumber("INV-2026"))
				if err != nil {
					t.Errorf("FinalizeInvoice(%s): %v", d.ID, err)
					continue
				}
				mu.Lock()
				numbers = append(numbers, f.Number)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(numbers)
	var want []string
	for i := range n {
		want = append(want, invNumber("INV-2026")(int64(i+1)))
	}
	if !slices.Equal(numbers, want) {
		t.Errorf("concurrent numbers are not distinct and consecutive:\ngot  %v\nwant %v", numbers, want)
	}
	// One draft finalized by every worker at once takes one number.
	one := invDraft("one", invFeb, 1)
	invPutOK(t, st, one)
	got := make([]string, workers)
	for w := range workers {
		wg.Go(func() {
			f, err := st.FinalizeInvoice(ctx, invFinal(one, int64(w), at), "INV-2026", invNumber("INV-2026"))
			if err != nil {
				t.Errorf("FinalizeInvoice(%s) by worker %d: %v", one.ID, w, err)
				return
			}
			got[w] = f.Number
		})
	}
	wg.Wait()
	for w, num := range got {
		if num != invNumber("INV-2026")(n+1) {
			t.Errorf("worker %d got number %q, want %q", w, num, invNumber("INV-2026")(n+1))
		}
	}
}

func testInvStatus(t *testing.T, st billing.Store) {
	ctx := context.Background()
	paid, voided, draft := invDraft("paid", invFeb, 1), invDraft("voided", invFeb, 2), invDraft("draft", invFeb, 3)
	invPutOK(t, st, paid, voided, draft)
	at := invFeb.End.Add(time.Hour)
	invFinalizeOK(t, st, invFinal(paid, 1, at), "INV-2026")
	invFinalizeOK(t, st, invFinal(voided, 2, at), "INV-2026")

	// Transitions from a status the invoice is not in are refused, and change nothing.
	for _, tc := range []struct {
		id       string
		from, to billing.InvoiceStatus
	}{
		{draft.ID, billing.InvoiceFinalized, billing.InvoicePaid},
		{draft.ID, billing.InvoiceFinalized, billing.InvoiceVoid},
		{paid.ID, billing.InvoiceDraft, billing.InvoiceVoid},
	} {
		before := invGet(t, st, tc.id)
		if _, err := st.SetInvoiceStatus(ctx, tc.id, tc.from, tc.to, at); err == nil {
			t.Errorf("SetInvoiceStatus(%s is %s, from %s to %s) succeeded", before.Tenant, before.Status, tc.from, tc.to)
		}
		if diff := cmp.Diff(before, invGet(t, st, tc.id), invCmpOpts); diff != "" {
			t.Errorf("a refused transition changed the invoice (-before +after):\n%s", diff)
		}
	}
	if _, err := st.SetInvoiceStatus(ctx, "inv_missing", billing.InvoiceFinalized, billing.InvoicePaid, at); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("SetInvoiceStatus of a missing invoice: %v, want ErrNotFound", err)
	}

	payAt, voidAt := at.Add(24*time.Hour), at.Add(48*time.Hour)
	before := invGet(t, st, paid.ID)
	p, err := st.SetInvoiceStatus(ctx, paid.ID, billing.InvoiceFinalized, billing.InvoicePaid, payAt)
	if err != nil {
		t.Fatalf("finalized -> paid: %v", err)
	}
	want := *before
	want.Status, want.PaidAt = billing.InvoicePaid, payAt
	if diff := cmp.Diff(&want, p, invCmpOpts); diff != "" {
		t.Errorf("paid (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&want, invGet(t, st, paid.ID), invCmpOpts); diff != "" {
		t.Errorf("stored paid (-want +stored):\n%s", diff)
	}
	if _, err := st.SetInvoiceStatus(ctx, paid.ID, billing.InvoiceFinalized, billing.InvoiceVoid, voidAt); err == nil {
		t.Error("voiding a paid invoice (from finalized) succeeded")
	}

	before = invGet(t, st, voided.ID)
	v, err := st.SetInvoiceStatus(ctx, voided.ID, billing.InvoiceFinalized, billing.InvoiceVoid, voidAt)
	if err != nil {
		t.Fatalf("finalized -> void: %v", err)
	}
	want = *before
	want.Status, want.VoidedAt = billing.InvoiceVoid, voidAt
	if diff := cmp.Diff(&want, v, invCmpOpts); diff != "" {
		t.Errorf("void (-want +got):\n%s", diff)
	}
	if _, err := st.SetInvoiceStatus(ctx, voided.ID, billing.InvoiceFinalized, billing.InvoicePaid, voidAt); err == nil {
		t.Error("paying a void invoice (from finalized) succeeded")
	}
	// A void invoice is kept, and its span takes a new draft (a new ID, even when the draft
	// carries the void one's), numbered next.
	voidBody := invGet(t, st, voided.ID)
	redraft := invDraft("voided", invFeb, 7)
	redraft.ID = voided.ID
	invPutOK(t, st, redraft)
	if redraft.ID == voided.ID {
		t.Fatalf("the new draft of a voided span took the void invoice's ID %s", voided.ID)
	}
	if n := invFinalizeOK(t, st, invFinal(redraft, 7, voidAt), "INV-2026").Number; n != "INV-2026-000003" {
		t.Errorf("the re-issued invoice's number %q, want INV-2026-000003", n)
	}
	if diff := cmp.Diff(voidBody, invGet(t, st, voided.ID), invCmpOpts); diff != "" {
		t.Errorf("the void invoice changed (-void +stored):\n%s", diff)
	}
	if voidBody.Status != billing.InvoiceVoid || voidBody.Number != "INV-2026-000002" {
		t.Errorf("the void invoice: %+v", voidBody)
	}
	// A paid invoice's span refuses drafts like a finalized one.
	if errs := invPut(t, st, invDraft("paid", invFeb, 9)); !errors.Is(errs[0], billing.ErrPeriodClosed) {
		t.Errorf("PutDrafts over a paid invoice: %v, want ErrPeriodClosed", errs[0])
	}
}

func testInvCloseSpan(t *testing.T, st billing.Store) {
	ctx := context.Background()
	spec := billing.RollupSpec{}
	o := newOracle(time.UTC)
	ev := func(tenant, id string, q int64, at time.Time) billing.Event {
		return billing.Event{ID: id, Tenant: tenant, Resource: "requests", Quantity: q, Time: at,
			Attrs: map[string]string{"model": "m"}}
	}
	stored := ev("acme", "stored", 1, utc(2026, time.February, 10, 12, 0))
	appendBatch(t, st, spec, o, []billing.Event{stored}, []billing.AppendStatus{billing.AppendInserted})
	for range 2 { // closing twice is a no-op
		if err := st.CloseSpan(ctx, "acme", invFeb); err != nil {
			t.Fatalf("CloseSpan: %v", err)
		}
	}
	bucketsBefore := storedBuckets(t, st)

	closed := []billing.Event{
		ev("acme", "at-start", 10, invFeb.Start),                        // start inclusive
		ev("acme", "before-end", 100, invFeb.End.Add(-time.Nanosecond)), // end exclusive
		ev("acme", "inside", 1000, utc(2026, time.February, 14, 9, 30)),
	}
	open := []billing.Event{
		ev("acme", "at-end", 10_000, invFeb.End),
		ev("acme", "before-start", 100_000, invFeb.Start.Add(-time.Nanosecond)),
		ev("globex", "inside", 1_000_000, utc(2026, time.February, 14, 9, 30)), // another tenant
	}
	batch := []billing.Event{closed[0], open[0], stored, closed[1], open[1], closed[2], open[2], closed[0]}
	want := []billing.AppendStatus{billing.AppendClosed, billing.AppendInserted, billing.AppendDuplicate, billing.AppendClosed,
		billing.AppendInserted, billing.AppendClosed, billing.AppendInserted, billing.AppendClosed}
	got, err := st.AppendEvents(ctx, spec, batch)
	if err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	if diff := cmp.Diff(statusNames(want), statusNames(got)); diff != "" {
		t.Errorf("AppendEvents statuses after CloseSpan (-want +got):\n%s", diff)
	}
	o.addAll(open) // the model of what is stored: the open events only

	// Refused events left no trace: the buckets are those of the open events, before and after a
	// rebuild from the stored events, and a retry of a refused event is refused again.
	checkBuckets(t, st, o, spec)
	if got, err := st.AppendEvents(ctx, spec, closed[:1]); err != nil || got[0] != billing.AppendClosed {
		t.Errorf("retry of a refused event: %v, %v; want closed", got, err)
	}
	if err := st.RebuildRollups(ctx, spec, "", billing.Span{Start: invJan.Start, End: utc(2026, time.April, 1, 0, 0)}); err != nil {
		t.Fatalf("RebuildRollups: %v", err)
	}
	checkBuckets(t, st, o, spec)
	acmeFeb := func(rows []bucketRow) []bucketRow {
		return filterBuckets(rows, func(r *bucketRow) bool {
			return r.Tenant == "acme" && r.Period != billing.PeriodTotal && invFeb.Contains(r.Start)
		})
	}
	if diff := cmp.Diff(acmeFeb(bucketsBefore), acmeFeb(storedBuckets(t, st)), cmpOpts); diff != "" {
		t.Errorf("acme's February buckets changed after its span was closed (-before +after):\n%s", diff)
	}
	// Closing acme's span did not close globex's, nor acme's other months.
	if err := st.CloseSpan(ctx, "globex", invJan); err != nil {
		t.Fatal(err)
	}
	more := []billing.Event{ev("globex", "inside2", 3, utc(2026, time.February, 20, 0, 0)), ev("acme", "march", 3, invFeb.End.Add(time.Hour))}
	appendBatch(t, st, spec, o, more, []billing.AppendStatus{billing.AppendInserted, billing.AppendInserted})
	if got, err := st.AppendEvents(ctx, spec, []billing.Event{ev("globex", "jan", 3, utc(2026, time.January, 31, 23, 0))}); err != nil || got[0] != billing.AppendClosed {
		t.Errorf("globex's event in its closed January: %v, %v; want closed", got, err)
	}
	checkBuckets(t, st, o, spec)
}

func testInvList(t *testing.T, st billing.Store) {
	ctx := context.Background()
	ids := map[string]string{} // tenant/month -> id
	for _, tenant := range []string{"a", "b", "c"} {
		for _, span := range []billing.Span{invDec, invJan, invFeb} {
			d := invDraft(tenant, span, 1)
			invPutOK(t, st, d)
			ids[tenant+"/"+span.Start.Month().String()] = d.ID
		}
	}
	at := invFeb.End.Add(time.Hour)
	for _, k := range []string{"a/January", "b/January", "c/December"} {
		d := invGet(t, st, ids[k])
		invFinalizeOK(t, st, invFinal(d, 1, at), "INV-2026")
	}
	if _, err := st.SetInvoiceStatus(ctx, ids["b/January"], billing.InvoiceFinalized, billing.InvoicePaid, at); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetInvoiceStatus(ctx, ids["c/December"], billing.InvoiceFinalized, billing.InvoiceVoid, at); err != nil {
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
		{billing.InvoiceQuery{Start: invJan.Start}, []string{"a/January", "b/January", "c/January"}, false},
		{billing.InvoiceQuery{Start: invJan.Start, Status: billing.InvoiceDraft}, []string{"c/January"}, true},
		{billing.InvoiceQuery{Tenant: "b", Start: invDec.Start}, []string{"b/December"}, true},
		{billing.InvoiceQuery{Tenant: "nobody"}, nil, true},
		{billing.InvoiceQuery{Start: utc(2026, time.February, 1, 1, 0)}, nil, true}, // no period starts then
	} {
		invs, err := st.ListInvoices(ctx, tc.q)
		if err != nil {
			t.Fatalf("ListInvoices(%+v): %v", tc.q, err)
		}
		var got []string
		for _, inv := range invs {
			got = append(got, name(inv))
		}
		if !tc.order {
			slices.Sort(got)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ListInvoices(%+v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	all, err := st.ListInvoices(ctx, billing.InvoiceQuery{})
	if err != nil || len(all) != 9 {
		t.Fatalf("ListInvoices() = %d, %v; want 9", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Start.After(all[i-1].Start) {
			t.Errorf("ListInvoices() not newest period first: %s before %s", name(all[i-1]), name(all[i]))
		}
	}
	limited, err := st.ListInvoices(ctx, billing.InvoiceQuery{Limit: 4})
	if err != nil || len(limited) != 4 {
		t.Fatalf("ListInvoices(Limit 4) = %d, %v; want 4", len(limited), err)
	}
	for i, inv := range limited[:3] {
		if !inv.Start.Equal(invFeb.Start) {
			t.Errorf("ListInvoices(Limit 4)[%d] = %s, want February's first", i, name(inv))
		}
	}
	if !limited[3].Start.Equal(invJan.Start) {
		t.Errorf("ListInvoices(Limit 4)[3] = %s, want one of January", name(limited[3]))
	}
	// The default limit is 100.
	var many []*billing.Invoice
	for i := range 105 {
		many = append(many, invDraft(fmt.Sprintf("m%03d", i), invJan, 1))
	}
	invPutOK(t, st, many...)
	if invs, err := st.ListInvoices(ctx, billing.InvoiceQuery{}); err != nil || len(invs) != 100 {
		t.Errorf("ListInvoices() with 114 invoices = %d, %v; want the default 100", len(invs), err)
	}
}
