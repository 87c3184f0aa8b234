//go:build unix

package postgres_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/postgres"
)

// The durability test (promise 4: an acknowledged event survives a kill -9), on PostgreSQL. The
// parent test runs this test binary again as a child that tracks events in durable mode into the
// parent's schema and prints the id of every event whose Track returned nil; the parent kills it
// with SIGKILL at a random moment and checks what the database holds. The rounds share one
// schema, so each round also re-sends ids stored by earlier rounds, and starts while the server
// may still be cleaning up after the previous child's connections.

const (
	durEnvSchema = "BILLING_DURABILITY_CHILD_SCHEMA" // set: TestDurabilityChild is the child
	durEnvRound  = "BILLING_DURABILITY_CHILD_ROUND"
	durEnvSeed   = "BILLING_DURABILITY_CHILD_SEED"
	durEnvReplay = "BILLING_DURABILITY_SEED" // optional: the parent's seed, to replay a failure

	durRounds     = 20
	durGoroutines = 8 // concurrent Track callers in the child
	durMaxPerCall = 4 // events of one Track call: 1..durMaxPerCall
	durReady      = "ready"
	durChildLimit = 20 * time.Second // a child that is never killed stops by itself
)

// durEvent returns the event with the given id. Everything but the id is derived from it, so a
// re-sent id always carries the same content (a duplicate, never a conflict), and the parent can
// check stored events against their ids.
func durEvent(id string) billing.Event {
	h := fnv.New64a()
	h.Write([]byte(id))
	x := h.Sum64()
	e := billing.Event{
		ID:       id,
		Tenant:   "tenant-" + strconv.Itoa(int(x%3)),
		Resource: []string{"requests", "tokens.output"}[(x>>8)%2],
		Quantity: 1 + int64((x>>16)%1000),
	}
	if model := (x >> 32) % 4; model < 3 { // a quarter of the events have no attributes
		e.Attrs = map[string]string{"model": []string{"gpt-4o", "gpt-4o-mini", "o3"}[model]}
	}
	return e
}

// durID is the id of event k of call c of goroutine g in round r.
func durID(r, g, c, k int) string { return fmt.Sprintf("r%d-g%d-c%d-e%d", r, g, c, k) }

// parseDurID is the inverse of durID.
func parseDurID(id string) (r, g, c, k int, ok bool) {
	n, err := fmt.Sscanf(id, "r%d-g%d-c%d-e%d", &r, &g, &c, &k)
	return r, g, c, k, err == nil && n == 4 && durID(r, g, c, k) == id
}

// durCallSize is how many new events call c of goroutine g in round r carries.
func durCallSize(r, g, c int) int {
	h := fnv.New32a()
	fmt.Fprintf(h, "%d/%d/%d", r, g, c)
	return 1 + int(h.Sum32()%durMaxPerCall)
}

