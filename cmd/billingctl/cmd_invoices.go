package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/meterplane/billing"
)

// runInvoicesGenerate stores draft invoices for a month and, with --finalize, finalizes them.
func runInvoicesGenerate(ctx context.Context, c *cli, args []string) (err error) {
	fs := c.flagSet("invoices generate", "--period YYYY-MM [--tenant ID] [--finalize] [--format text|json]",
		`Computes the draft invoice of the month for every tenant on a plan (or for --tenant only) and
stores it; generating again replaces a draft with one that includes usage recorded since. Tenants
whose invoice for the month is already finalized are skipped; with --tenant, a finalized month is
a conflict (exit code 4). For --tenant the period is the tenant's billing cycle that starts in the
month (the calendar month unless the tenant has an anchor day).

--finalize then numbers the drafts and closes the period: events for it are refused from then on.
It is refused (exit code 4) before the month has ended. Prints the invoices.
`)
	period := fs.String("period", "", "the `month`, YYYY-MM, in --location")
	tenant := fs.String("tenant", "", "only this `ID` (tenant); empty: every tenant on a plan")
	finalize := fs.Bool("finalize", false, "finalize (number and close) the invoices after generating them")
	format := fs.String("format", "text", "output `format`: text or json")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("invoices generate", pos); err != nil {
		return err
	}
	if err := oneOf("format", *format, "text", "json"); err != nil {
		return err
	}
	loc, err := c.g.loc()
	if err != nil {
		return err
	}
	month, err := parseMonth(*period, loc)
	if err != nil {
		return err
	}
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.closeInto(&err)
	span := billing.MonthOf(month, loc)
	var invs []*billing.Invoice
	if *tenant != "" {
		if span, err = cycleStartingIn(ctx, s.m, *tenant, span); err != nil {
			return err
		}
		if *finalize {
			if err := checkEnded(span, s.m.Now()); err != nil {
				return err
			}
		}
		inv, err := s.m.GenerateInvoice(ctx, *tenant, span)
		if errors.Is(err, billing.ErrPeriodClosed) {
			return &conflictError{fmt.Sprintf("the invoice of tenant %s for %s is finalized; nothing to generate "+
				"(see it with 'billingctl invoices list --tenant %s --period %s')", *tenant, span, *tenant, *period)}
		}
		if err != nil {
			return err
		}
		invs = []*billing.Invoice{inv}
	} else {
		if *finalize {
			if err := checkEnded(span, s.m.Now()); err != nil {
				return err
			}
		}
		if invs, err = s.m.GenerateInvoices(ctx, span); err != nil {
			return err
		}
	}
	sort.Slice(invs, func(i, j int) bool { return invs[i].Tenant < invs[j].Tenant })
	if *finalize {
		bar := newProgress(c.stderr, "finalize", len(invs))
		for i, inv := range invs {
			fin, err := s.m.FinalizeInvoice(ctx, inv.ID)
			if err != nil {
				bar.finish()
				return fmt.Errorf("finalize the invoice %s of tenant %s (%d of %d finalized before): %w", inv.ID, inv.Tenant, i, len(invs), err)
			}
			invs[i] = fin
			bar.step()
		}
		bar.finish()
	}
	return c.printInvoices(invs, *format, s.loc)
}

// cycleStartingIn returns tenant's billing cycle that starts in month (its anchored month, or
// the calendar month).
func cycleStartingIn(ctx context.Context, m *billing.Meter, tenant string, month billing.Span) (billing.Span, error) {
	sp, err := m.BillingCycle(ctx, tenant, month.Start)
	if err != nil {
		return sp, err
	}
	if sp.Start.Before(month.Start) {
		return m.BillingCycle(ctx, tenant, sp.End)
	}
	return sp, nil
}

// checkEnded refuses to finalize a period that has not ended.
func checkEnded(span billing.Span, now time.Time) error {
	if now.Before(span.End) {
		return &conflictError{fmt.Sprintf("the period %s has not ended: finalizing would close it to the events still "+
			"coming; generate drafts now and finalize after %s", span, span.End.Format(time.RFC3339))}
	}
	return nil
}

