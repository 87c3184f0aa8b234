package billing_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// Reserve holds quota for a request in flight; Commit records what was used and returns the rest.
func ExampleMeter_Reserve() {
	ctx := context.Background()
	st, err := sqlite.Open(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	m, err := billing.New(billing.Config{Store: st, Now: func() time.Time { return now }})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	err = m.SetQuota(ctx, billing.QuotaRule{Tenant: "acme", Resource: "tokens.output",
		Period: billing.PeriodDay, Limit: 5000, Hard: true})
	if err != nil {
		log.Fatal(err)
	}
	r, err := m.Reserve(ctx, "acme", "tokens.output", 4096) // before calling the model
	if err != nil {
		log.Fatal(err)
	}
	_, err = m.Reserve(ctx, "acme", "tokens.output", 2000) // a concurrent request
	var qe *billing.QuotaExceededError
	if errors.As(err, &qe) {
		fmt.Printf("refused: %d used + %d reserved + %d asked > %d\n", qe.Used, qe.Reserved, qe.Requested, qe.Limit)
	}
	r.Attrs = map[string]string{"model": "gpt-4o"}
	if err := r.Commit(ctx, 812); err != nil { // the model produced 812 tokens
		log.Fatal(err)
	}
	states, err := m.QuotaStatus(ctx, "acme")
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range states {
		fmt.Printf("%s per %s: used %d, reserved %d, remaining %d, resets %s\n", s.Rule.Resource, s.Rule.Period,
			s.Used, s.Reserved, s.Remaining, s.Bucket.End.Format(time.RFC3339))
	}
	// Output:
	// refused: 0 used + 4096 reserved + 2000 asked > 5000
	// tokens.output per day: used 812, reserved 0, remaining 4188, resets 2026-11-21T00:00:00Z
}
