package billing_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// Rate limit a tenant's requests: 2 per second, so a burst of 2 then one every 500ms.
func ExampleMeter_Allow() {
	st, _ := sqlite.Open(":memory:")
	defer st.Close()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) // a fixed clock, for the example
	m, err := billing.New(billing.Config{
		Store:        st,
		Now:          func() time.Time { return now },
		RatePolicies: []billing.RatePolicy{{Resource: "requests", Limit: 2, Window: time.Second}},
	})
	if err != nil {
		panic(err)
	}
	defer m.Close()

	ctx := context.Background()
	for i := 0; i < 3; i++ {
		d, err := m.Allow(ctx, "acme", "requests", 1)
		if err != nil {
			panic(err)
		}
		fmt.Printf("allowed=%v remaining=%d retry after %v\n", d.Allowed, d.Remaining, d.RetryAfter)
		if err := d.Err(); errors.Is(err, billing.ErrRateLimited) {
			fmt.Println(err)
		}
	}
	now = now.Add(500 * time.Millisecond)
	d, _ := m.Allow(ctx, "acme", "requests", 1)
	fmt.Printf("500ms later: allowed=%v\n", d.Allowed)

	_, err = m.Allow(ctx, "acme", "requests", 3)
	fmt.Println(errors.Is(err, billing.ErrExceedsBurst))

	d, _ = m.Allow(ctx, "acme", "messages", 1) // no policy: not limited
	fmt.Printf("messages: allowed=%v limit=%d\n", d.Allowed, d.Limit)
	// Output:
	// allowed=true remaining=1 retry after 0s
	// allowed=true remaining=0 retry after 0s
	// allowed=false remaining=0 retry after 500ms
	// billing: rate limited: "requests": 2 per 1s (burst 2); retry after 500ms
	// 500ms later: allowed=true
	// true
	// messages: allowed=true limit=0
}
