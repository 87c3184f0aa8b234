package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/meterplane/billing"
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

// fixture is a database seeded with a plan, two tenants and usage last month (lastMonth,
// YYYY-MM) and today.
type fixture struct {
	target
	db        string // the --db value
	lastMonth string
	last      billing.Span
}

// ctl runs billingctl on the fixture's database: args follow its global flags.
func (f fixture) ctl(t *testing.T, args ...string) result {
	t.Helper()
	return ctl(t, append(append([]string(nil), f.flags...), args...)...)
}

// meterAt opens a Meter on tg whose clock is now.
func meterAt(t *testing.T, tg target, now func() time.Time) (*billing.Meter, func()) {
	t.Helper()
	st := tg.open(t)
	m, err := billing.New(billing.Config{Store: st, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return m, func() { m.Close(); st.Close() }
}

// clearEnv empties the environment variables billingctl reads, for the duration of the test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"BILLING_DB", "BILLING_SCHEMA", "BILLING_LOCATION", "BILLING_DIMENSIONS", "BILLING_DEFAULT_PLAN", "BILLING_INVOICE_PREFIX"} {
		t.Setenv(k, "")
	}
}

// seed returns a new SQLite fixture.
func seed(t *testing.T) fixture {
	t.Helper()
	return seedOn(t, backends[0])
}

// seedOn returns a new fixture on a fresh database of backend b.
func seedOn(t *testing.T, b backend) fixture {
	t.Helper()
	clearEnv(t)
	ctx := context.Background()
	tg := b.fresh(t)
	now := time.Now().UTC()
	last := billing.MonthOf(billing.MonthOf(now, time.UTC).Start.Add(-time.Hour), time.UTC)
	mid := last.Start.Add(10*24*time.Hour + 12*time.Hour)

	m, done := meterAt(t, tg, func() time.Time { return mid })
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
	m, done = meterAt(t, tg, time.Now)
	if err := m.Track(ctx, ev("t1", "acme", "small", 9, time.Time{})); err != nil {
		t.Fatal(err)
	}
	done()
	m, done = meterAt(t, tg, time.Now)
	if err := m.SetQuota(ctx, billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodMonth,
		Limit: 10, NotifyAt: []int{80, 100}}); err != nil {
		t.Fatal(err)
	}
	done()
	return fixture{target: tg, db: tg.flags[1], lastMonth: last.Start.Format("2006-01"), last: last}
}

func TestHelp(t *testing.T) {
	r := ctl(t, "help").want(t, 0)
	for _, s := range []string{"migrate", "aggregate", "check-quotas", "invoices generate", "invoices show", "usage export", "Exit codes",
		"postgres://", "-schema", "BILLING_SCHEMA", "6  store unavailable"} {
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
		{"no db", []string{"migrate"}, "give --db sqlite:PATH or --db postgres://USER@HOST:5432/DB, or set BILLING_DB"},
		{"bad db", []string{"--db", "billing.db", "migrate"}, "give sqlite:PATH"},
		{"bad schema", []string{"--db", "postgres://u:secret@localhost/db", "--schema", "Bad-Name", "migrate"}, `--schema "Bad-Name": use lower-case letters`},
		{"bad postgres url", []string{"--db", "postgres://u:secret@localhost:port/db", "migrate"}, "--db postgres://u:xxxxx@localhost:port/db: not a usable PostgreSQL URL"},
		{"bad postgres url param", []string{"--db", "postgresql://u@localhost/db?password=secret&sslmode=bogus", "invoices", "list"}, "postgresql://u@localhost/db?password=xxxxx&sslmode=bogus"},
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
	eachBackend(t, func(t *testing.T, b backend) {
		clearEnv(t)
		tg := b.fresh(t)
		r := ctl(t, append(tg.flags, "migrate")...).want(t, 0)
		if want := fmt.Sprintf(": schema version 0 -> %d (this billingctl knows up to %d)\n", tg.knows, tg.knows); !strings.HasSuffix(r.stdout, want) {
			t.Errorf("stdout %q, want it to end with %q", r.stdout, want)
		}
		if !tg.exists(t) {
			t.Errorf("migrate did not create the database")
		}
		// Idempotent; flags after the command.
		r = ctl(t, append([]string{"migrate"}, tg.flags...)...).want(t, 0)
		if want := fmt.Sprintf(": schema version %d, up to date (this billingctl knows up to %d)\n", tg.knows, tg.knows); !strings.HasSuffix(r.stdout, want) {
			t.Errorf("second migrate: stdout %q, want it to end with %q", r.stdout, want)
		}
		st := tg.open(t)
		defer st.Close()
		if v, err := st.Version(context.Background()); err != nil || v != tg.knows {
			t.Errorf("Version() = %d, %v; want %d", v, err, tg.knows)
		}
	})
	// sqlite://PATH is sqlite:PATH.
	path := filepath.Join(t.TempDir(), "new.db")
	ctl(t, "--db", "sqlite://"+path, "migrate").want(t, 0)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("migrate did not create the file: %v", err)
	}
}