// runInvoicesList prints stored invoices.
func runInvoicesList(ctx context.Context, c *cli, args []string) (err error) {
	fs := c.flagSet("invoices list", "[--tenant ID] [--period YYYY-MM] [--status S] [--limit N] [--format text|json]",
		`Lists stored invoices, newest period first.
`)
	tenant := fs.String("tenant", "", "only this tenant `ID`")
	period := fs.String("period", "", "only invoices whose period starts in this `month` (YYYY-MM); tenants with an anchor day start mid-month")
	status := fs.String("status", "", "only this `status`: draft, finalized, paid or void")
	limit := fs.Int("limit", 100, "at most `N` invoices")
	format := fs.String("format", "text", "output `format`: text or json")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("invoices list", pos); err != nil {
		return err
	}
	if err := oneOf("format", *format, "text", "json"); err != nil {
		return err
	}
	if *status != "" {
		if err := oneOf("status", *status, "draft", "finalized", "paid", "void"); err != nil {
			return err
		}
	}
	if *limit <= 0 {
		return usagef("--limit must be positive (got %d)", *limit)
	}
	loc, err := c.g.loc()
	if err != nil {
		return err
	}
	var month billing.Span
	if *period != "" {
		t, err := parseMonth(*period, loc)
		if err != nil {
			return err
		}
		month = billing.MonthOf(t, loc)
	}
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.closeInto(&err)
	q := billing.InvoiceQuery{Tenant: *tenant, Status: billing.InvoiceStatus(*status), Limit: *limit}
	if *period != "" {
		// Periods of anchored tenants start mid-month: filter here rather than by exact start.
		q.Limit = 0
	}
	invs, err := s.m.Invoices(ctx, q)
	if err != nil {
		return err
	}
	if *period != "" {
		kept := invs[:0]
		for _, inv := range invs {
			if month.Contains(inv.Start) && len(kept) < *limit {
				kept = append(kept, inv)
			}
		}
		invs = kept
	}
	return c.printInvoices(invs, *format, s.loc)
}

// printInvoices prints invoices as a table (text) or a JSON array.
func (c *cli) printInvoices(invs []*billing.Invoice, format string, loc *time.Location) error {
	if format == "json" {
		if invs == nil {
			invs = []*billing.Invoice{}
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(invs)
	}
	if len(invs) == 0 {
		fmt.Fprintln(c.stderr, "no invoices")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNUMBER\tTENANT\tPERIOD\tSTATUS\tTOTAL\tCURRENCY")
	for _, inv := range invs {
		number := inv.Number
		if number == "" {
			number = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s..%s\t%s\t%s\t%s\n", inv.ID, number, inv.Tenant,
			inv.Start.In(loc).Format("2006-01-02"), inv.End.In(loc).Format("2006-01-02"), inv.Status, inv.Total.String(), inv.Currency)
	}
	return tw.Flush()
}

// runInvoicesShow renders one invoice.
func runInvoicesShow(ctx context.Context, c *cli, args []string) (err error) {
	fs := c.flagSet("invoices show", "ID --format pdf|html|csv|json [--out FILE]",
		`Renders the invoice ID (see 'billingctl invoices list') to stdout, or to --out FILE. A PDF is not
written to a terminal: redirect stdout or give --out. An unknown ID exits with code 3.
`)
	format := fs.String("format", "json", "output `format`: pdf, html, csv or json")
	out := fs.String("out", "", "write to this `file` instead of stdout (replaced atomically)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("give exactly one invoice ID, as in 'billingctl invoices show inv_123 --format pdf' (got %d arguments)", len(pos))
	}
	if err := oneOf("format", *format, "pdf", "html", "csv", "json"); err != nil {
		return err
	}
	if *format == "pdf" && *out == "" && isTerminal(c.stdout) {
		return usagef("not writing a PDF to a terminal: add --out invoice.pdf or redirect stdout")
	}
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.closeInto(&err)
	inv, err := s.m.Invoice(ctx, pos[0])
	if errors.Is(err, billing.ErrNotFound) {
		return &notFoundError{fmt.Sprintf("invoice %q not found: list them with 'billingctl invoices list'", pos[0])}
	}
	if err != nil {
		return err
	}
	render := map[string]func(io.Writer) error{"pdf": inv.WritePDF, "html": inv.WriteHTML, "csv": inv.WriteCSV, "json": inv.WriteJSON}[*format]
	if *out == "" {
		return render(c.stdout)
	}
	return writeFileAtomic(*out, render)
}

// writeFileAtomic renders into a temporary file beside path and renames it over path, so that a
// failed render never leaves a truncated file.
func writeFileAtomic(path string, render func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".billingctl-*")
	if err != nil {
		return fmt.Errorf("--out %s: %w", path, err)
	}
	tmp := f.Name()
	err = render(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--out %s: %w", path, err)
	}
	return nil
}
