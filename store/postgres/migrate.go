package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/meterplane/billing"
	mig "github.com/meterplane/billing/internal/migrations"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations returns the embedded migrations in version order.
func migrations() ([]mig.Migration, error) {
	return mig.Read(migrationFiles, "migrations", "postgres")
}

// SchemaVersion is the schema version this build of the store migrates databases to.
func SchemaVersion() int {
	ms, _ := migrations()
	return len(ms)
}

// Version returns the schema version of the opened database: the number of migrations applied.
func (s *Store) Version(ctx context.Context) (int, error) {
	var v int
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM billing_migrations`).Scan(&v); err != nil {
		return 0, translate("read schema version", err)
	}
	return v, nil
}

// migrate creates the schema if needed and applies every pending migration, each in its own
// transaction with its record in billing_migrations, under a session advisory lock so that
// replicas opening the store together migrate once. It refuses a schema newer than this build's.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return translate("connect", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, s.lockKey(lockMigrate)); err != nil {
		return translate("lock migrations", err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, s.lockKey(lockMigrate))
	schema := pgx.Identifier{s.cfg.Schema}.Sanitize()
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
		return translate("create schema "+s.cfg.Schema, err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS billing_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return translate("create billing_migrations", err)
	}
	var current int
	if err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM billing_migrations`).Scan(&current); err != nil {
		return translate("read schema version", err)
	}
	if current > len(ms) {
		return fmt.Errorf("%w: schema %s is at version %d, this build knows up to %d: upgrade "+
			"github.com/meterplane/billing to the version that wrote it", billing.ErrSchemaTooNew, s.cfg.Schema, current, len(ms))
	}
	for _, m := range ms[current:] {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return translate("begin migration", err)
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			tx.Rollback(ctx)
			return translate(fmt.Sprintf("migration %04d_%s", m.Version, m.Name), err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO billing_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			tx.Rollback(ctx)
			return translate("record migration", err)
		}
		if err := tx.Commit(ctx); err != nil {
			return translate("commit migration", err)
		}
	}
	return nil
}