func TestMigrateNamesDatabase(t *testing.T) {
	clearEnv(t)
	path := filepath.Join(t.TempDir(), "new.db")
	r := ctl(t, "--db", "sqlite:"+path, "migrate").want(t, 0)
	if !strings.HasPrefix(r.stdout, "sqlite:"+path+": schema version 0 -> ") {
		t.Errorf("stdout: %q", r.stdout)
	}
	url := os.Getenv("BILLING_TEST_POSTGRES")
	if url == "" {
		return
	}
	tg := freshPostgres(t)
	r = ctl(t, append(tg.flags, "migrate")...).want(t, 0)
	if want := redact(url) + " (schema " + tg.flags[3] + "): schema version 0 -> "; !strings.HasPrefix(r.stdout, want) {
		t.Errorf("stdout %q, want it to start with %q", r.stdout, want)
	}
}

func TestMissingDatabase(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		clearEnv(t)
		tg := b.fresh(t)
		for _, args := range [][]string{
			{"aggregate", "--from", "2026-01", "--to", "2026-02"},
			{"check-quotas"},
			{"invoices", "generate", "--period", "2026-01"},
			{"invoices", "list"},
			{"invoices", "show", "inv_1", "--format", "json"},
			{"usage", "export", "--from", "2026-01", "--to", "2026-02"},
		} {
			r := ctl(t, append(tg.flags, args...)...).want(t, 3)
			if !strings.Contains(r.stderr, "does not exist") && !strings.Contains(r.stderr, "has no billing store") {
				t.Errorf("%v: stderr: %q", args, r.stderr)
			}
			if !strings.Contains(r.stderr, "billingctl migrate") {
				t.Errorf("%v: stderr does not suggest migrate: %q", args, r.stderr)
			}
		}
		if tg.exists(t) {
			t.Errorf("a command other than migrate created the database")
		}
	})
}

func TestEnvDB(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		f := seedOn(t, b)
		for k, v := range f.env {
			t.Setenv(k, v)
		}
		r := ctl(t, "invoices", "list", "--format", "json").want(t, 0)
		if strings.TrimSpace(r.stdout) != "[]" {
			t.Errorf("invoices list: %q", r.stdout)
		}
		ctl(t, "invoices", "generate", "--period", f.lastMonth).want(t, 0)
		r = ctl(t, "invoices", "list").want(t, 0)
		if !strings.Contains(r.stdout, "acme") || !strings.Contains(r.stdout, "beta") {
			t.Errorf("invoices list:\n%s", r.stdout)
		}
	})
}

func TestUnavailable(t *testing.T) {
	clearEnv(t)
	// Nothing listens on port 1: the connection is refused at once.
	for _, db := range []string{
		"postgres://u:secret@127.0.0.1:1/db?sslmode=disable",
		"postgresql://u@127.0.0.1:1/db?sslmode=disable&password=secret",
	} {
		for _, args := range [][]string{
			{"migrate"},
			{"check-quotas"},
			{"invoices", "list"},
			{"usage", "export", "--from", "2026-01", "--to", "2026-02"},
		} {
			r := ctl(t, append([]string{"--db", db}, args...)...).want(t, 6)
			if !strings.Contains(r.stderr, "cannot connect to "+redact(db)+" (check --db") || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("%s %v: stderr %q", db, args, r.stderr)
			}
			if strings.Contains(r.stderr+r.stdout, "secret") {
				t.Errorf("%s %v: the password is shown: %q", db, args, r.stderr)
			}
		}
	}
}

