// Package redis is the rate limiter that every replica of a service shares: a billing.Limiter on
// Redis (github.com/redis/go-redis/v9), exact across replicas.
//
// Each counter is one Redis string holding the key's GCRA theoretical arrival time, updated by a
// Lua script run with EVALSHA (reloaded automatically when Redis answers NOSCRIPT) and timed by
// the Redis server's own clock, so the replicas' clocks never matter. Keys carry the tenant as a
// hash tag ({tenant}), so Redis Cluster works and a tenant's counters live on one node; each key
// expires when its counter is back to a full burst, so idle tenants cost no memory.
//
//	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
//	lim, err := redis.NewLimiter(rdb, redis.LimiterConfig{})
//	if err != nil { ... }
//	m, err := billing.New(billing.Config{Store: st, Limiter: lim})
//
// When Redis cannot be reached or does not answer within LimiterConfig.Timeout, the limiter fails
// closed by default (Allow returns an error matching ErrUnavailable that says so), or fails open
// with LimiterConfig.FailOpen (Allow admits, and reports the error to LimiterConfig.OnError).
package redis
