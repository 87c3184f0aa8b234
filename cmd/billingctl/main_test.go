package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// result is the outcome of one billingctl run.
type result struct {
	code           int
	stdout, stderr string
}

// ctl runs billingctl with args and returns its exit code and output.
func ctl(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// want fails the test unless r exited with code.
func (r result) want(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

// fixture is a database file seeded with a plan, two tenants and usage last month (lastMonth,
// YYYY-MM) and today.
type fixture struct {
	db        string // the --db value
	path      string
	lastMonth string
	last      billing.Span
}

// meterAt opens a Meter on the file at path whose clock is now.
func meterAt(t *testing.T, path string, now func() time.Time) (*billing.Meter, func()) {
	t.Helper()
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := billing.New(billing.Config{Store: st, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return m, func() { m.Close(); st.Close() }
}

func seed(t *testing.T) fixture {
	t.Helper()
	t.Setenv("BILLING_DB", "")
	t.Setenv("BILLING_LOCATION", "")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "billing.db")
	now := time.Now().UTC()
	last := billing.MonthOf(billing.MonthOf(now, time.UTC).Start.Add(-time.Hour), time.UTC)
	mid := last.Start.Add(10*24*time.Hour + 12*time.Hour)

	m, done := meterAt(t, path, func() time.Time { return mid })
	if err := m.SetPlan(ctx, billing.Plan{ID: "pro", Currency: "USD", BaseFee: decimal.RequireFromString("10"),
		Prices: []billing.Price{{Resource: "requests", Model: billing.PerUnit, UnitPrice: decimal.RequireFromString("0.01")}}}); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"acme", "beta"} {
		if err := m.AssignPlan(ctx, tenant, "pro"); err != nil {
			t.Fatal(err)
		}
	}
	ev := func(id, tenant, model string, n int64, at time.Time) billing.Event {
		return billing.Event{ID: id, Tenant: tenant, Resource: "requests", Quantity: n, Time: at,
			Attrs: map[string]string{"model": model}}
	}
	if err := m.Track(ctx,
		ev("a1", "acme", "small", 40, mid.Add(-24*time.Hour)),
		ev("a2", "acme", "large", 60, mid),
		ev("b1", "beta", "small", 10, mid),
	); err != nil {
		t.Fatal(err)
	}
	done()

	// This month: 9 of a monthly limit of 10, set after the usage, so that only a quota check
	// finds the 80% threshold.
	m, done = meterAt(t, path, time.Now)
	if err := m.Track(ctx, ev("t1", "acme", "small", 9, time.Time{})); err != nil {
		t.Fatal(err)
	}
	done()
	m, done = meterAt(t, path, time.Now)
	if err := m.SetQuota(ctx, billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodMonth,
		Limit: 10, NotifyAt: []int{80, 100}}); err != nil {
		t.Fatal(err)
	}
	done()
	return fixture{db: "sqlite:" + path, path: path, lastMonth: last.Start.Format("2006-01"), last: last}
}

func TestHelp(t *testing.T) {
	r := ctl(t, "help").want(t, 0)
	for _, s := range []string{"migrate", "aggregate", "check-quotas", "invoices generate", "invoices show", "usage export", "Exit codes"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("help does not mention %q:\n%s", s, r.stdout)
		}
	}
	r = ctl(t, "help", "invoices", "show").want(t, 0)
	if !strings.Contains(r.stdout, "billingctl invoices show ID --format pdf|html|csv|json") || !strings.Contains(r.stdout, "-out") {
		t.Errorf("help invoices show:\n%s", r.stdout)
	}
	r = ctl(t, "usage", "export", "-h").want(t, 0)
	if !strings.Contains(r.stderr, "-group-by") {
		t.Errorf("usage export -h:\n%s", r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	f := seed(t)
	for _, c := range []struct {
		name string
		args []string
		msg  string // in stderr
	}{
		{"no command", nil, "no command"},
		{"unknown command", []string{"--db", f.db, "frobnicate"}, `unknown command "frobnicate"`},
		{"unknown subcommand", []string{"--db", f.db, "invoices", "delete"}, `unknown command "invoices delete"`},
		{"bad flag", []string{"--db", f.db, "check-quotas", "--bogus"}, "flag provided but not defined: -bogus"},
		{"bad global flag", []string{"--nope", "migrate"}, "flag provided but not defined: -nope"},
		{"no db", []string{"migrate"}, "give --db sqlite:PATH, or set BILLING_DB"},
		{"bad db", []string{"--db", "billing.db", "migrate"}, "give sqlite:PATH"},
		{"postgres", []string{"--db", "postgres://u:secret@localhost/db", "migrate"}, "PostgreSQL store is not built yet"},
		{"bad location", []string{"--db", f.db, "--location", "Mars/Olympus", "check-quotas"}, "not a time zone"},
		{"bad period", []string{"--db", f.db, "invoices", "generate", "--period", "November"}, "give YYYY-MM"},
		{"missing period", []string{"--db", f.db, "invoices", "generate"}, "--period is required"},
		{"missing from", []string{"--db", f.db, "aggregate", "--to", "2026-12"}, "--from is required"},
		{"to before from", []string{"--db", f.db, "aggregate", "--from", "2026-12", "--to", "2026-11"}, "must be after --from"},
		{"bad format", []string{"--db", f.db, "invoices", "show", "x", "--format", "docx"}, "must be one of"},
		{"no id", []string{"--db", f.db, "invoices", "show", "--format", "pdf"}, "give exactly one invoice ID"},
		{"bad window", []string{"--db", f.db, "usage", "export", "--from", "2026-11", "--to", "2026-12", "--window", "week"}, "must be one of"},
		{"extra argument", []string{"--db", f.db, "check-quotas", "now"}, "unexpected argument"},
		{"bad tenant", []string{"--db", f.db, "usage", "export", "--from", "2026-11", "--to", "2026-12", "--tenant", "a\x00b"}, "tenant"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := ctl(t, c.args...).want(t, 2)
			if !strings.Contains(r.stderr, c.msg) {
				t.Errorf("stderr %q does not contain %q", r.stderr, c.msg)
			}
			if strings.Contains(r.stderr, "secret") {
				t.Errorf("stderr shows the password: %q", r.stderr)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	r := ctl(t, "--db", "sqlite:"+path, "migrate").want(t, 0)
	if !strings.Contains(r.stdout, "schema version") {
		t.Errorf("stdout: %q", r.stdout)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("migrate did not create the file: %v", err)
	}
	ctl(t, "migrate", "--db", "sqlite://"+path).want(t, 0) // idempotent; flags after the command
}

func TestMissingDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "typo.db")
	r := ctl(t, "--db", "sqlite:"+path, "invoices", "list").want(t, 3)
	if !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("stderr: %q", r.stderr)
	}
	if _, err := os.Stat(path); err == nil {
		t.Errorf("a command other than migrate created %s", path)
	}
}

func TestEnvDB(t *testing.T) {
	f := seed(t)
	t.Setenv("BILLING_DB", f.db)
	ctl(t, "invoices", "list").want(t, 0)
}

func TestInvoices(t *testing.T) {
	f := seed(t)
	// Drafts for every tenant on the plan.
	r := ctl(t, "--db", f.db, "invoices", "generate", "--period", f.lastMonth, "--format", "json").want(t, 0)
	var invs []billing.Invoice
	if err := json.Unmarshal([]byte(r.stdout), &invs); err != nil {
		t.Fatalf("generate --format json: %v\n%s", err, r.stdout)
	}
	if len(invs) != 2 || invs[0].Tenant != "acme" || invs[1].Tenant != "beta" {
		t.Fatalf("generated %+v, want drafts for acme and beta", invs)
	}
	// acme: 100 requests x 0.01 + 10 base fee.
	if invs[0].Status != billing.InvoiceDraft || !invs[0].Total.Equal(decimal.RequireFromString("11")) {
		t.Errorf("acme draft: status %s total %s, want draft 11", invs[0].Status, invs[0].Total)
	}

	// The current month has not ended: finalizing it is a conflict.
	this := f.last.End.Format("2006-01")
	r = ctl(t, "--db", f.db, "invoices", "generate", "--period", this, "--finalize").want(t, 4)
	if !strings.Contains(r.stderr, "has not ended") {
		t.Errorf("stderr: %q", r.stderr)
	}

	// Finalize last month: numbered, text table.
	r = ctl(t, "--db", f.db, "invoices", "generate", "--period", f.lastMonth, "--finalize").want(t, 0)
	if !strings.Contains(r.stdout, "INV-") || !strings.Contains(r.stdout, "finalized") || !strings.Contains(r.stdout, "acme") {
		t.Errorf("finalize output:\n%s", r.stdout)
	}
	// Generating a finalized tenant's month again is a conflict.
	r = ctl(t, "--db", f.db, "invoices", "generate", "--period", f.lastMonth, "--tenant", "acme").want(t, 4)
	if !strings.Contains(r.stderr, "is finalized") {
		t.Errorf("stderr: %q", r.stderr)
	}
	// For every tenant, finalized ones are skipped.
	r = ctl(t, "--db", f.db, "invoices", "generate", "--period", f.lastMonth, "--format", "json").want(t, 0)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("regenerate a finalized month: %s", r.stdout)
	}

	r = ctl(t, "--db", f.db, "invoices", "list", "--period", f.lastMonth, "--status", "finalized", "--format", "json").want(t, 0)
	invs = nil
	if err := json.Unmarshal([]byte(r.stdout), &invs); err != nil || len(invs) != 2 {
		t.Fatalf("list: %v %s", err, r.stdout)
	}
	id := invs[0].ID

	// show in every format.
	r = ctl(t, "--db", f.db, "invoices", "show", id, "--format", "json").want(t, 0)
	var shown map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil {
		t.Fatalf("show json: %v\n%s", err, r.stdout)
	}
	r = ctl(t, "--db", f.db, "invoices", "show", "--format", "csv", id).want(t, 0)
	if !strings.Contains(r.stdout, "requests") {
		t.Errorf("show csv:\n%s", r.stdout)
	}
	r = ctl(t, "--db", f.db, "invoices", "show", id, "--format", "html").want(t, 0)
	if !strings.Contains(r.stdout, "<html") {
		t.Errorf("show html does not look like HTML")
	}
	out := filepath.Join(t.TempDir(), "inv.pdf")
	r = ctl(t, "--db", f.db, "invoices", "show", id, "--format", "pdf", "--out", out).want(t, 0)
	if r.stdout != "" {
		t.Errorf("show --out wrote to stdout: %q", r.stdout)
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.HasPrefix(b, []byte("%PDF")) {
		t.Errorf("show pdf --out: %v, %.8q", err, b)
	}

	// An unknown invoice is not found.
	r = ctl(t, "--db", f.db, "invoices", "show", "inv_nope", "--format", "json").want(t, 3)
	if !strings.Contains(r.stderr, `invoice "inv_nope" not found`) {
		t.Errorf("stderr: %q", r.stderr)
	}
}

func TestCheckQuotas(t *testing.T) {
	f := seed(t)
	r := ctl(t, "--db", f.db, "check-quotas").want(t, 0)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "TENANT") {
		t.Fatalf("check-quotas output:\n%s", r.stdout)
	}
	fields := strings.Fields(lines[1])
	if want := []string{"acme", "requests", "month"}; strings.Join(fields[:3], " ") != strings.Join(want, " ") ||
		fields[4] != "80%" || fields[5] != "9" || fields[6] != "10" || fields[7] != "soft" {
		t.Errorf("alert line %q", lines[1])
	}
	// The alert is recorded once: a second check finds nothing new.
	r = ctl(t, "--db", f.db, "check-quotas", "--format", "json").want(t, 0)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("second check: %s", r.stdout)
	}
	// billingctl records the alert but leaves its delivery to the service.
	st, err := sqlite.Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ds, err := st.ListDeliveries(context.Background(), billing.DeliveryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Status != billing.DeliveryPending || ds[0].Attempts != 0 {
		t.Errorf("deliveries %+v, want one pending, never attempted", ds)
	}
}

func TestAggregate(t *testing.T) {
	f := seed(t)
	export := func() string {
		return ctl(t, "--db", f.db, "usage", "export", "--from", f.lastMonth, "--to", f.last.End.Format("2006-01-02"),
			"--group-by", "model").want(t, 0).stdout
	}
	before := export()
	r := ctl(t, "--db", f.db, "aggregate", "--from", f.lastMonth, "--to", f.last.End.AddDate(0, 1, 0).Format("2006-01")).want(t, 0)
	if !strings.Contains(r.stdout, "rebuilt rollups of every tenant") || !strings.Contains(r.stdout, "(2 months)") {
		t.Errorf("aggregate output: %q", r.stdout)
	}
	ctl(t, "--db", f.db, "aggregate", "--tenant", "acme", "--from", f.lastMonth+"-05", "--to", f.lastMonth+"-06").want(t, 0)
	if after := export(); after != before {
		t.Errorf("a rebuild changed usage:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestUsageExport(t *testing.T) {
	f := seed(t)
	from, to := f.last.Start, f.last.End
	r := ctl(t, "--db", f.db, "usage", "export", "--tenant", "acme", "--from", from.Format("2006-01-02"),
		"--to", to.Format("2006-01-02"), "--window", "day", "--group-by", "model", "--format", "csv").want(t, 0)
	day := func(d int) string { return from.AddDate(0, 0, d).Format(time.RFC3339) }
	want := "tenant,resource,start,end,model,sum,count,max\n" +
		"acme,requests," + day(9) + "," + day(10) + ",small,40,1,40\n" +
		"acme,requests," + day(10) + "," + day(11) + ",large,60,1,60\n"
	if r.stdout != want {
		t.Errorf("csv:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = ctl(t, "--db", f.db, "usage", "export", "--from", from.Format("2006-01"), "--to", to.Format("2006-01"), "--format", "json").want(t, 0)
	var rows []billing.UsageRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	if len(rows) != 2 || rows[0].Tenant != "acme" || rows[0].Sum != 100 || rows[1].Tenant != "beta" || rows[1].Sum != 10 {
		t.Errorf("json rows %+v", rows)
	}

	// --location moves bucket boundaries and output times.
	r = ctl(t, "--db", f.db, "--location", "Asia/Tokyo", "usage", "export", "--tenant", "beta",
		"--from", from.Format("2006-01-02"), "--to", to.Format("2006-01-02"), "--window", "month").want(t, 0)
	if !strings.Contains(r.stdout, "+09:00") {
		t.Errorf("--location Asia/Tokyo:\n%s", r.stdout)
	}
}

func TestRuntimeError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	r := ctl(t, "--db", "sqlite:"+path, "invoices", "list").want(t, 1)
	if !strings.Contains(r.stderr, "billingctl invoices list: open sqlite:"+path) {
		t.Errorf("stderr: %q", r.stderr)
	}
}

func TestProgressOnlyOnTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "work", 4)
	p.step()
	p.finish()
	if buf.Len() != 0 {
		t.Errorf("progress drew on a buffer: %q", buf.String())
	}
	p = &progress{label: "work", total: 4, done: 1}
	if got, want := p.line(), "work [#######.......................] 1/4"; got != want {
		t.Errorf("line %q, want %q", got, want)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@h:5432/db": "postgres://u:xxxxx@h:5432/db",
		"postgres://u@h/db":             "postgres://u@h/db",
		"sqlite:x.db":                   "sqlite:x.db",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
