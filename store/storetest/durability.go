//go:build unix

package storetest

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

	"github.com/meterplane/billing"
)

// The durability test (promise 4: an acknowledged event survives a kill -9), for any backend.
// The parent test runs its own test binary again as a child that tracks events in durable mode
// and prints the id of every event whose Track returned nil; the parent kills it with SIGKILL at
// a random moment, opens the database and checks what survived. The rounds share one database,
// so each round also starts from the recovery of the previous kill, and re-sends ids stored by
// earlier rounds.
//
// A backend runs it with two tests in one package:
//
//	func TestDurabilityKill9(t *testing.T) { storetest.Kill9(t, durability(t, target)) }
//	func TestDurabilityChild(t *testing.T) { storetest.DurabilityChild(t, durability(t, "")) }
//
// The child must be named TestDurabilityChild: the parent runs it with -test.run.

// Durability describes a backend to Kill9 and DurabilityChild.
type Durability struct {
	// Target names the database the children write and the parent checks (a file path, a
	// schema). Kill9 passes it to the child through its environment; DurabilityChild ignores it.
	Target string
	// Open opens the Store at target, for the parent's checks after each kill.
	Open func(target string) (billing.Store, error)
	// OpenChild opens the Store at target in the child. Nil means Open.
	OpenChild func(target string) (billing.Store, error)
	// Events returns every event stored in st, read from the backend's own tables.
	Events func(st billing.Store) ([]StoredEvent, error)
	// Settle, when set, runs in the parent after a kill, before anything is read: a server-side
	// store waits there for the killed child's sessions to end.
	Settle func(t *testing.T, st billing.Store, target string)
}

const (
	durEnvTarget = "BILLING_DURABILITY_CHILD_TARGET" // set: DurabilityChild is the child
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

// DurabilityChild is the child process of Kill9; without the environment Kill9 gives it, it
// skips.
func DurabilityChild(t *testing.T, d Durability) {
	target := os.Getenv(durEnvTarget)
	if target == "" {
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
	open := d.OpenChild
	if open == nil {
		open = d.Open
	}
	st, err := open(target)
	if err != nil {
		fail("open: %v", err)
	}
	m, err := billing.New(billing.Config{Store: st}) // durable: Track returns once committed
	if err != nil {
		fail("new meter: %v", err)
	}
	// Ids stored by earlier rounds: up to 1000 of them are re-sent below, and must stay counted once.
	stored, err := d.Events(st)
	if err != nil {
		fail("read stored ids: %v", err)
	}
	rand.Shuffle(len(stored), func(i, j int) { stored[i], stored[j] = stored[j], stored[i] })
	var old []string
	for _, e := range stored[:min(len(stored), 1000)] {
		old = append(old, e.ID)
	}
	if _, err := os.Stdout.Write([]byte(durReady + "\n")); err != nil {
		fail("write: %v", err)
	}

	ctx := context.Background()
	deadline := time.Now().Add(durChildLimit)
	var wg sync.WaitGroup
	for g := range durGoroutines {
		wg.Go(func() {
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
		})
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

// Kill9 is the parent of the durability test: durRounds children track into d.Target and are
// killed with SIGKILL at random moments (every fifth around its start, while it opens and
// recovers the database); after each kill every acknowledged id must be stored exactly once,
// nothing stored that was not sent, and the rollups equal the stored events. Inside the child it
// skips.
func Kill9(t *testing.T, d Durability) {
	if os.Getenv(durEnvTarget) != "" {
		t.Skip("inside the child")
	}
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
		// database) kills it around the time it starts, opens (migrates, recovers) and begins.
		early := round%5 == 0
		delay := time.Duration(rng.Int64N(int64(150 * time.Millisecond)))
		if early {
			delay = time.Duration(rng.Int64N(int64(2 * readyIn)))
		}
		res := runDurabilityChild(t, d.Target, round, rng.Uint64(), early, delay)
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
		stored := checkDurability(t, d, round, acked, maxCall)
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
func runDurabilityChild(t *testing.T, target string, round int, seed uint64, early bool, delay time.Duration) durRoundResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurabilityChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		durEnvTarget+"="+target,
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

// checkDurability opens the database after a kill and checks promises 1, 2 and 4: every
// acknowledged id is stored exactly once, nothing is stored that the child did not send, and the
// rollups (totals and hour, day, month buckets) equal the stored events. It returns the number of
// stored events.
func checkDurability(t *testing.T, d Durability, round int, acked map[string]bool, maxCall map[[2]int]int) int {
	t.Helper()
	st, err := d.Open(d.Target)
	if err != nil {
		t.Fatalf("round %d: opening after the kill: %v", round, err)
	}
	if c, ok := st.(interface{ Close() error }); ok {
		defer c.Close()
	}
	if d.Settle != nil {
		d.Settle(t, st, d.Target)
	}
	stored, err := d.Events(st)
	if err != nil {
		t.Fatalf("round %d: read events: %v", round, err)
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
	CheckUsageMatchesEvents(t, st, stored, fmt.Sprintf("round %d", round))
	return len(stored)
}
