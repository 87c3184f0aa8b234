package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meterplane/billing/store/postgres"
	"github.com/meterplane/billing/store/sqlite"
)

// target is one database the tests run billingctl against, not created until something opens
// it (billingctl migrate, or open).
type target struct {
	flags  []string          // the global flags that select it: --db ... [--schema ...]
	env    map[string]string // the same, as environment variables
	knows  int               // the schema version its backend migrates to
	open   func(t *testing.T) store
	exists func(t *testing.T) bool // whether the database (file, schema) has been created
}

// backend is a kind of store.
type backend struct {
	name  string
	fresh func(t *testing.T) target // a new, isolated database; skips the test when unavailable
}

// backends are the stores every command is tested against: SQLite always, PostgreSQL when
// BILLING_TEST_POSTGRES holds the URL of a server (each test then gets a schema of its own).
var backends = []backend{
	{"sqlite", freshSQLite},
	{"postgres", freshPostgres},
}

// eachBackend runs test once per backend, as a subtest named after it.
func eachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

func freshSQLite(t *testing.T) target {
	t.Helper()
	path := filepath.Join(t.TempDir(), "billing.db")
	db := "sqlite:" + path
	return target{
		flags: []string{"--db", db},
		env:   map[string]string{"BILLING_DB": db},
		knows: sqlite.SchemaVersion(),
		open: func(t *testing.T) store {
			t.Helper()
			st, err := sqlite.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		exists: func(t *testing.T) bool {
			_, err := os.Stat(path)
			return err == nil
		},
	}
}

func freshPostgres(t *testing.T) target {
	t.Helper()
	url := os.Getenv("BILLING_TEST_POSTGRES")
	if url == "" {
		t.Skip("set BILLING_TEST_POSTGRES to a PostgreSQL URL to run this test on PostgreSQL")
	}
	var b [8]byte
	rand.Read(b[:])
	schema := "t_ctl_" + hex.EncodeToString(b[:])
	// Registered first, so it runs last: after every store of the test is closed.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return target{
		flags: []string{"--db", url, "--schema", schema},
		env:   map[string]string{"BILLING_DB": url, "BILLING_SCHEMA": schema},
		knows: postgres.SchemaVersion(),
		open: func(t *testing.T) store {
			t.Helper()
			st, err := postgres.OpenConfig(context.Background(), postgres.Config{URL: url, Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		exists: func(t *testing.T) bool {
			t.Helper()
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var n int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n > 0
		},
	}
}
