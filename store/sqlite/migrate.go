package sqlite

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/meterplane/billing"
	mig "github.com/meterplane/billing/internal/migrations"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations returns the embedded migrations in version order.
func migrations() ([]mig.Migration, error) {
	return mig.Read(migrationFiles, "migrations", "sqlite")
}

// SchemaVersion is the schema version this build of the store migrates databases to.
func SchemaVersion() int {
	ms, _ := migrations()
	return len(ms)
}

// Version returns the schema version of the opened database: the number of migrations applied
// to it (SchemaVersion once Open has migrated it). Safe for concurrent use.
func (s *Store) Version(ctx context.Context) (int, error) {
	var v int
	if err := s.r.GetContext(ctx, &v, `SELECT COALESCE(MAX(version), 0) FROM billing_migrations`); err != nil {
		return 0, translate("read schema version", err)
	}
	return v, nil
}

// migrate applies every pending migration, each in its own transaction with its record in
// billing_migrations. It refuses a database whose version is newer than this build's.
//
// Processes that open a new file at the same moment race to create it, and SQLite may then answer
// "database is locked" at once instead of waiting for the busy timeout. Every step is idempotent
// (a migration is applied in one transaction that checks the version first), so such an error is
// retried until the busy timeout.
func (s *Store) migrate(ctx context.Context) error {
	deadline := time.Now().Add(s.cfg.BusyTimeout)
	for {
		err := s.migrateTo(ctx, -1)
		var se sqlite3.Error
		if err == nil || !errors.As(err, &se) || se.Code != sqlite3.ErrBusy || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// migrateTo migrates up to version target (-1: the latest).
func (s *Store) migrateTo(ctx context.Context, target int) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if target < 0 {
		target = len(ms)
	}
	// Several processes may open a new file at once. The writer's transactions are IMMEDIATE: they
	// wait (busy timeout) for the write lock, where a plain statement that reads the schema and then
	// writes fails at once with "database is locked" if another process wrote in between.
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return translate("begin migrations", err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS billing_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL)`); err != nil {
		tx.Rollback()
		return translate("create billing_migrations", err)
	}
	if err := tx.Commit(); err != nil {
		return translate("create billing_migrations", err)
	}
	var current int
	if err := s.w.GetContext(ctx, &current, `SELECT COALESCE(MAX(version), 0) FROM billing_migrations`); err != nil {
		return translate("read schema version", err)
	}
	if current > len(ms) {
		return fmt.Errorf("%w: %s is at schema version %d, this build knows up to %d: upgrade "+
			"github.com/meterplane/billing to the version that wrote it", billing.ErrSchemaTooNew, s.cfg.Path, current, len(ms))
	}
	for _, m := range ms[min(current, target):target] {
		tx, err := s.w.BeginTxx(ctx, nil)
		if err != nil {
			return translate("begin migration", err)
		}
		// Another process may have applied it since we looked: the IMMEDIATE transaction holds
		// the write lock, so read the version again under it.
		var now int
		if err := tx.GetContext(ctx, &now, `SELECT COALESCE(MAX(version), 0) FROM billing_migrations`); err != nil {
			tx.Rollback()
			return translate("read schema version", err)
		}
		if now >= m.Version {
			tx.Rollback()
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			tx.Rollback()
			return translate(fmt.Sprintf("migration %04d_%s", m.Version, m.Name), err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO billing_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UTC().Format(time.RFC3339)); err != nil {
			tx.Rollback()
			return translate("record migration", err)
		}
		if err := tx.Commit(); err != nil {
			return translate("commit migration", err)
		}
	}
	return nil
}
