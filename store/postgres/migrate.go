package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/meterplane/billing"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered schema change, from migrations/NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("postgres: migration file %s is not named NNNN_name.sql", e.Name())
		}
		body, err := fs.ReadFile(migrationFiles, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("postgres: migrations must be numbered 1, 2, 3...; found %d at position %d", m.version, i+1)
		}
	}
	return out, nil
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
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			tx.Rollback(ctx)
			return translate(fmt.Sprintf("migration %04d_%s", m.version, m.name), err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO billing_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
			tx.Rollback(ctx)
			return translate("record migration", err)
		}
		if err := tx.Commit(ctx); err != nil {
			return translate("commit migration", err)
		}
	}
	return nil
}
