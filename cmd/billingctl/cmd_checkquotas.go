package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/meterplane/billing"
)

// runCheckQuotas records an alert for every quota threshold reached and not alerted yet, and
// prints the new ones.
func runCheckQuotas(ctx context.Context, c *cli, args []string) (err error) {
	fs := c.flagSet("check-quotas", "[--format text|json]", `Compares every tenant's usage in its current period with its quota rules and records an alert
for each threshold reached that was not alerted yet (the service's Meter.Run does the same every
Config.CheckInterval). Prints the new alerts, one per line (text) or as a JSON array; nothing (or
[]) when there are none. The alerts are queued in the database's outbox: the service delivers
them with its Notifier; billingctl never delivers.
`)
	format := fs.String("format", "text", "output `format`: text or json")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("check-quotas", pos); err != nil {
		return err
	}
	if err := oneOf("format", *format, "text", "json"); err != nil {
		return err
	}
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.closeInto(&err)
	alerts, err := s.m.CheckQuotas(ctx)
	if err != nil {
		return err
	}
	sort.Slice(alerts, func(i, j int) bool {
		a, b := alerts[i], alerts[j]
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		if a.Resource != b.Resource {
			return a.Resource < b.Resource
		}
		if a.Period != b.Period {
			return a.Period < b.Period
		}
		return a.Threshold < b.Threshold
	})
	if *format == "json" {
		if alerts == nil {
			alerts = []billing.Alert{}
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(alerts)
	}
	if len(alerts) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tRESOURCE\tPERIOD\tBUCKET\tTHRESHOLD\tUSED\tLIMIT\tKIND")
	for _, a := range alerts {
		kind := "soft"
		if a.Hard {
			kind = "hard"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d%%\t%d\t%d\t%s\n", a.Tenant, a.Resource, a.Period,
			a.Bucket.Start.In(s.loc).Format(time.RFC3339), a.Threshold, a.Used, a.Limit, kind)
	}
	return tw.Flush()
}
