// Package postgres is the billing.Store for services that run many replicas: every replica's
// Meter shares one PostgreSQL database, and Quota (see NewQuota) keeps hard limits exact across
// them.
//
// It uses github.com/jackc/pgx/v5 with a connection pool. Every table lives in one schema
// (Config.Schema, "billing" by default), created and upgraded by numbered migrations embedded in
// the binary, under an advisory lock so that replicas starting together migrate once. Events are
// kept in a table partitioned by month; the store creates partitions ahead of time, and
// DropEventsBefore drops whole old months.
//
//	st, err := postgres.Open(ctx, "postgres://user@host:5432/db")
//	if err != nil { ... }
//	defer st.Close()
//	m, err := billing.New(billing.Config{Store: st, Quota: st.Quota(postgres.QuotaConfig{})})
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meterplane/billing"
)

// Config configures a Store. URL is required; the other fields have defaults.
type Config struct {
	// URL is the connection string, such as "postgres://user:pass@host:5432/db?sslmode=disable"
	// (any form pgx accepts).
	URL string

	// Schema is the schema that holds the store's tables, created if missing. Defaults to
	// "billing". Several independent stores can share a database under different schemas.
	Schema string

	// MaxConns is the size of the connection pool. Defaults to 16.
	MaxConns int32

	// PartitionsAhead is how many monthly event partitions beyond the current month the store
	// keeps created. Defaults to 2.
	PartitionsAhead int

	// Now is the store's clock, used to decide which partitions to create ahead. Defaults to
	// time.Now.
	Now func() time.Time
}

// Store is a billing.Store on PostgreSQL. Safe for concurrent use by any number of Meters in any
// number of processes; Close it after the Meters that use it.
type Store struct {
	cfg  Config
	pool *pgxpool.Pool
	// lockBase salts advisory lock keys with the schema, so stores in different schemas of
	// one database never block each other.
	lockBase int64
	parts    partitions // monthly event partitions known to exist
	shards   chan int16 // the rollup shards free for an append (see takeShard)
	leases   leaseHook  // the Quotas built on this store, told about committed reservations
}

var _ billing.Store = (*Store)(nil)

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CheckSchema reports whether name is a schema name the store accepts: lower-case letters,
// digits and _, starting with a letter or _, at most 63 characters.
func CheckSchema(name string) error {
	if !schemaName.MatchString(name) {
		return fmt.Errorf("%q: use lower-case letters, digits and _, starting with a letter or _ (at most 63 characters)", name)
	}
	return nil
}

// Open opens the Store at url with the default Config, creating and migrating its schema if
// needed.
func Open(ctx context.Context, url string) (*Store, error) {
	return OpenConfig(ctx, Config{URL: url})
}

// OpenConfig opens a Store with cfg after filling its defaults. It creates cfg.Schema if needed,
// applies any pending migration, refuses (with billing.ErrSchemaTooNew) a schema migrated by a
// newer library, and creates the event partitions of the current month and the next ones.
func OpenConfig(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.URL == "" {
		return nil, errors.New("postgres: Config.URL is required, such as postgres://user@localhost:5432/db")
	}
	if cfg.Schema == "" {
		cfg.Schema = "billing"
	}
	if err := CheckSchema(cfg.Schema); err != nil {
		return nil, fmt.Errorf("postgres: Config.Schema: %w", err)
	}
	if cfg.MaxConns < 0 || cfg.PartitionsAhead < 0 {
		return nil, errors.New("postgres: Config.MaxConns and Config.PartitionsAhead must not be negative; use 0 for the defaults")
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 16
	}
	if cfg.PartitionsAhead == 0 {
		cfg.PartitionsAhead = 2
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres: Config.URL: %w", err)
	}
	pc.MaxConns = cfg.MaxConns
	pc.ConnConfig.RuntimeParams["search_path"] = cfg.Schema
	pc.ConnConfig.RuntimeParams["timezone"] = "UTC"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, translate("connect", err)
	}
	h := fnv.New64a()
	h.Write([]byte("meterplane/billing:" + cfg.Schema))
	s := &Store{cfg: cfg, pool: pool, lockBase: int64(h.Sum64() &^ 0xffff), shards: newShards()}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.ensurePartitionsAhead(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the connection pool. Close the Meters (and Quotas) that use the Store first.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Pool returns the connection pool, for tests and maintenance. Writing through it bypasses the
// guarantees of the Meter.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Schema returns the schema that holds the store's tables.
func (s *Store) Schema() string { return s.cfg.Schema }

// Advisory lock keys: lockBase plus one of these.
const (
	lockMigrate  = 1 // migrations
	lockAppend   = 2 // appends take it shared; CloseSpan and RebuildRollups exclusive
	lockSequence = 3 // invoice numbering
	lockQuota    = 4 // base of per-key quota locks (lockBase + lockQuota + hash&0xfff)
)

// lockKey returns the advisory lock key for one of the lock* constants.
func (s *Store) lockKey(k int64) int64 { return s.lockBase + k }

// translate maps driver errors to billing errors at the store boundary. Callers wrap errors
// of their own (not-found, closed periods) before they reach it.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("postgres: %s: %s (SQLSTATE %s): %w", op, pe.Message, pe.Code, err)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: %s: %w", op, billing.ErrNotFound)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// retryable reports whether err is a serialization failure or a deadlock, after which the
// whole transaction may simply be run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}
