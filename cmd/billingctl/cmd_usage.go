package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"strconv"
	"time"

	"github.com/meterplane/billing"
)

// runUsageExport exports usage rows as CSV or JSON.
func runUsageExport(ctx context.Context, c *cli, args []string) (err error) {
	fs := c.flagSet("usage export", "--from TIME --to TIME [--tenant ID] [--resource R] [--window P] [--group-by K,...] --format csv|json [--out FILE]",
		`Exports usage (sum, count and largest quantity) per tenant, resource and window from the rollups,
optionally split by attribute keys. TIME is a date (2026-11-01), a month (2026-11) or an RFC 3339
time, read in --location; times in the output are in --location too. CSV columns: tenant,
resource, start, end, one column per --group-by key, sum, count, max.
`)
	from := fs.String("from", "", "start (inclusive)")
	to := fs.String("to", "", "end (exclusive)")
	tenant := fs.String("tenant", "", "only this tenant `ID`; empty: every tenant")
	resource := fs.String("resource", "", "only this `resource`; empty: every resource")
	window := fs.String("window", "", "one row per `period`: hour, day or month; empty: one row for the whole span")
	groupBy := fs.String("group-by", "", "comma-separated attribute `keys` to split rows by, e.g. model")
	format := fs.String("format", "csv", "output `format`: csv or json")
	out := fs.String("out", "", "write to this `file` instead of stdout (replaced atomically)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("usage export", pos); err != nil {
		return err
	}
	if err := oneOf("format", *format, "csv", "json"); err != nil {
		return err
	}
	var win billing.Period
	if *window != "" {
		if err := oneOf("window", *window, "hour", "day", "month"); err != nil {
			return err
		}
		win = billing.Period(*window)
	}
	loc, err := c.g.loc()
	if err != nil {
		return err
	}
	start, end, err := parseSpan(*from, *to, loc)
	if err != nil {
		return err
	}
	keys := splitList(*groupBy)
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.closeInto(&err)
	rows, err := s.m.Usage(ctx, billing.UsageQuery{Tenant: *tenant, Resource: *resource, From: start, To: end,
		Window: win, GroupBy: keys})
	if err != nil {
		return err
	}
	render := func(w io.Writer) error { return writeUsageCSV(w, rows, keys, loc) }
	if *format == "json" {
		render = func(w io.Writer) error { return writeUsageJSON(w, rows, loc) }
	}
	if *out == "" {
		return render(c.stdout)
	}
	return writeFileAtomic(*out, render)
}

func writeUsageCSV(w io.Writer, rows []billing.UsageRow, keys []string, loc *time.Location) error {
	cw := csv.NewWriter(w)
	header := append([]string{"tenant", "resource", "start", "end"}, keys...)
	header = append(header, "sum", "count", "max")
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, r := range rows {
		rec := []string{r.Tenant, r.Resource, r.Start.In(loc).Format(time.RFC3339), r.End.In(loc).Format(time.RFC3339)}
		for _, k := range keys {
			rec = append(rec, r.Group[k])
		}
		rec = append(rec, strconv.FormatInt(r.Sum, 10), strconv.FormatInt(r.Count, 10), strconv.FormatInt(r.Max, 10))
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func writeUsageJSON(w io.Writer, rows []billing.UsageRow, loc *time.Location) error {
	out := make([]billing.UsageRow, len(rows))
	for i, r := range rows {
		r.Start, r.End = r.Start.In(loc), r.End.In(loc)
		out[i] = r
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
