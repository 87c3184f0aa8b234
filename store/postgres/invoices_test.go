package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/postgres"
)

// replicas opens n Stores on one fresh schema, each with its own connection pool, as n replicas
// of a service would.
func replicas(t *testing.T, n int) []*postgres.Store {
	t.Helper()
	first := openTest(t)
	sts := []*postgres.Store{first}
	for len(sts) < n {
		sts = append(sts, openCleanup(t, postgres.Config{URL: testURL(t), Schema: first.Schema()}))
	}
	return sts
}

// testDraft is a draft invoice of tenant for February 2026 with one line of qty units.
func testDraft(tenant string, qty int64) *billing.Invoice {
	start := time.Date(2026, time.February, 1, 0, 0, 0, 0, time.UTC)
	amount := decimal.RequireFromString("0.015").Mul(decimal.NewFromInt(qty)).Round(2)
	return &billing.Invoice{Tenant: tenant, PlanID: "pro", Start: start, End: start.AddDate(0, 1, 0), Currency: "USD",
		Status: billing.InvoiceDraft, Lines: []billing.InvoiceLine{{Kind: billing.LineUsage, Resource: "requests",
			Quantity: qty, Billable: qty, Amount: amount}}, Subtotal: amount, Total: amount, Created: start.AddDate(0, 1, 0)}
}

