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

// Track usage events and read them back by day and model. The fixed clock (Config.Now) only makes
// the output reproducible; leave it unset in a service.
func ExampleMeter_Track() {
	ctx := context.Background()
	st, err := sqlite.Open(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	m, err := billing.New(billing.Config{Store: st, Now: func() time.Time { return now }})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	gpt4o := map[string]string{"model": "gpt-4o"}
	mini := map[string]string{"model": "gpt-4o-mini"}
	err = m.Track(ctx,
		billing.Event{Tenant: "acme", Resource: "tokens.output", Quantity: 812, Time: now.Add(-26 * time.Hour), Attrs: gpt4o},
		billing.Event{Tenant: "acme", Resource: "tokens.output", Quantity: 310, Time: now.Add(-25 * time.Hour), Attrs: mini},
		billing.Event{Tenant: "acme", Resource: "tokens.output", Quantity: 95, Time: now.Add(-2 * time.Hour), Attrs: gpt4o},
		billing.Event{Tenant: "acme", Resource: "tokens.output", Quantity: 1200, Attrs: gpt4o}, // Time zero: now
	)
	if err != nil {
		log.Fatal(err)
	}

	rows, err := m.Usage(ctx, billing.UsageQuery{Tenant: "acme", Resource: "tokens.output",
		Window: billing.PeriodDay, GroupBy: []string{"model"}})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range rows {
		fmt.Printf("%s %-12s sum=%-5d events=%d max=%d\n", r.Start.Format("2006-01-02"), r.Group["model"], r.Sum, r.Count, r.Max)
	}
	// Output:
	// 2026-03-14 gpt-4o       sum=812   events=1 max=812
	// 2026-03-14 gpt-4o-mini  sum=310   events=1 max=310
	// 2026-03-15 gpt-4o       sum=1295  events=2 max=1200
}

// Buckets follow Config.Location: late on February 28 in UTC is already March 1 in Berlin. A
// total with From and To sums whole hours, and its Start and End say which.
func ExampleMeter_Usage() {
	ctx := context.Background()
	st, err := sqlite.Open(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		log.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	m, err := billing.New(billing.Config{Store: st, Location: berlin, Now: func() time.Time { return now }})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	for i, at := range []string{"2026-02-27T10:00:00Z", "2026-02-28T23:30:00Z", "2026-03-01T08:15:00Z"} {
		ts, _ := time.Parse(time.RFC3339, at)
		err := m.Track(ctx, billing.Event{Tenant: "acme", Resource: "requests", Quantity: int64(10 * (i + 1)), Time: ts})
		if err != nil {
			log.Fatal(err)
		}
	}

	months, err := m.Usage(ctx, billing.UsageQuery{Tenant: "acme", Window: billing.PeriodMonth})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range months {
		fmt.Printf("month %s to %s: %d requests\n", r.Start.Format("2006-01-02 MST"), r.End.Format("2006-01-02 MST"), r.Sum)
	}

	from := time.Date(2026, 3, 1, 0, 10, 0, 0, berlin)
	total, err := m.Usage(ctx, billing.UsageQuery{Tenant: "acme", From: from, To: from.Add(10 * time.Hour)})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range total {
		fmt.Printf("total %s to %s: %d requests in %d events\n", r.Start.Format("Jan 2 15:04"), r.End.Format("Jan 2 15:04"), r.Sum, r.Count)
	}
	// Output:
	// month 2026-02-01 CET to 2026-03-01 CET: 10 requests
	// month 2026-03-01 CET to 2026-04-01 CEST: 50 requests
	// total Mar 1 00:00 to Mar 1 11:00: 50 requests in 2 events
}

// Give events their own IDs when a call may be retried: an ID already recorded with the same
// content is a no-op, so the retry never counts twice. The same ID with other content is refused.
func ExampleMeter_Track_retry() {
	ctx := context.Background()
	st, err := sqlite.Open(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	m, err := billing.New(billing.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	e := billing.Event{ID: "req-7f3a-output", Tenant: "acme", Resource: "tokens.output", Quantity: 812}
	for try := 1; try <= 3; try++ {
		fmt.Printf("try %d: %v\n", try, m.Track(ctx, e))
	}
	rows, err := m.Usage(ctx, billing.UsageQuery{Tenant: "acme"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("recorded: %d tokens in %d event\n", rows[0].Sum, rows[0].Count)

	e.Quantity = 900
	err = m.Track(ctx, e)
	fmt.Println(errors.Is(err, billing.ErrEventConflict))
	fmt.Println(err)
	// Output:
	// try 1: <nil>
	// try 2: <nil>
	// try 3: <nil>
	// recorded: 812 tokens in 1 event
	// true
	// billing: event id already recorded with different content: tenant "acme", id "req-7f3a-output" (same id, different resource, quantity or attributes)
}

// A rejected event names its field and the rule it broke; nothing of the call is recorded.
func ExampleFieldError() {
	st, err := sqlite.Open(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	m, err := billing.New(billing.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	err = m.Track(context.Background(),
		billing.Event{Tenant: "acme", Resource: "requests", Quantity: 1},
		billing.Event{Tenant: "acme", Resource: "tokens.output", Quantity: -5},
	)
	fmt.Println(err)
	var fe *billing.FieldError
	if errors.As(err, &fe) {
		fmt.Printf("field %s: %s\n", fe.Field, fe.Rule)
	}
	fmt.Println(errors.Is(err, billing.ErrInvalidEvent))

	err = m.Track(context.Background(), billing.Event{Tenant: "acme", Resource: "tokens output", Quantity: 1})
	fmt.Println(err)
	// Output:
	// billing: invalid event: events[1].quantity: must be > 0 (got -5)
	// field events[1].quantity: must be > 0 (got -5)
	// true
	// billing: invalid event: resource: may contain only ASCII letters, digits and . _ - : / (found ' ')
}
