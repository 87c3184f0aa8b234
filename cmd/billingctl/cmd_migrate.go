package main

import (
	"context"
	"fmt"
)

// runMigrate creates the database if needed and applies every pending schema migration.
func runMigrate(ctx context.Context, c *cli, args []string) (err error) {
	fs := c.flagSet("migrate", "[--db sqlite:PATH | --db postgres://... [--schema NAME]]", `Creates the database if it does not exist (an SQLite file, or the --schema of a PostgreSQL
database) and applies every pending schema migration (each in its own transaction; safe to run
while the service runs, and again: it is idempotent). Prints the schema version before and after.
A database migrated by a newer library is refused (exit code 5); a PostgreSQL server that cannot
be reached exits with code 6.
`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("migrate", pos); err != nil {
		return err
	}
	s, err := c.open(ctx, true)
	if err != nil {
		return err
	}
	defer s.closeInto(&err)
	version, err := s.st.Version(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", s.db, err)
	}
	if version == s.before {
		fmt.Fprintf(c.stdout, "%s: schema version %d, up to date (this billingctl knows up to %d)\n", s.db, version, s.knows)
		return nil
	}
	fmt.Fprintf(c.stdout, "%s: schema version %d -> %d (this billingctl knows up to %d)\n", s.db, s.before, version, s.knows)
	return nil
}