func TestInvoices(t *testing.T) { eachBackend(t, testInvoices) }

func testInvoices(t *testing.T, b backend) {
	f := seedOn(t, b)
	// Drafts for every tenant on the plan.
	r := f.ctl(t, "invoices", "generate", "--period", f.lastMonth, "--format", "json").want(t, 0)
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
	r = f.ctl(t, "invoices", "generate", "--period", this, "--finalize").want(t, 4)
	if !strings.Contains(r.stderr, "has not ended") {
		t.Errorf("stderr: %q", r.stderr)
	}

	// Finalize last month: numbered, text table.
	r = f.ctl(t, "invoices", "generate", "--period", f.lastMonth, "--finalize").want(t, 0)
	if !strings.Contains(r.stdout, "INV-") || !strings.Contains(r.stdout, "finalized") || !strings.Contains(r.stdout, "acme") {
		t.Errorf("finalize output:\n%s", r.stdout)
	}
	// Generating a finalized tenant's month again is a conflict.
	r = f.ctl(t, "invoices", "generate", "--period", f.lastMonth, "--tenant", "acme").want(t, 4)
	if !strings.Contains(r.stderr, "is finalized") {
		t.Errorf("stderr: %q", r.stderr)
	}
	// For every tenant, finalized ones are skipped.
	r = f.ctl(t, "invoices", "generate", "--period", f.lastMonth, "--format", "json").want(t, 0)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("regenerate a finalized month: %s", r.stdout)
	}

	r = f.ctl(t, "invoices", "list", "--period", f.lastMonth, "--status", "finalized", "--format", "json").want(t, 0)
	invs = nil
	if err := json.Unmarshal([]byte(r.stdout), &invs); err != nil || len(invs) != 2 {
		t.Fatalf("list: %v %s", err, r.stdout)
	}
	id := invs[0].ID

	// show in every format.
	r = f.ctl(t, "invoices", "show", id, "--format", "json").want(t, 0)
	var shown map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil {
		t.Fatalf("show json: %v\n%s", err, r.stdout)
	}
	r = f.ctl(t, "invoices", "show", "--format", "csv", id).want(t, 0)
	if !strings.Contains(r.stdout, "requests") {
		t.Errorf("show csv:\n%s", r.stdout)
	}
	r = f.ctl(t, "invoices", "show", id, "--format", "html").want(t, 0)
	if !strings.Contains(r.stdout, "<html") {
		t.Errorf("show html does not look like HTML")
	}
	out := filepath.Join(t.TempDir(), "inv.pdf")
	r = f.ctl(t, "invoices", "show", id, "--format", "pdf", "--out", out).want(t, 0)
	if r.stdout != "" {
		t.Errorf("show --out wrote to stdout: %q", r.stdout)
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.HasPrefix(b, []byte("%PDF")) {
		t.Errorf("show pdf --out: %v, %.8q", err, b)
	}

	// An unknown invoice is not found.
	r = f.ctl(t, "invoices", "show", "inv_nope", "--format", "json").want(t, 3)
	if !strings.Contains(r.stderr, `invoice "inv_nope" not found`) {
		t.Errorf("stderr: %q", r.stderr)
	}
}

func TestCheckQuotas(t *testing.T) { eachBackend(t, testCheckQuotas) }

func testCheckQuotas(t *testing.T, b backend) {
	f := seedOn(t, b)
	r := f.ctl(t, "check-quotas").want(t, 0)
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
	r = f.ctl(t, "check-quotas", "--format", "json").want(t, 0)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("second check: %s", r.stdout)
	}
	// billingctl records the alert but leaves its delivery to the service.
	st := f.open(t)
	defer st.Close()
	ds, err := st.ListDeliveries(context.Background(), billing.DeliveryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Status != billing.DeliveryPending || ds[0].Attempts != 0 {
		t.Errorf("deliveries %+v, want one pending, never attempted", ds)
	}
}

func TestAggregate(t *testing.T) { eachBackend(t, testAggregate) }