// TestFinalizeAcrossReplicas finalizes 200 drafts from two Stores (two pools, standing in for
// two replicas), 8 goroutines each, every goroutine trying every draft in its own order: the
// numbers 1..200 are each given once, each invoice is numbered once, and every finalizer of an
// invoice sees the same number.
func TestFinalizeAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	sts := replicas(t, 2)
	const n, perStore = 200, 8
	drafts := make([]*billing.Invoice, n)
	for i := range drafts {
		drafts[i] = testDraft(fmt.Sprintf("t%03d", i), int64(i+1))
	}
	errs, err := sts[0].PutDrafts(ctx, drafts)
	if err != nil {
		t.Fatalf("PutDrafts: %v", err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("PutDrafts: draft %d: %v", i, err)
		}
	}
	at := time.Date(2026, time.March, 1, 1, 0, 0, 0, time.UTC)
	number := func(seq int64) string { return fmt.Sprintf("INV-%06d", seq) }
	var (
		mu   sync.Mutex
		seen = map[string]map[string]bool{} // invoice ID -> numbers its finalizers got
		wg   sync.WaitGroup
	)
	start := make(chan struct{})
	for s, st := range sts {
		for g := range perStore {
			wg.Go(func() {
				<-start
				// Each goroutine walks the drafts from its own offset, so that every draft is
				// finalized by several goroutines of both stores at about the same time.
				off := (s*perStore + g) * n / (len(sts) * perStore)
				for k := range n {
					d := *drafts[(off+k)%n]
					d.FinalizedAt = at
					f, err := st.FinalizeInvoice(ctx, &d, "INV", number)
					if err != nil {
						t.Errorf("store %d: FinalizeInvoice(%s): %v", s, d.ID, err)
						return
					}
					if f.Status != billing.InvoiceFinalized || f.ID != d.ID {
						t.Errorf("store %d: FinalizeInvoice(%s) = %s %s", s, d.ID, f.ID, f.Status)
					}
					mu.Lock()
					if seen[f.ID] == nil {
						seen[f.ID] = map[string]bool{}
					}
					seen[f.ID][f.Number] = true
					mu.Unlock()
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	used := map[string]string{} // number -> invoice ID
	for id, numbers := range seen {
		if len(numbers) != 1 {
			t.Errorf("invoice %s was given %d numbers: %v", id, len(numbers), numbers)
		}
		for num := range numbers {
			if other, ok := used[num]; ok && other != id {
				t.Errorf("number %s given to %s and %s", num, other, id)
			}
			used[num] = id
		}
	}
	// What is stored agrees: each draft finalized once, with the numbers 1..200.
	var stored []string
	for _, d := range drafts {
		inv, err := sts[1].GetInvoice(ctx, d.ID)
		if err != nil {
			t.Fatalf("GetInvoice(%s): %v", d.ID, err)
		}
		if inv.Status != billing.InvoiceFinalized || !seen[d.ID][inv.Number] {
			t.Errorf("stored invoice %s: %s %q; its finalizers saw %v", d.ID, inv.Status, inv.Number, seen[d.ID])
		}
		stored = append(stored, inv.Number)
	}
	slices.Sort(stored)
	var want []string
	for i := range n {
		want = append(want, number(int64(i+1)))
	}
	if !slices.Equal(stored, want) {
		t.Errorf("stored numbers are not 1..%d each once:\ngot  %v\nwant %v", n, stored, want)
	}
	// The next number follows without a gap, from either store.
	next := testDraft("next", 1)
	if _, err := sts[1].PutDrafts(ctx, []*billing.Invoice{next}); err != nil {
		t.Fatal(err)
	}
	if f, err := sts[1].FinalizeInvoice(ctx, next, "INV", number); err != nil || f.Number != number(n+1) {
		t.Errorf("FinalizeInvoice after the race = %v, %v; want number %s", f, err, number(n+1))
	}
}

// TestPutDraftsAcrossReplicas drafts the same tenants and span from two Stores at once: each
// tenant and span ends with one draft (the later one replacing the earlier in place), never two
// and never an error.
func TestPutDraftsAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	sts := replicas(t, 2)
	const tenants, rounds = 20, 10
	var wg sync.WaitGroup
	start := make(chan struct{})
	for s, st := range sts {
		for r := range rounds {
			wg.Go(func() {
				<-start
				var batch []*billing.Invoice
				for i := range tenants {
					// Batches in opposite orders on the two stores, to provoke lock-order waits.
					if s == 1 {
						i = tenants - 1 - i
					}
					batch = append(batch, testDraft(fmt.Sprintf("t%02d", i), int64(100*s+r)))
				}
				errs, err := st.PutDrafts(ctx, batch)
				if err != nil {
					t.Errorf("store %d: PutDrafts: %v", s, err)
					return
				}
				for i, err := range errs {
					if err != nil {
						t.Errorf("store %d: PutDrafts: draft %d: %v", s, i, err)
					}
				}
			})
		}
	}
	close(start)
	wg.Wait()
	invs, err := sts[0].ListInvoices(ctx, billing.InvoiceQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	perTenant := map[string]int{}
	for _, inv := range invs {
		perTenant[inv.Tenant]++
		if inv.Status != billing.InvoiceDraft {
			t.Errorf("invoice %s of %s is %s", inv.ID, inv.Tenant, inv.Status)
		}
	}
	if len(perTenant) != tenants {
		t.Errorf("drafts of %d tenants, want %d", len(perTenant), tenants)
	}
	for tenant, k := range perTenant {
		if k != 1 {
			t.Errorf("tenant %s has %d drafts for one span, want 1", tenant, k)
		}
	}
	// Once finalized from one store, the span refuses drafts from the other.
	d := invsOf(invs, "t00")
	if _, err := sts[0].FinalizeInvoice(ctx, d, "INV", func(n int64) string { return fmt.Sprint(n) }); err != nil {
		t.Fatal(err)
	}
	errs, err := sts[1].PutDrafts(ctx, []*billing.Invoice{testDraft("t00", 5)})
	if err != nil || !errors.Is(errs[0], billing.ErrPeriodClosed) {
		t.Errorf("PutDrafts over a finalized invoice from another store = %v, %v; want ErrPeriodClosed", errs, err)
	}
}

// invsOf returns the invoice of tenant in invs, or nil.
func invsOf(invs []*billing.Invoice, tenant string) *billing.Invoice {
	for _, inv := range invs {
		if inv.Tenant == tenant {
			return inv
		}
	}
	return nil
}