// TestDurabilityChild is the child process of TestDurabilityKill9; without its environment
// variables it skips.
func TestDurabilityChild(t *testing.T) {
	schema := os.Getenv(durEnvSchema)
	if schema == "" {
		t.Skip("the child of TestDurabilityKill9; runs only when started by it")
	}
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "durability child: "+format+"\n", args...)
		os.Exit(3)
	}
	round, err := strconv.Atoi(os.Getenv(durEnvRound))
	if err != nil {
		fail("bad %s: %v", durEnvRound, err)
	}
	seed, err := strconv.ParseUint(os.Getenv(durEnvSeed), 10, 64)
	if err != nil {
		fail("bad %s: %v", durEnvSeed, err)
	}
	ctx := context.Background()
	st, err := postgres.OpenConfig(ctx, postgres.Config{URL: childURL(os.Getenv("BILLING_TEST_POSTGRES"), schema), Schema: schema})
	if err != nil {
		fail("open: %v", err)
	}
	m, err := billing.New(billing.Config{Store: st}) // durable: Track returns once committed
	if err != nil {
		fail("new meter: %v", err)
	}
	// Ids stored by earlier rounds: re-sent below, they must stay counted once.
	rows, err := st.Pool().Query(ctx, `SELECT id FROM events ORDER BY random() LIMIT 1000`)
	if err != nil {
		fail("read stored ids: %v", err)
	}
	old, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		fail("read stored ids: %v", err)
	}
	if _, err := os.Stdout.Write([]byte(durReady + "\n")); err != nil {
		fail("write: %v", err)
	}

	deadline := time.Now().Add(durChildLimit)
	var wg sync.WaitGroup
	for g := range durGoroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			var line []byte
			for c := 0; time.Now().Before(deadline); c++ {
				var events []billing.Event
				for k := range durCallSize(round, g, c) {
					events = append(events, durEvent(durID(round, g, c, k)))
				}
				switch {
				case len(old) > 0 && rng.IntN(3) == 0: // an id stored by an earlier round
					events = append(events, durEvent(old[rng.IntN(len(old))]))
				case c > 0 && rng.IntN(4) == 0: // an id this goroutine got acknowledged already
					events = append(events, durEvent(durID(round, g, rng.IntN(c), 0)))
				case rng.IntN(5) == 0: // the same id twice in one call
					events = append(events, events[0])
				}
				rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
				if err := m.Track(ctx, events...); err != nil {
					fail("Track(%d events, first id %s): %v", len(events), events[0].ID, err)
				}
				// Acknowledged: one write of whole lines, so a kill cannot interleave them.
				line = line[:0]
				for _, e := range events {
					line = append(line, e.ID...)
					line = append(line, '\n')
				}
				if _, err := os.Stdout.Write(line); err != nil {
					fail("write: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	fail("not killed within %v", durChildLimit)
}

// durRoundResult is what the parent learned from one child.
type durRoundResult struct {
	acked   []string // ids acknowledged by the child, from complete lines only
	ready   bool
	readyIn time.Duration // from start to the "ready" line
	partial int           // bytes of an incomplete last line, ignored
}

func TestDurabilityKill9(t *testing.T) {
	if os.Getenv(durEnvSchema) != "" {
		t.Skip("inside the child")
	}
	schema := testSchema(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(durEnvReplay); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("bad %s: %v", durEnvReplay, err)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", seed, durEnvReplay, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	acked := make(map[string]bool)  // every id acknowledged in any round
	maxCall := make(map[[2]int]int) // (round, goroutine) -> last acknowledged call
	totalAcked, killedBeforeReady := 0, 0
	readyIn := 10 * time.Millisecond // how long the last child took to be ready
	start := time.Now()
	for round := range durRounds {
		// Most rounds kill a running child; every fifth (the first included, which creates the
		// schema) kills it around the time it starts, opens (migrates) and begins.
		early := round%5 == 0
		delay := time.Duration(rng.Int64N(int64(150 * time.Millisecond)))
		if early {
			delay = time.Duration(rng.Int64N(int64(2 * readyIn)))
		}
		res := runDurabilityChild(t, schema, round, rng.Uint64(), early, delay)
		if !res.ready {
			killedBeforeReady++
		} else if !early {
			readyIn = res.readyIn
		}
		fresh := 0
		for _, id := range res.acked {
			r, g, c, _, ok := parseDurID(id)
			if !ok {
				t.Fatalf("round %d: the child acknowledged %q, which it never generates", round, id)
			}
			if !acked[id] {
				fresh++
			}
			acked[id] = true
			if r == round {
				maxCall[[2]int{r, g}] = max(lastAcked(maxCall, r, g), c)
			}
		}
		totalAcked += fresh
		stored := checkDurabilitySchema(t, schema, round, acked, maxCall)
		readyIn := "never"
		if res.ready {
			readyIn = res.readyIn.Round(time.Microsecond).String()
		}
		t.Logf("round %2d: ready after %-10s kill after %-10v (from %s); %4d ids acknowledged (%4d new), %6d events stored, %d partial bytes ignored",
			round, readyIn, delay.Round(time.Microsecond), map[bool]string{true: "start", false: "ready"}[early],
			len(res.acked), fresh, stored, res.partial)
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d rounds in %v: %d distinct ids acknowledged, %d children killed before they were ready",
		durRounds, time.Since(start).Round(time.Millisecond), len(acked), killedBeforeReady)
	if totalAcked == 0 {
		t.Fatal("no child acknowledged any event: the test proved nothing")
	}
}

// runDurabilityChild starts the child for one round, kills it with SIGKILL after delay (counted
// from its start when early, else from its "ready" line), and returns what it printed.
func runDurabilityChild(t *testing.T, schema string, round int, seed uint64, early bool, delay time.Duration) durRoundResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurabilityChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		durEnvSchema+"="+schema,
		durEnvRound+"="+strconv.Itoa(round),
		durEnvSeed+"="+strconv.FormatUint(seed, 10),
	)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()

	var res durRoundResult
	ready := make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		br := bufio.NewReader(stdout)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				res.partial = len(line) // cut by the kill: not an acknowledgement
				if errors.Is(err, io.EOF) {
					err = nil
				}
				readDone <- err
				return
			}
			line = strings.TrimSuffix(line, "\n")
			if line == durReady && !res.ready {
				res.ready, res.readyIn = true, time.Since(started)
				close(ready)
				continue
			}
			res.acked = append(res.acked, line)
		}
	}()

	if early {
		time.Sleep(delay)
	} else {
		select {
		case <-ready:
			time.Sleep(delay)
		case err := <-readDone: // the child ended before it was ready
			cmd.Wait()
			t.Fatalf("round %d: the child exited before it was ready (%v): %s", round, err, stderr.String())
		case <-time.After(15 * time.Second):
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			t.Fatalf("round %d: the child was not ready after 15s: %s", round, stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("round %d: kill: %v", round, err)
	}
	if err := <-readDone; err != nil {
		t.Fatalf("round %d: reading the child's output: %v", round, err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("round %d: the child ended without being killed (%v) after %v: %s", round, err, time.Since(started), stderr.String())
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("round %d: the child ended by itself (%v), not by SIGKILL: %s", round, err, stderr.String())
	}
	return res
}

// lastAcked returns the last acknowledged call of goroutine g in round r, or -1.
func lastAcked(maxCall map[[2]int]int, r, g int) int {
	if c, ok := maxCall[[2]int{r, g}]; ok {
		return c
	}
	return -1
}

// checkDurabilitySchema opens the schema after a kill and checks promises 1, 2 and 4: every
// acknowledged id is stored exactly once, nothing is stored that the child did not send, and the
// rollups (totals and hour, day, month buckets) equal the stored events. It returns the number of
// stored events.
func checkDurabilitySchema(t *testing.T, schema string, round int, acked map[string]bool, maxCall map[[2]int]int) int {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.OpenConfig(ctx, postgres.Config{URL: testURL(t), Schema: schema})
	if err != nil {
		t.Fatalf("round %d: opening after the kill: %v", round, err)
	}
	defer st.Close()
	waitChildBackends(t, st, schema)

	type storedEvent struct {
		Tenant, ID, Resource string
		Quantity             int64
		Attrs                string
	}
	rows, err := st.Pool().Query(ctx, `SELECT tenant, id, resource, quantity, attrs FROM events`)
	if err != nil {
		t.Fatalf("round %d: read events: %v", round, err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowToStructByPos[storedEvent])
	if err != nil {
		t.Fatalf("round %d: read events: %v", round, err)
	}
	if n := count(t, st, `SELECT count(*) FROM event_ids`); n != int64(len(stored)) {
		t.Errorf("round %d: %d event ids for %d events", round, n, len(stored))
	}
	seen := make(map[string]int, len(stored))
	for _, e := range stored {
		seen[e.ID]++
		r, g, c, k, ok := parseDurID(e.ID)
		switch {
		case !ok:
			t.Errorf("round %d: stored id %q was never generated", round, e.ID)
			continue
		case r > round || g >= durGoroutines || k >= durCallSize(r, g, c):
			t.Errorf("round %d: stored id %q was never generated", round, e.ID)
		case c > lastAcked(maxCall, r, g)+1:
			// Goroutine g sends call c+1 only after call c was acknowledged; only the call after
			// the last acknowledged one may be committed without an acknowledgement.
			t.Errorf("round %d: stored id %q, but goroutine %d of round %d had call %d acknowledged last",
				round, e.ID, g, r, lastAcked(maxCall, r, g))
		}
		want := durEvent(e.ID)
		if e.Tenant != want.Tenant || e.Resource != want.Resource || e.Quantity != want.Quantity ||
			e.Attrs != billing.EncodeAttrs(want.Attrs) {
			t.Errorf("round %d: stored event %+v differs from the one sent: %+v", round, e, want)
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("round %d: id %q stored %d times", round, id, n)
		}
	}
	missing := 0
	for id := range acked {
		if seen[id] == 0 {
			if missing++; missing <= 10 {
				t.Errorf("round %d: acknowledged id %q is not stored", round, id)
			}
		}
	}
	if missing > 10 {
		t.Errorf("round %d: %d acknowledged ids are missing in all", round, missing)
	}
	checkRollupsEqualEvents(t, st, fmt.Sprintf("round %d", round))
	return len(stored)
}

// checkRollupsEqualEvents checks that the usage of every window (from the rollups) equals the
// sums of the stored events, per tenant and resource.
func checkRollupsEqualEvents(t *testing.T, st *postgres.Store, when string) {
	t.Helper()
	ctx := context.Background()
	type key struct{ tenant, resource string }
	type agg struct{ sum, count, max int64 }
	rows, err := st.Pool().Query(ctx, `SELECT tenant, resource, sum(quantity)::bigint, count(*), max(quantity)
		FROM events GROUP BY tenant, resource`)
	if err != nil {
		t.Fatalf("%s: sum events: %v", when, err)
	}
	want := make(map[key]agg)
	var (
		k key
		a agg
	)
	if _, err := pgx.ForEachRow(rows, []any{&k.tenant, &k.resource, &a.sum, &a.count, &a.max}, func() error {
		want[k] = a
		return nil
	}); err != nil {
		t.Fatalf("%s: sum events: %v", when, err)
	}
	m, err := billing.New(billing.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, window := range billing.Periods {
		rows, err := m.Usage(ctx, billing.UsageQuery{Window: window})
		if err != nil {
			t.Fatalf("%s: Usage(window %s): %v", when, window, err)
		}
		got := make(map[key]agg)
		for _, r := range rows {
			a := got[key{r.Tenant, r.Resource}]
			a.sum += r.Sum
			a.count += r.Count
			a.max = max(a.max, r.Max)
			got[key{r.Tenant, r.Resource}] = a
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: window %s: %s/%s usage is %+v, events say %+v", when, window, k.tenant, k.resource, got[k], w)
			}
		}
		for k, g := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: window %s: usage %+v for %s/%s, which has no events", when, window, g, k.tenant, k.resource)
			}
		}
	}
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