func testAggregate(t *testing.T, b backend) {
	f := seedOn(t, b)
	export := func() string {
		return f.ctl(t, "usage", "export", "--from", f.lastMonth, "--to", f.last.End.Format("2006-01-02"),
			"--group-by", "model").want(t, 0).stdout
	}
	before := export()
	r := f.ctl(t, "aggregate", "--from", f.lastMonth, "--to", f.last.End.AddDate(0, 1, 0).Format("2006-01")).want(t, 0)
	if !strings.Contains(r.stdout, "rebuilt rollups of every tenant") || !strings.Contains(r.stdout, "(2 months)") {
		t.Errorf("aggregate output: %q", r.stdout)
	}
	f.ctl(t, "aggregate", "--tenant", "acme", "--from", f.lastMonth+"-05", "--to", f.lastMonth+"-06").want(t, 0)
	if after := export(); after != before {
		t.Errorf("a rebuild changed usage:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestUsageExport(t *testing.T) { eachBackend(t, testUsageExport) }

func testUsageExport(t *testing.T, b backend) {
	f := seedOn(t, b)
	from, to := f.last.Start, f.last.End
	r := f.ctl(t, "usage", "export", "--tenant", "acme", "--from", from.Format("2006-01-02"),
		"--to", to.Format("2006-01-02"), "--window", "day", "--group-by", "model", "--format", "csv").want(t, 0)
	day := func(d int) string { return from.AddDate(0, 0, d).Format(time.RFC3339) }
	want := "tenant,resource,start,end,model,sum,count,max\n" +
		"acme,requests," + day(9) + "," + day(10) + ",small,40,1,40\n" +
		"acme,requests," + day(10) + "," + day(11) + ",large,60,1,60\n"
	if r.stdout != want {
		t.Errorf("csv:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = f.ctl(t, "usage", "export", "--from", from.Format("2006-01"), "--to", to.Format("2006-01"), "--format", "json").want(t, 0)
	var rows []billing.UsageRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	if len(rows) != 2 || rows[0].Tenant != "acme" || rows[0].Sum != 100 || rows[1].Tenant != "beta" || rows[1].Sum != 10 {
		t.Errorf("json rows %+v", rows)
	}

	// --location moves bucket boundaries and output times.
	r = f.ctl(t, "--location", "Asia/Tokyo", "usage", "export", "--tenant", "beta",
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
		"postgres://u:secret@h:5432/db":                            "postgres://u:xxxxx@h:5432/db",
		"postgres://u@h/db":                                        "postgres://u@h/db",
		"sqlite:x.db":                                              "sqlite:x.db",
		"postgresql://u:p@ss@h/db?sslmode=disable":                 "postgresql://u:xxxxx@h/db?sslmode=disable",
		"postgres://u:secret@h/db?x=a@b":                           "postgres://u:xxxxx@h/db?x=a@b",
		"postgres://h/db?user=u&password=secret&sslmode=disable":   "postgres://h/db?user=u&password=xxxxx&sslmode=disable",
		"postgres://u@h/db?sslpassword=secret":                     "postgres://u@h/db?sslpassword=xxxxx",
		"host=h password=secret dbname=db":                         "host=h password=xxxxx dbname=db",
		"postgres://u:@h/db":                                       "postgres://u:xxxxx@h/db",
		"postgres://u:s%40cret@h/db?application_name=password=app": "postgres://u:xxxxx@h/db?application_name=password=app",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"refused": "refused",
		"failed to connect to `user=u database=db`:\n\th:1 (h): refused\n\th:1 (h): refused": "failed to connect to `user=u database=db`: h:1 (h): refused",
		"failed:\n\ta: refused\n\tb: timeout":                                                "failed: a: refused; b: timeout",
	} {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMask(t *testing.T) {
	for _, c := range []struct{ db, msg, want string }{
		{"postgres://u:s%40cret@h/db", "auth failed for s%40cret or s@cret", "auth failed for xxxxx or xxxxx"},
		{"postgres://u@h/db?password=top", "password top refused", "password xxxxx refused"},
		{"postgres://u@h/db", "nothing to hide", "nothing to hide"},
		{"sqlite:x.db", "open sqlite:x.db", "open sqlite:x.db"},
	} {
		if got := mask(c.db, c.msg); got != c.want {
			t.Errorf("mask(%q, %q) = %q, want %q", c.db, c.msg, got, c.want)
		}
	}
}
