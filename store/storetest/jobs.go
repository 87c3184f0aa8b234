package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meterplane/billing"
)

// testJobs checks billing.JobStore: a run of a job for a slot is claimed by one owner at a time,
// renewed by that owner, taken over once the claim expires, never claimed again once finished,
// and claimed by exactly one of many concurrent claimers.
func testJobs(t *testing.T, newStore func(t *testing.T) billing.Store) {
	ctx := context.Background()
	t0 := utc(2025, time.November, 5, 12, 0)
	slot := t0
	next := t0.Add(time.Minute)
	lease := 30 * time.Second

	claim := func(t *testing.T, st billing.Store, c billing.JobClaim, want bool) {
		t.Helper()
		got, err := st.ClaimJob(ctx, c)
		if err != nil {
			t.Fatalf("ClaimJob(%+v): %v", c, err)
		}
		if got != want {
			t.Fatalf("ClaimJob(%+v) = %v, want %v", c, got, want)
		}
	}
	finish := func(t *testing.T, st billing.Store, c billing.JobClaim, want error) {
		t.Helper()
		err := st.FinishJob(ctx, c)
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Fatalf("FinishJob(%+v) = %v, want %v", c, err, want)
		}
	}
	at := func(name string, slot time.Time, owner string, now time.Time) billing.JobClaim {
		return billing.JobClaim{Name: name, Slot: slot, Owner: owner, Now: now, Until: now.Add(lease)}
	}

	t.Run("ClaimRenewTakeOverFinish", func(t *testing.T) {
		st := newStore(t)
		claim(t, st, at("check", slot, "a", t0), true)
		// Another owner is refused while the claim holds, up to the instant before it expires.
		claim(t, st, at("check", slot, "b", t0.Add(time.Second)), false)
		claim(t, st, at("check", slot, "b", t0.Add(lease-time.Microsecond)), false)
		// The owner renews: the claim now holds until t0+20s+lease.
		claim(t, st, at("check", slot, "a", t0.Add(20*time.Second)), true)
		claim(t, st, at("check", slot, "b", t0.Add(lease+time.Second)), false)
		// Expired (Until is not after Now): another owner takes it over.
		claim(t, st, at("check", slot, "b", t0.Add(20*time.Second+lease)), true)
		// The first owner lost it: it can neither finish nor reclaim it while b's claim holds.
		finish(t, st, at("check", slot, "a", t0.Add(51*time.Second)), billing.ErrNotFound)
		claim(t, st, at("check", slot, "a", t0.Add(52*time.Second)), false)
		finish(t, st, at("check", slot, "b", t0.Add(53*time.Second)), nil)
		// Finishing twice is harmless.
		finish(t, st, at("check", slot, "b", t0.Add(54*time.Second)), nil)
	})

	t.Run("FinishedSlotNeverClaimedAgain", func(t *testing.T) {
		st := newStore(t)
		claim(t, st, at("check", slot, "a", t0), true)
		finish(t, st, at("check", slot, "a", t0.Add(time.Second)), nil)
		for _, owner := range []string{"a", "b"} {
			claim(t, st, at("check", slot, owner, t0.Add(2*time.Second)), false)
			claim(t, st, at("check", slot, owner, t0.Add(time.Hour)), false)
			// An earlier slot than a finished one is refused too.
			claim(t, st, at("check", slot.Add(-time.Minute), owner, t0.Add(time.Hour)), false)
		}
		// The next slot is claimable, by anyone.
		claim(t, st, at("check", next, "b", next), true)
		claim(t, st, at("check", next, "a", next), false)
		finish(t, st, at("check", next, "b", next.Add(time.Second)), nil)
		claim(t, st, at("check", next, "a", next.Add(2*time.Second)), false)
		claim(t, st, at("check", next.Add(time.Minute), "a", next.Add(time.Minute)), true)
	})

	t.Run("OneRunAtATime", func(t *testing.T) {
		st := newStore(t)
		// An unfinished, unexpired claim on an earlier slot keeps other owners off the job's next
		// slot: runs of one job never overlap.
		claim(t, st, at("invoices", slot, "a", t0), true)
		claim(t, st, at("invoices", next, "b", t0.Add(lease-time.Second)), false)
		// Once it expires the next slot is anyone's.
		claim(t, st, at("invoices", next, "b", t0.Add(lease)), true)
		// An earlier slot than a claimed one is refused, even expired, even to its owner.
		claim(t, st, at("invoices", slot, "a", t0.Add(time.Hour)), false)
		claim(t, st, at("invoices", slot, "b", t0.Add(time.Hour)), false)
		// The owner of an unfinished claim (a run that failed) may claim the next slot at once.
		claim(t, st, at("invoices", next.Add(time.Minute), "b", next.Add(time.Minute)), true)
		finish(t, st, at("invoices", next, "b", next.Add(time.Minute)), billing.ErrNotFound)
		finish(t, st, at("invoices", next.Add(time.Minute), "b", next.Add(time.Minute)), nil)
	})

	t.Run("Release", func(t *testing.T) {
		st := newStore(t)
		claim(t, st, at("check", slot, "a", t0), true)
		// The owner renews with Until at Now: released, anyone may claim the slot at once.
		release := at("check", slot, "a", t0.Add(time.Second))
		release.Until = release.Now
		claim(t, st, release, true)
		claim(t, st, at("check", slot, "b", t0.Add(time.Second)), true)
		// A release by an owner that lost the claim changes nothing.
		release.Now, release.Until = t0.Add(2*time.Second), t0.Add(2*time.Second)
		claim(t, st, release, false)
		claim(t, st, at("check", slot, "c", t0.Add(3*time.Second)), false)
		finish(t, st, at("check", slot, "b", t0.Add(4*time.Second)), nil)
	})

	t.Run("JobsAreIndependent", func(t *testing.T) {
		st := newStore(t)
		claim(t, st, at("check", slot, "a", t0), true)
		claim(t, st, at("invoices", slot, "b", t0), true)
		claim(t, st, at("maintain", slot, "c", t0), true)
		finish(t, st, at("invoices", slot, "b", t0), nil)
		claim(t, st, at("check", slot, "b", t0), false)
		claim(t, st, at("maintain", slot, "a", t0), false)
		finish(t, st, at("check", slot, "b", t0), billing.ErrNotFound)
		finish(t, st, at("never-claimed", slot, "a", t0), billing.ErrNotFound)
	})

	t.Run("Concurrent", func(t *testing.T) {
		st := newStore(t)
		race := func(t *testing.T, c billing.JobClaim) string {
			t.Helper()
			const n = 16
			var wg sync.WaitGroup
			won := make([]bool, n)
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := c
					c.Owner = fmt.Sprintf("owner-%02d", i)
					<-start
					won[i], errs[i] = st.ClaimJob(ctx, c)
				}()
			}
			close(start)
			wg.Wait()
			winner := ""
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("ClaimJob by owner-%02d: %v", i, errs[i])
				}
				if won[i] {
					if winner != "" {
						t.Fatalf("ClaimJob(%s, slot %s): owner-%02d won and so did %s; want one winner", c.Name, c.Slot, i, winner)
					}
					winner = fmt.Sprintf("owner-%02d", i)
				}
			}
			if winner == "" {
				t.Fatalf("ClaimJob(%s, slot %s): no claimer won; want one", c.Name, c.Slot)
			}
			return winner
		}
		// A fresh job.
		w := race(t, at("check", slot, "", t0))
		finish(t, st, at("check", slot, w, t0.Add(time.Second)), nil)
		// The next slot after a finished one.
		race(t, at("check", next, "", next))
		// A takeover of an expired claim.
		race(t, at("check", next, "", next.Add(lease)))
	})

	t.Run("BadClaims", func(t *testing.T) {
		st := newStore(t)
		for _, c := range []billing.JobClaim{at("", slot, "a", t0), at("check", slot, "", t0)} {
			if ok, err := st.ClaimJob(ctx, c); err == nil || ok {
				t.Errorf("ClaimJob(%+v) = %v, %v; want an error", c, ok, err)
			}
			if err := st.FinishJob(ctx, c); err == nil {
				t.Errorf("FinishJob(%+v) = nil; want an error", c)
			}
		}
	})
}
