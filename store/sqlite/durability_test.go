//go:build unix

package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
	"github.com/meterplane/billing/store/storetest"
)

// The durability test (promise 4: an acknowledged event survives a kill -9) on one SQLite file
// (synchronous FULL, WAL): see storetest.Kill9. The rounds share the file, so each round also
// starts from the recovery of the previous kill.

func durability(target string) storetest.Durability {
	return storetest.Durability{
		Target: target,
		Open:   func(path string) (billing.Store, error) { return sqlite.Open(path) },
		Events: func(st billing.Store) ([]storetest.StoredEvent, error) {
			var stored []struct {
				Tenant   string `db:"tenant"`
				ID       string `db:"id"`
				Resource string `db:"resource"`
				Quantity int64  `db:"quantity"`
				Attrs    string `db:"attrs"`
			}
			if err := st.(*sqlite.Store).DB().Select(&stored, `SELECT tenant, id, resource, quantity, attrs FROM events`); err != nil {
				return nil, err
			}
			out := make([]storetest.StoredEvent, len(stored))
			for i, e := range stored {
				out[i] = storetest.StoredEvent(e)
			}
			return out, nil
		},
	}
}

func TestDurabilityKill9(t *testing.T) {
	storetest.Kill9(t, durability(filepath.Join(t.TempDir(), "durability.db")))
}

// TestDurabilityChild is the child process of TestDurabilityKill9; without its environment it
// skips.
func TestDurabilityChild(t *testing.T) { storetest.DurabilityChild(t, durability("")) }
