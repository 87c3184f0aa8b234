package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/postgres"
	"github.com/meterplane/billing/store/storetest"
)

// The fault tests check promises 1, 2 and 4 across losses of the database: durable Track calls
// fail while PostgreSQL is unreachable, callers retry them with the same ids, and in the end
// every acknowledged event is stored exactly once and the rollups equal the events.

// faultProxy forwards TCP connections to PostgreSQL, and can cut them all and refuse new ones.
type faultProxy struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

// startProxy listens on a free local port and forwards to upstream (host:port) until the test ends.
func startProxy(t *testing.T, upstream string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, upstream: upstream, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *faultProxy) forward(c net.Conn) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		c.Close()
		return
	}
	u, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down { // cut while dialing
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(u, c)
	go pipe(c, u)
	<-done
	c.Close()
	u.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

// cut closes every forwarded connection and refuses new ones until restore.
func (p *faultProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// restore lets connections through again.
func (p *faultProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// proxiedURL returns the test database URL with its host replaced by the proxy's address.
func proxiedURL(t *testing.T, p *faultProxy) string {
	t.Helper()
	u, err := url.Parse(testURL(t))
	if err != nil {
		t.Fatalf("BILLING_TEST_POSTGRES: %v", err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// upstreamAddr returns host:port of the test database URL.
func upstreamAddr(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(testURL(t))
	if err != nil {
		t.Fatalf("BILLING_TEST_POSTGRES: %v", err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5432")
	}
	return host
}

const faultCallers = 32

// faultEvents returns the events of call c of caller g: 1 to 3 events whose content derives
// from their ids.
func faultEvents(g, c int) []billing.Event {
	var out []billing.Event
	for k := range 1 + (g+c)%3 {
		out = append(out, billing.Event{
			ID:       fmt.Sprintf("g%d-c%d-e%d", g, c, k),
			Tenant:   fmt.Sprintf("tenant-%d", (g+k)%4),
			Resource: []string{"requests", "tokens.output"}[(c+k)%2],
			Quantity: int64(1 + (g*31+c*7+k)%100),
			Attrs:    map[string]string{"model": []string{"a", "b", "c"}[(g+c+k)%3]},
		})
	}
	return out
}

// faultOutcome is what the callers of one fault scenario were told.
type faultOutcome struct {
	acked        map[string]int64 // acknowledged id -> quantity
	errsDown     int64            // failed calls while the database was unreachable
	errsUp       int64            // failed calls at other times (connections cut a moment ago)
	firstFailure string
}

// runDurableFaults runs faultCallers goroutines that call durable Track on st with their own
// ids, retrying a failed call with the same ids until it succeeds, while outage (which calls
// down() when the database becomes unreachable and up() when it is reachable again) runs.
func runDurableFaults(t *testing.T, st *postgres.Store, outage func(down, up func())) faultOutcome {
	t.Helper()
	m, err := billing.New(billing.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	var (
		isDown         atomic.Bool
		errsDown, errs atomic.Int64
		stop           = make(chan struct{})
		wg             sync.WaitGroup
		mu             sync.Mutex
		out            = faultOutcome{acked: map[string]int64{}}
	)
	for g := range faultCallers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := 0; ; c++ {
				select {
				case <-stop:
					return
				default:
				}
				events := faultEvents(g, c)
				failingSince := time.Time{}
				for {
					err := m.Track(ctx, events...)
					if err == nil {
						break
					}
					if isDown.Load() {
						errsDown.Add(1)
					} else {
						errs.Add(1)
					}
					if errors.Is(err, billing.ErrInvalidEvent) || errors.Is(err, billing.ErrEventConflict) {
						t.Errorf("caller %d: Track: %v", g, err)
						return
					}
					if failingSince.IsZero() {
						failingSince = time.Now()
						mu.Lock()
						if out.firstFailure == "" {
							out.firstFailure = err.Error()
						}
						mu.Unlock()
					} else if time.Since(failingSince) > 20*time.Second {
						t.Errorf("caller %d: Track still failing after 20s: %v", g, err)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
				mu.Lock()
				for _, e := range events {
					out.acked[e.ID] = e.Quantity
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	outage(func() { isDown.Store(true) }, func() { isDown.Store(false) })
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	out.errsDown, out.errsUp = errsDown.Load(), errs.Load()
	return out
}

// checkAcked checks that the schema holds exactly the acknowledged events, once each, that usage
// equals their sums, that rollups equal the events, and that a rebuild changes nothing.
func checkAcked(t *testing.T, st *postgres.Store, acked map[string]int64) {
	t.Helper()
	ctx := context.Background()
	if len(acked) == 0 {
		t.Fatal("no event was acknowledged: the test proved nothing")
	}
	rows, err := st.Pool().Query(ctx, `SELECT id FROM events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := make([]string, 0, len(acked))
	var sum int64
	for id, q := range acked {
		want = append(want, id)
		sum += q
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Errorf("stored events differ from the acknowledged ones (-acked +stored):\n%s", diff)
	}
	if n := count(t, st, `SELECT count(*) FROM event_ids`); n != int64(len(acked)) {
		t.Errorf("%d event ids stored, %d events acknowledged", n, len(acked))
	}

	m, err := billing.New(billing.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	usage, err := m.Usage(ctx, billing.UsageQuery{Window: billing.PeriodTotal})
	if err != nil {
		t.Fatal(err)
	}
	var gotSum, gotCount int64
	for _, r := range usage {
		gotSum += r.Sum
		gotCount += r.Count
	}
	if gotSum != sum || gotCount != int64(len(acked)) {
		t.Errorf("usage: sum %d of %d events; acknowledged: sum %d of %d events", gotSum, gotCount, sum, len(acked))
	}
	events, err := storedEvents(st)
	if err != nil {
		t.Fatal(err)
	}
	storetest.CheckUsageMatchesEvents(t, st, events, "after the outage")

	before := allRollups(t, st)
	now := time.Now()
	if err := m.RebuildRollups(ctx, "", billing.Span{Start: now.AddDate(0, -1, 0), End: now.AddDate(0, 1, 0)}); err != nil {
		t.Fatalf("RebuildRollups: %v", err)
	}
	if diff := cmp.Diff(before, allRollups(t, st)); diff != "" {
		t.Errorf("RebuildRollups changed the rollups (-before +after):\n%s", diff)
	}
}

// allRollups returns every stored bucket, sorted.
func allRollups(t *testing.T, st *postgres.Store) []billing.Rollup {
	t.Helper()
	var out []billing.Rollup
	for _, p := range billing.Periods {
		rs, err := st.QueryRollups(context.Background(), billing.RollupQuery{Period: p})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rs...)
	}
	slices.SortFunc(out, func(a, b billing.Rollup) int {
		return strings.Compare(fmt.Sprint(a.Tenant, a.Resource, a.Period, a.Start.UnixNano(), a.Group),
			fmt.Sprint(b.Tenant, b.Resource, b.Period, b.Start.UnixNano(), b.Group))
	})
	return out
}

func TestFaultProxy(t *testing.T) {
	t.Run("Durable", func(t *testing.T) {
		p := startProxy(t, upstreamAddr(t))
		schema := testSchema(t)
		st := openCleanup(t, postgres.Config{URL: proxiedURL(t, p), Schema: schema})
		out := runDurableFaults(t, st, func(down, up func()) {
			p.cut()
			down()
			time.Sleep(time.Second)
			up()
			p.restore()
		})
		t.Logf("%d events acknowledged; %d calls failed during the outage, %d after it; first failure: %s",
			len(out.acked), out.errsDown, out.errsUp, out.firstFailure)
		if out.errsDown == 0 {
			t.Errorf("no Track call failed while the database was unreachable")
		}
		checkAcked(t, st, out.acked)
	})

	t.Run("Async", func(t *testing.T) {
		p := startProxy(t, upstreamAddr(t))
		schema := testSchema(t)
		st := openCleanup(t, postgres.Config{URL: proxiedURL(t, p), Schema: schema})
		var (
			mu     sync.Mutex
			failed []error
		)
		var anyFailed atomic.Bool
		m, err := billing.New(billing.Config{Store: st, Async: true, OnError: func(err error) {
			anyFailed.Store(true)
			mu.Lock()
			failed = append(failed, err)
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var (
			wg    sync.WaitGroup
			stop  = make(chan struct{})
			ackMu sync.Mutex
			acked = map[string]int64{}
		)
		for g := range faultCallers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c := 0; ; c++ {
					select {
					case <-stop:
						return
					default:
					}
					if anyFailed.Load() {
						return // lost events already: stop adding to what Close must drain
					}
					events := faultEvents(g, c)
					if err := m.Track(ctx, events...); err != nil {
						t.Errorf("caller %d: async Track: %v", g, err)
						return
					}
					ackMu.Lock()
					for _, e := range events {
						acked[e.ID] = e.Quantity
					}
					ackMu.Unlock()
					time.Sleep(2 * time.Millisecond)
				}
			}()
		}
		time.Sleep(300 * time.Millisecond)
		// Shorter than the writer's retry budget (5 retries from 50ms, doubling).
		p.cut()
		time.Sleep(400 * time.Millisecond)
		p.restore()
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
		if err := m.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		mu.Lock()
		for _, err := range failed {
			t.Errorf("OnError: %v", err)
		}
		mu.Unlock()
		t.Logf("%d events tracked", len(acked))
		checkAcked(t, st, acked)
	})
}

// TestFaultRestart is TestFaultProxy's durable scenario with a real restart of the PostgreSQL
// cluster (pg_ctlcluster stop, start) as the outage. It runs only when BILLING_TEST_PG_RESTART=1,
// alone: it disconnects every client of the server.
func TestFaultRestart(t *testing.T) {
	if os.Getenv("BILLING_TEST_PG_RESTART") != "1" {
		t.Skip("set BILLING_TEST_PG_RESTART=1 to restart the PostgreSQL cluster (run this test alone)")
	}
	url := testURL(t)
	versions, err := os.ReadDir("/etc/postgresql")
	if err != nil || len(versions) != 1 {
		t.Fatalf("want one cluster version in /etc/postgresql: %v %v", versions, err)
	}
	version := versions[0].Name()
	ctl := func(action string) {
		out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action).CombinedOutput()
		if err != nil {
			t.Fatalf("pg_ctlcluster %s main %s: %v: %s", version, action, err, out)
		}
	}
	schema := testSchema(t)
	st := openCleanup(t, postgres.Config{URL: url, Schema: schema})
	out := runDurableFaults(t, st, func(down, up func()) {
		ctl("stop")
		down()
		time.Sleep(time.Second)
		ctl("start")
		waitAccepting(t, url)
		up()
	})
	t.Logf("%d events acknowledged; %d calls failed during the outage, %d after it; first failure: %s",
		len(out.acked), out.errsDown, out.errsUp, out.firstFailure)
	if out.errsDown+out.errsUp == 0 {
		t.Errorf("no Track call failed across the restart")
	}
	checkAcked(t, st, out.acked)
}

// waitAccepting waits until the server at url accepts connections.
func waitAccepting(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("PostgreSQL does not accept connections 60s after its start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
