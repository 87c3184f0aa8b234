package billing_test

import (
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterplane/billing"
)

// parseUUIDv7 checks the RFC 9562 layout of id and returns its 16 bytes.
func parseUUIDv7(t testing.TB, id string) [16]byte {
	t.Helper()
	var u [16]byte
	if len(id) != 36 {
		t.Fatalf("id %q has %d characters, want 36", id, len(id))
	}
	for _, i := range []int{8, 13, 18, 23} {
		if id[i] != '-' {
			t.Fatalf("id %q: no hyphen at %d", id, i)
		}
	}
	if strings.ToLower(id) != id {
		t.Fatalf("id %q is not lower case", id)
	}
	b, err := hex.DecodeString(strings.ReplaceAll(id, "-", ""))
	if err != nil || len(b) != 16 {
		t.Fatalf("id %q is not hex: %v", id, err)
	}
	copy(u[:], b)
	if v := u[6] >> 4; v != 7 {
		t.Fatalf("id %q: version %d, want 7", id, v)
	}
	if u[8]>>6 != 0b10 {
		t.Fatalf("id %q: variant bits %02b, want 10", id, u[8]>>6)
	}
	return u
}

func uuidMillis(u [16]byte) int64 {
	var ms int64
	for _, b := range u[:6] {
		ms = ms<<8 | int64(b)
	}
	return ms
}

func TestNewEventIDTimestamp(t *testing.T) {
	before := time.Now().UnixMilli()
	id := billing.NewEventID()
	after := time.Now().UnixMilli()
	ms := uuidMillis(parseUUIDv7(t, id))
	// The counter may borrow a few milliseconds ahead after a burst of ids (the other tests).
	if ms < before || ms > after+100 {
		t.Errorf("id %s carries %s, want between %s and %s", id, time.UnixMilli(ms).UTC(),
			time.UnixMilli(before).UTC(), time.UnixMilli(after).UTC())
	}
	// An id is an acceptable Event.ID.
	e := billing.Event{ID: id, Tenant: "t", Resource: "r", Quantity: 1}
	if err := e.Validate(); err != nil {
		t.Errorf("Validate with a generated id: %v", err)
	}
}

// 100k ids from several goroutines: all valid, all distinct, strictly increasing within each
// goroutine (lexically, which is how they sort in a store's index).
func TestNewEventIDUniqueAndMonotonic(t *testing.T) {
	const goroutines, perG = 8, 12500
	start := time.Now().UnixMilli()
	ids := make([][]string, goroutines)
	var wg sync.WaitGroup
	for g := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			list := make([]string, perG)
			for i := range list {
				list[i] = billing.NewEventID()
			}
			ids[g] = list
		}()
	}
	wg.Wait()
	end := time.Now().UnixMilli()

	seen := make(map[string]bool, goroutines*perG)
	var maxMS int64
	for g, list := range ids {
		for i, id := range list {
			u := parseUUIDv7(t, id)
			if ms := uuidMillis(u); ms < start {
				t.Fatalf("id %s is older than the test", id)
			} else if ms > maxMS {
				maxMS = ms
			}
			if seen[id] {
				t.Fatalf("duplicate id %s", id)
			}
			seen[id] = true
			if i > 0 && list[i-1] >= id {
				t.Fatalf("goroutine %d: id %d %s does not sort after %s", g, i, id, list[i-1])
			}
		}
	}
	// 12 bits of counter give 4096 ids per millisecond before the clock is borrowed from; at most
	// that many milliseconds can have been borrowed.
	if limit := end + goroutines*perG/4096 + 1; maxMS > limit {
		t.Errorf("ids run %dms ahead of the clock", maxMS-end)
	}
	t.Logf("%d ids in %s", len(seen), strconv.FormatInt(end-start, 10)+"ms")
}
