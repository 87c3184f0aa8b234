// Package sqlite is the embedded billing.Store: one SQLite file (or memory), no server to run.
//
// It uses github.com/mattn/go-sqlite3 (cgo) through github.com/jmoiron/sqlx. A file database runs
// in WAL mode with one writer connection, so writes never contend, and a pool of reader
// connections, so usage queries never wait for writes. The schema is created and upgraded by
// numbered migrations embedded in the binary.
//
//	st, err := sqlite.Open("billing.db") // or ":memory:"
//	if err != nil { ... }
//	defer st.Close()
//	m, err := billing.New(billing.Config{Store: st})
package sqlite

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/meterplane/billing"
)

// Config configures a Store. The zero value opens an in-memory database.
type Config struct {
	// Path is the database file, created if missing. Empty or ":memory:" keeps the database in
	// memory, private to this Store and gone when it closes.
	Path string

	// Synchronous is SQLite's synchronous setting for the file: "FULL" (the default) syncs the
	// write-ahead log on every commit, so a committed event survives power loss; "NORMAL" syncs
	// only at checkpoints, which is faster and still survives a crash of the process (kill -9) but
	// may lose the last commits on power loss.
	Synchronous string

	// BusyTimeout is how long a connection waits for a lock held by another process before it
	// gives up with an error. Defaults to 5 seconds.
	BusyTimeout time.Duration

	// MaxReaders is the size of the reader connection pool. Defaults to 4.
	MaxReaders int
}

// Store is a billing.Store on SQLite. Safe for concurrent use; Close it after the Meters that use
// it.
type Store struct {
	cfg Config
	w   *sqlx.DB // the one writer connection
	r   *sqlx.DB // readers; the writer itself for an in-memory database
}

var _ billing.Store = (*Store)(nil)

// Open opens (creating and migrating if needed) the SQLite database at path with the default
// Config. ":memory:" opens a private in-memory database.
func Open(path string) (*Store, error) { return OpenConfig(Config{Path: path}) }

// OpenConfig opens a Store with cfg, after filling its defaults. It applies any pending schema
// migration, and refuses (with billing.ErrSchemaTooNew) a file migrated by a newer library.
func OpenConfig(cfg Config) (*Store, error) {
	if cfg.Synchronous == "" {
		cfg.Synchronous = "FULL"
	}
	sync := strings.ToUpper(cfg.Synchronous)
	if sync != "FULL" && sync != "NORMAL" {
		return nil, fmt.Errorf("sqlite: Synchronous must be FULL or NORMAL (got %q)", cfg.Synchronous)
	}
	cfg.Synchronous = sync
	if cfg.BusyTimeout < 0 || cfg.MaxReaders < 0 {
		return nil, errors.New("sqlite: BusyTimeout and MaxReaders must not be negative; use 0 for the defaults")
	}
	if cfg.BusyTimeout == 0 {
		cfg.BusyTimeout = 5 * time.Second
	}
	if cfg.MaxReaders == 0 {
		cfg.MaxReaders = 4
	}
	memory := cfg.Path == "" || cfg.Path == ":memory:"
	if strings.ContainsAny(cfg.Path, "?#") || strings.HasPrefix(cfg.Path, "file:") {
		return nil, fmt.Errorf("sqlite: Path %q: give a plain file path, without a file: prefix, ? or #", cfg.Path)
	}
	params := url.Values{}
	params.Set("_busy_timeout", fmt.Sprint(cfg.BusyTimeout.Milliseconds()))
	params.Set("_txlock", "immediate")
	// Keep the writer's statements compiled: appends run a few multi-row statements whose
	// compilation costs more than their execution (see chunkLen in events.go).
	params.Set("_stmt_cache_size", "64")
	params.Set("_synchronous", cfg.Synchronous)
	if !memory {
		params.Set("_journal_mode", "WAL")
	}
	path := cfg.Path
	if memory {
		path = ":memory:"
	}
	w, err := sqlx.Open("sqlite3", path+"?"+params.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{cfg: cfg, w: w, r: w}
	if err := s.migrate(context.Background()); err != nil {
		w.Close()
		return nil, err
	}
	if !memory {
		rp := url.Values{}
		rp.Set("_busy_timeout", fmt.Sprint(cfg.BusyTimeout.Milliseconds()))
		rp.Set("_query_only", "true")
		r, err := sqlx.Open("sqlite3", path+"?"+rp.Encode())
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("sqlite: open readers for %s: %w", cfg.Path, err)
		}
		r.SetMaxOpenConns(cfg.MaxReaders)
		r.SetMaxIdleConns(cfg.MaxReaders)
		s.r = r
	}
	return s, nil
}

// Close closes the database. Close the Meters that use the Store first.
func (s *Store) Close() error {
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// DB returns the writer connection pool, for tests and maintenance (VACUUM, backups). Writing
// through it bypasses the guarantees of the Meter.
func (s *Store) DB() *sqlx.DB { return s.w }

// translate maps driver errors to billing errors at the store boundary.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked) {
		return fmt.Errorf("sqlite: %s: database is locked by another connection or process (busy timeout passed): %w", op, err)
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}
