// Command quickstart tracks a few usage events on an embedded SQLite database and prints a usage
// table: the whole integration in twenty lines.
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

func main() {
	ctx := context.Background()
	st, err := sqlite.Open(os.TempDir() + "/billing-quickstart.db")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	m, err := billing.New(billing.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	for i, model := range []string{"gpt-4o", "gpt-4o-mini", "gpt-4o"} {
		err := m.Track(ctx, billing.Event{
			ID:     fmt.Sprintf("quickstart-%d", i), // the same id twice is counted once: run it again
			Tenant: "acme", Resource: "tokens.output", Quantity: int64(100 * (i + 1)),
			Attrs: map[string]string{"model": model},
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	rows, err := m.Usage(ctx, billing.UsageQuery{Tenant: "acme", Window: billing.PeriodDay, GroupBy: []string{"model"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%-10s %-14s %-12s %8s %6s\n", "day", "resource", "model", "sum", "events")
	for _, r := range rows {
		fmt.Printf("%-10s %-14s %-12s %8d %6d\n", r.Start.Format("2006-01-02"), r.Resource, r.Group["model"], r.Sum, r.Count)
	}
}
