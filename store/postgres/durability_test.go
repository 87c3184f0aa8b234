//go:build unix

package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/postgres"
	"github.com/meterplane/billing/store/storetest"
)

// The durability test (promise 4: an acknowledged event survives a kill -9) on PostgreSQL: see
// storetest.Kill9. The children write into the parent's schema; each round starts while the
// server may still be cleaning up after the previous child's connections.

func durability(target string) storetest.Durability {
	open := func(url string) func(schema string) (billing.Store, error) {
		return func(schema string) (billing.Store, error) {
			return postgres.OpenConfig(context.Background(), postgres.Config{URL: url, Schema: schema})
		}
	}
	url := os.Getenv("BILLING_TEST_POSTGRES")
	return storetest.Durability{
		Target: target,
		Open:   open(url),
		// The child names its connections, so that the parent can wait for them (Settle).
		OpenChild: func(schema string) (billing.Store, error) { return open(childURL(url, schema))(schema) },
		Events:    func(st billing.Store) ([]storetest.StoredEvent, error) { return storedEvents(st.(*postgres.Store)) },
		Settle: func(t *testing.T, st billing.Store, schema string) {
			waitChildBackends(t, st.(*postgres.Store), schema)
		},
	}
}

func TestDurabilityKill9(t *testing.T) { storetest.Kill9(t, durability(testSchema(t))) }

// TestDurabilityChild is the child process of TestDurabilityKill9; without its environment it
// skips.
func TestDurabilityChild(t *testing.T) { storetest.DurabilityChild(t, durability("")) }

// storedEvents reads every stored event, after checking that each has its row in event_ids.
func storedEvents(st *postgres.Store) ([]storetest.StoredEvent, error) {
	ctx := context.Background()
	rows, err := st.Pool().Query(ctx, `SELECT tenant, id, resource, quantity, attrs FROM events`)
	if err != nil {
		return nil, err
	}
	stored, err := pgx.CollectRows(rows, pgx.RowToStructByPos[storetest.StoredEvent])
	if err != nil {
		return nil, err
	}
	var ids int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM event_ids`).Scan(&ids); err != nil {
		return nil, err
	}
	if ids != len(stored) {
		return nil, fmt.Errorf("%d event ids for %d events", ids, len(stored))
	}
	return stored, nil
}

// childURL is url with an application_name that names the child's connections, so that the
// parent can wait for them.
func childURL(url, schema string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "application_name=dur_" + schema
}

// waitChildBackends waits until no server backend of the killed child is still running a
// transaction. A client killed with SIGKILL does not stop its backend: a batch it sent whole
// (with its Sync) still commits, after the kill. Reading events and then usage while it does would
// see the batch in one read and not the other.
func waitChildBackends(t *testing.T, st *postgres.Store, schema string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var busy int
		if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = $1 AND state IS DISTINCT FROM 'idle'`, "dur_"+schema).Scan(&busy); err != nil {
			t.Fatalf("read pg_stat_activity: %v", err)
		}
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backends of the killed child still busy after 30s", busy)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
