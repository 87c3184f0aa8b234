package main

import (
	"context"
	"fmt"

	"github.com/meterplane/billing/store/sqlite"
)

// runMigrate creates the database if needed and applies every pending schema migration.
func runMigrate(ctx context.Context, c *cli, args []string) (err error) {
	fs := c.flagSet("migrate", "[--db sqlite:PATH]", `Creates the database file if it does not exist and applies every pending schema migration
(each in its own transaction; safe to run while the service runs, and again: it is idempotent).
Prints the schema version. A database migrated by a newer library is refused (exit code 5).
`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("migrate", pos); err != nil {
		return err
	}
	s, err := c.open(true)
	if err != nil {
		return err
	}
	defer s.closeInto(&err)
	version, err := s.st.Version(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", s.db, err)
	}
	fmt.Fprintf(c.stdout, "%s: schema version %d (this billingctl knows up to %d)\n", s.db, version, sqlite.SchemaVersion())
	return nil
}
