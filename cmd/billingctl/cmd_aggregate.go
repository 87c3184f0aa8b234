package main

import (
	"context"
	"fmt"
	"time"

	"github.com/meterplane/billing"
)

// runAggregate rebuilds the usage rollups of a span from the raw events, a month at a time.
func runAggregate(ctx context.Context, c *cli, args []string) (err error) {
	fs := c.flagSet("aggregate", "--from TIME --to TIME [--tenant ID]", `Recomputes the usage buckets (hour, day, month, total rollups) of the months that overlap
[--from, --to) from the stored raw events, for one tenant or every tenant. Rollups are kept exact
on every write, so a rebuild normally changes nothing; run it after changing the service's
Config.Location or Config.Dimensions (pass the new values with --location and --dimensions), or
after repairing events by hand. Safe while the service runs. TIME is a date (2026-11-01), a
month (2026-11) or an RFC 3339 time, read in --location.
`)
	from := fs.String("from", "", "start of the span (inclusive), widened to its month")
	to := fs.String("to", "", "end of the span (exclusive), widened to the end of its month")
	tenant := fs.String("tenant", "", "rebuild only this tenant `ID`; empty: every tenant")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("aggregate", pos); err != nil {
		return err
	}
	loc, err := c.g.loc()
	if err != nil {
		return err
	}
	start, end, err := parseSpan(*from, *to, loc)
	if err != nil {
		return err
	}
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.closeInto(&err)
	var months []billing.Span
	for t := billing.MonthOf(start, loc).Start; t.Before(end); {
		sp := billing.MonthOf(t, loc)
		months = append(months, sp)
		t = sp.End
	}
	bar := newProgress(c.stderr, "aggregate", len(months))
	for _, sp := range months {
		if err := s.m.RebuildRollups(ctx, *tenant, sp); err != nil {
			bar.finish()
			return fmt.Errorf("rebuild %s: %w", sp, err)
		}
		bar.step()
	}
	bar.finish()
	who := "every tenant"
	if *tenant != "" {
		who = fmt.Sprintf("tenant %s", *tenant)
	}
	fmt.Fprintf(c.stdout, "rebuilt rollups of %s from %s to %s (%d months)\n", who,
		months[0].Start.Format(time.RFC3339), months[len(months)-1].End.Format(time.RFC3339), len(months))
	return nil
}
