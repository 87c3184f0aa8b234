// Command billingctl runs the jobs of a billing store that a cron (or an operator) runs: schema
// migrations, rollup rebuilds, quota checks, invoice generation and finalization, invoice
// rendering and usage export. It opens the service's database with --db (or BILLING_DB): an
// SQLite file (sqlite:PATH) or a PostgreSQL database (postgres://USER:PASSWORD@HOST:5432/DB, whose
// tables are in the schema --schema, env BILLING_SCHEMA, default billing). It runs one command:
//
//	billingctl [global flags] COMMAND [flags] [args]
//
//	migrate                                        create or upgrade the schema
//	aggregate --from T --to T [--tenant ID]        rebuild usage rollups from the raw events
//	check-quotas [--format text|json]              record alerts for thresholds reached
//	invoices generate --period YYYY-MM [--finalize] [--tenant ID]
//	invoices list [--tenant ID] [--period YYYY-MM] [--status S]
//	invoices show ID --format pdf|html|csv|json [--out FILE]
//	usage export --from T --to T [--tenant ID] [--window P] [--group-by K,...] --format csv|json
//	help [COMMAND]
//
// Exit codes, for scripts: 0 success; 1 runtime or store error; 2 usage error (bad or missing
// flags or arguments); 3 not found (an invoice, a database file); 4 conflict (a finalized period,
// a period not yet ended); 5 the database's schema is newer than this billingctl; 6 the store is
// unavailable (the PostgreSQL server cannot be reached or refuses the connection: retry later).
// Passwords in --db are masked in every message.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	_ "time/tzdata" // --location works on hosts without a zone database
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runContext(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs billingctl with args (without the program name) and returns its exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdout, stderr)
}

// command is one billingctl command.
type command struct {
	name     string // "invoices generate"
	synopsis string // one line for the command list
	run      func(ctx context.Context, c *cli, args []string) error
}

// commands lists every command in help order.
var commands = []command{
	{"migrate", "create the database or upgrade its schema", runMigrate},
	{"aggregate", "rebuild usage rollups from the raw events", runAggregate},
	{"check-quotas", "record (and print) alerts for quota thresholds reached", runCheckQuotas},
	{"invoices generate", "compute draft invoices for a month, optionally finalize them", runInvoicesGenerate},
	{"invoices list", "list stored invoices", runInvoicesList},
	{"invoices show", "render one invoice as PDF, HTML, CSV or JSON", runInvoicesShow},
	{"usage export", "export usage as CSV or JSON", runUsageExport},
}

// cli is the state shared by the commands of one run.
type cli struct {
	stdout, stderr io.Writer
	g              globals
}

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	c.g.defaults(os.Getenv)
	fs := flag.NewFlagSet("billingctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.g.register(fs)
	fs.Usage = func() { c.mainUsage(fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintln(stderr, "billingctl: no command given")
		c.mainUsage(fs)
		return exitUsage
	}
	if rest[0] == "help" {
		if len(rest) == 1 {
			c.stderr = stdout
			c.mainUsage(fs)
			return exitOK
		}
		cmd, _, ok := lookup(rest[1:])
		if !ok {
			fmt.Fprintf(stderr, "billingctl help: unknown command %q; run 'billingctl help' for the list\n", strings.Join(rest[1:], " "))
			return exitUsage
		}
		// A command prints its own help when asked with -h.
		c.stderr = stdout
		cmd.run(ctx, c, []string{"-h"})
		return exitOK
	}
	cmd, cmdArgs, ok := lookup(rest)
	if !ok {
		fmt.Fprintf(stderr, "billingctl: unknown command %q; run 'billingctl help' for the list\n", strings.Join(rest, " "))
		return exitUsage
	}
	err := cmd.run(ctx, c, cmdArgs)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := exitCode(err)
	var ue *usageError
	if !errors.As(err, &ue) || !ue.reported {
		fmt.Fprintf(stderr, "billingctl %s: %s\n", cmd.name, mask(c.g.db, err.Error()))
	}
	return code
}

// lookup finds the command named by the first one or two words of args, and returns the rest.
func lookup(args []string) (command, []string, bool) {
	for _, cmd := range commands {
		words := strings.Fields(cmd.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == cmd.name {
			return cmd, args[len(words):], true
		}
	}
	return command{}, nil, false
}

func (c *cli) mainUsage(fs *flag.FlagSet) {
	w := c.stderr
	fmt.Fprint(w, `billingctl runs the jobs of a github.com/meterplane/billing store.

Usage:
  billingctl [global flags] COMMAND [flags] [args]

Commands:
`)
	for _, cmd := range commands {
		fmt.Fprintf(w, "  %-18s %s\n", cmd.name, cmd.synopsis)
	}
	fmt.Fprint(w, `  help [COMMAND]     show this help, or a command's

Global flags (also accepted after the command):
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, exitCodesHelp)
}

const exitCodesHelp = `
Exit codes:
  0  success
  1  runtime or store error (the message says what failed)
  2  usage error: a bad or missing flag or argument
  3  not found: the invoice, the database file, or the PostgreSQL schema
  4  conflict: the period is finalized (closed), or has not ended yet
  5  the database schema is newer than this billingctl: upgrade billingctl
  6  store unavailable: the PostgreSQL server cannot be reached or refuses the connection (retry later)
`
