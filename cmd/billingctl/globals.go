package main

import (
	"flag"
	"strings"
	"time"
)

// globals are the flags every command accepts: where the database is and how the service that
// owns it is configured. They must match the service's billing.Config, or rollups and invoices
// computed here would differ from the service's.
type globals struct {
	db            string
	schema        string
	location      string
	dimensions    string
	defaultPlan   string
	invoicePrefix string
}

// defaults fills g from the environment.
func (g *globals) defaults(getenv func(string) string) {
	g.db = getenv("BILLING_DB")
	g.schema = getenv("BILLING_SCHEMA")
	if g.schema == "" {
		g.schema = "billing"
	}
	g.location = getenv("BILLING_LOCATION")
	if g.location == "" {
		g.location = "UTC"
	}
	g.dimensions = getenv("BILLING_DIMENSIONS")
	g.defaultPlan = getenv("BILLING_DEFAULT_PLAN")
	g.invoicePrefix = getenv("BILLING_INVOICE_PREFIX")
}

// register adds the global flags to fs, with g's current values as defaults, so that they can
// be given before or after the command.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.db, "db", g.db, "database: `sqlite:PATH` or postgres://USER[:PASSWORD]@HOST:PORT/DB[?sslmode=...] (env BILLING_DB)")
	fs.StringVar(&g.schema, "schema", g.schema, "PostgreSQL `schema` of the billing tables, as the service's postgres.Config.Schema; ignored for sqlite (env BILLING_SCHEMA)")
	fs.StringVar(&g.location, "location", g.location, "time `zone` of periods, as the service's Config.Location, e.g. Europe/Paris (env BILLING_LOCATION)")
	fs.StringVar(&g.dimensions, "dimensions", g.dimensions, "comma-separated attribute `keys`, as the service's Config.Dimensions; empty: every attribute (env BILLING_DIMENSIONS)")
	fs.StringVar(&g.defaultPlan, "default-plan", g.defaultPlan, "`plan` of tenants without one, as the service's Config.DefaultPlan (env BILLING_DEFAULT_PLAN)")
	fs.StringVar(&g.invoicePrefix, "invoice-prefix", g.invoicePrefix, "invoice number `prefix`, as the service's Config.InvoicePrefix; empty: INV- (env BILLING_INVOICE_PREFIX)")
}

// loc returns the --location zone.
func (g *globals) loc() (*time.Location, error) {
	loc, err := time.LoadLocation(g.location)
	if err != nil {
		return nil, usagef("--location %q is not a time zone: give an IANA name such as UTC or Europe/Paris", g.location)
	}
	return loc, nil
}

// dims returns the --dimensions keys; nil when empty.
func (g *globals) dims() []string {
	if strings.TrimSpace(g.dimensions) == "" {
		return nil
	}
	return splitList(g.dimensions)
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
