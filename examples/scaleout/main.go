// Command scaleout runs two Meters in one process, standing in for two replicas of a service, on
// one PostgreSQL database and one Redis: it shows a hard quota and a rate limit holding across
// them. Each replica has its own connection pool, its own shared Quota (leases of the tenant's
// headroom) and its own Redis client.
//
//	go run ./examples/scaleout -postgres postgres://postgres@127.0.0.1:5432/test?sslmode=disable -redis redis://127.0.0.1:6379/0
//
// It works in a schema of its own, dropped at exit, and exits 1 if a limit did not hold.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/postgres"
	"github.com/meterplane/billing/store/redis"
)

func main() {
	pgURL := flag.String("postgres", envOr("BILLING_POSTGRES", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL URL (env BILLING_POSTGRES)")
	redisURL := flag.String("redis", envOr("BILLING_REDIS", "redis://127.0.0.1:6379/0"), "Redis URL (env BILLING_REDIS)")
	limit := flag.Int64("limit", 500, "the tenant's hard limit of requests per day")
	rate := flag.Int64("rate", 50, "the tenant's rate limit of calls per second (burst the same)")
	flag.Parse()
	if err := run(*pgURL, *redisURL, *limit, *rate); err != nil {
		log.Fatal(err)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// replica is what one replica of the service holds.
type replica struct {
	name  string
	st    *postgres.Store
	quota *postgres.Quota
	rdb   *goredis.Client
	m     *billing.Meter
}

func open(ctx context.Context, name, pgURL, schema, redisURL string, policy billing.RatePolicy) (*replica, error) {
	st, err := postgres.OpenConfig(ctx, postgres.Config{URL: pgURL, Schema: schema})
	if err != nil {
		return nil, fmt.Errorf("%s: %w (is PostgreSQL running? pass -postgres)", name, err)
	}
	q, err := postgres.NewQuota(st, postgres.QuotaConfig{})
	if err != nil {
		return nil, err
	}
	opt, err := goredis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("-redis: %w", err)
	}
	opt.ContextTimeoutEnabled = true
	rdb := goredis.NewClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("%s: redis %s: %w (is Redis running? pass -redis)", name, opt.Addr, err)
	}
	lim, err := redis.NewLimiter(rdb, redis.LimiterConfig{Prefix: "billing:scaleout:" + schema + ":"})
	if err != nil {
		return nil, err
	}
	m, err := billing.New(billing.Config{Store: st, Quota: q, Limiter: lim, RatePolicies: []billing.RatePolicy{policy}})
	if err != nil {
		return nil, err
	}
	return &replica{name: name, st: st, quota: q, rdb: rdb, m: m}, nil
}

func (r *replica) close() {
	r.m.Close()
	r.quota.Close()
	r.st.Close()
	r.rdb.Close()
}

func run(pgURL, redisURL string, limit, rate int64) error {
	ctx := context.Background()
	var b [6]byte
	rand.Read(b[:])
	schema := "scaleout_" + hex.EncodeToString(b[:])
	defer dropSchema(pgURL, schema)
	policy := billing.RatePolicy{Resource: "api.calls", Limit: rate, Window: time.Second}
	var reps []*replica
	for _, name := range []string{"replica-a", "replica-b"} {
		r, err := open(ctx, name, pgURL, schema, redisURL, policy)
		if err != nil {
			return err
		}
		defer r.close()
		reps = append(reps, r)
	}
	fmt.Printf("two replicas on PostgreSQL (schema %s) and Redis\n\n", schema)

	// A hard limit, set once, enforced by both.
	if err := reps[0].m.SetQuota(ctx, billing.QuotaRule{Tenant: "acme", Resource: "requests",
		Period: billing.PeriodDay, Limit: limit, Hard: true}); err != nil {
		return err
	}
	fmt.Printf("hard quota: acme may make %d requests per day; 64 goroutines per replica reserve and commit 1 until refused\n", limit)
	admitted := make([]atomic.Int64, len(reps))
	var wg sync.WaitGroup
	var failed atomic.Value
	for i, r := range reps {
		for range 64 {
			wg.Go(func() {
				for {
					res, err := r.m.Reserve(ctx, "acme", "requests", 1)
					if errors.Is(err, billing.ErrQuotaExceeded) {
						return
					}
					if err == nil {
						err = res.Commit(ctx, 1)
					}
					if err != nil {
						failed.Store(err)
						return
					}
					admitted[i].Add(1)
				}
			})
		}
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	total := admitted[0].Load() + admitted[1].Load()
	qs, err := reps[1].m.QuotaStatus(ctx, "acme")
	if err != nil {
		return err
	}
	fmt.Printf("  %s admitted %d, %s admitted %d: %d in all; recorded usage %d of %d\n",
		reps[0].name, admitted[0].Load(), reps[1].name, admitted[1].Load(), total, qs[0].Used, limit)
	ok := total == limit && qs[0].Used == limit

	// A rate limit kept in Redis, shared by both.
	const seconds = 2
	fmt.Printf("\nrate limit: acme may call %d times per second (burst %d); both replicas call as fast as they can for %ds\n", rate, rate, seconds)
	allowed := make([]atomic.Int64, len(reps))
	start := time.Now()
	deadline := start.Add(seconds * time.Second)
	for i, r := range reps {
		for range 8 {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					d, err := r.m.Allow(ctx, "acme", "api.calls", 1)
					if err != nil {
						failed.Store(err)
						return
					}
					if d.Allowed {
						allowed[i].Add(1)
					} else {
						time.Sleep(min(d.RetryAfter, 5*time.Millisecond))
					}
				}
			})
		}
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	elapsed := time.Since(start)
	calls := allowed[0].Load() + allowed[1].Load()
	most := rate + int64(float64(rate)*elapsed.Seconds()) // the burst, then the rate
	fmt.Printf("  %s allowed %d, %s allowed %d: %d in %.2fs; the policy allows at most %d\n",
		reps[0].name, allowed[0].Load(), reps[1].name, allowed[1].Load(), calls, elapsed.Seconds(), most)
	ok = ok && calls <= most

	if !ok {
		return errors.New("a limit did not hold across the replicas")
	}
	fmt.Println("\nboth limits held across the replicas")
	return nil
}

func dropSchema(url, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
}
