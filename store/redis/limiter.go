package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/meterplane/billing"
)

// ErrUnavailable reports that the limiter could not get an answer from Redis: it is unreachable,
// did not answer within LimiterConfig.Timeout, or answered with an error. The wrapping error says
// which, and whether the request was refused (fail closed) or admitted (fail open).
var ErrUnavailable = errors.New("billing/redis: rate limiter unavailable")

// LimiterConfig configures a Limiter. The zero value works: every field documents its default.
type LimiterConfig struct {
	// Prefix starts the name of every key the limiter writes; keys are Prefix + "{tenant}:resource".
	// Defaults to "billing:rl:". It must not contain '{' or '}', which would break the hash tag.
	Prefix string

	// Timeout bounds each call to Redis, including the wait for a connection; the caller's context
	// can only shorten it. Defaults to 50ms.
	//
	// go-redis applies a context deadline to socket reads and writes only when the client has
	// ContextTimeoutEnabled: true. With such a client (recommended) a call is bounded directly;
	// with any other, the limiter waits for the call in another goroutine and gives up at Timeout,
	// leaving that goroutine to end at the client's own ReadTimeout.
	Timeout time.Duration

	// FailOpen says what Allow does when Redis is unavailable (see ErrUnavailable). False, the
	// default, fails closed: Allow returns an error matching ErrUnavailable that says Redis is
	// unreachable or too slow, and admits nothing. True fails open: Allow admits the request,
	// answering as a fresh counter would, and reports the error to OnError, so an outage of Redis
	// lifts rate limits instead of refusing all traffic. Peek and Reset always return the error.
	FailOpen bool

	// OnError receives the errors that FailOpen hides. Defaults to logging them with
	// slog.Default() at warning level, at most once per second. It must be safe for concurrent use.
	OnError func(error)

	// Now returns the current time. Defaults to nil: the Redis server's clock, one clock for every
	// replica, which is what makes the limiter exact across replicas whose clocks differ. Set it in
	// tests to decide at fixed instants; the time is then sent with each call.
	Now func() time.Time
}

// Defaults of LimiterConfig.
const (
	DefaultPrefix  = "billing:rl:"
	DefaultTimeout = 50 * time.Millisecond
)

// guardedMax bounds how many calls may wait in goroutines for a client that ignores context
// deadlines (see LimiterConfig.Timeout); beyond it, calls fail at once as unavailable.
const guardedMax = 4096

// Limiter is a billing.Limiter on Redis, shared by every replica that uses the same Redis and
// Prefix: GCRA counters decided by a Lua script on the Redis server's clock. Create one with
// NewLimiter; the zero value is not usable. Safe for concurrent use.
type Limiter struct {
	client  goredis.UniversalClient
	cfg     LimiterConfig
	direct  bool // the client bounds socket I/O by context deadlines
	guarded atomic.Int64
	lastLog atomic.Int64 // Unix ns of the default OnError's last log line
}

var _ billing.Limiter = (*Limiter)(nil)

// NewLimiter returns a Limiter that keeps its counters in client (a *goredis.Client,
// *goredis.ClusterClient or *goredis.Ring), configured by cfg after filling its defaults. It does
// not contact Redis. Bad config returns a *billing.FieldError matching billing.ErrInvalidConfig.
func NewLimiter(client goredis.UniversalClient, cfg LimiterConfig) (*Limiter, error) {
	bad := func(field, format string, args ...any) error {
		return &billing.FieldError{Kind: billing.ErrInvalidConfig, Field: "LimiterConfig." + field,
			Rule: fmt.Sprintf(format, args...)}
	}
	if client == nil {
		return nil, errors.New("billing/redis: NewLimiter: client is nil: pass a go-redis client, " +
			"for example goredis.NewClient(&goredis.Options{Addr: \"127.0.0.1:6379\", ContextTimeoutEnabled: true})")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, bad("Prefix", "must not contain '{' or '}' (got %q): they would break the {tenant} hash tag", cfg.Prefix)
	}
	if cfg.Timeout < 0 {
		return nil, bad("Timeout", "must not be negative (got %v); use 0 for the default %v", cfg.Timeout, DefaultTimeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	l := &Limiter{client: client, cfg: cfg, direct: honorsContext(client)}
	if l.cfg.OnError == nil {
		l.cfg.OnError = l.logError
	}
	return l, nil
}

// honorsContext reports whether client applies context deadlines to its socket I/O.
func honorsContext(client goredis.UniversalClient) bool {
	switch c := client.(type) {
	case *goredis.Client:
		return c.Options().ContextTimeoutEnabled
	case *goredis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *goredis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

// Allow admits n units for key under p, or refuses them without counting anything; see
// billing.Limiter. When Redis is unavailable it fails closed or open as LimiterConfig.FailOpen
// says.
func (l *Limiter) Allow(ctx context.Context, key billing.RateKey, p billing.RatePolicy, n int64) (billing.Decision, error) {
	t, tau, err := billing.CheckRateRequest(key, p, n)
	if err != nil {
		return billing.Decision{}, err
	}
	if n > p.EffectiveBurst() {
		// No wait admits it, whatever Redis holds: the counter's state is only reported, when
		// Redis answers.
		d, err := l.decide(ctx, key, p, t, tau, 0)
		if err != nil {
			d = billing.Decision{Limit: p.Limit, Policy: p}
		}
		d.Allowed, d.RetryAfter = false, 0
		return d, billing.ExceedsBurst(key, p, n)
	}
	d, err := l.decide(ctx, key, p, t, tau, n)
	if err != nil && l.cfg.FailOpen && errors.Is(err, ErrUnavailable) {
		l.cfg.OnError(fmt.Errorf("%w; admitted %d units of %q for tenant %q (LimiterConfig.FailOpen)", err, n,
			key.Resource, key.Tenant))
		ahead := n * t
		return billing.Decision{Allowed: true, Limit: p.Limit, Remaining: (tau - ahead) / t,
			ResetAfter: time.Duration(ahead), Policy: p}, nil
	}
	return d, err
}

// Peek reports the state of key under p without counting anything; see billing.Limiter. It
// returns the error when Redis is unavailable, whatever LimiterConfig.FailOpen says.
func (l *Limiter) Peek(ctx context.Context, key billing.RateKey, p billing.RatePolicy) (billing.Decision, error) {
	t, tau, err := billing.CheckRateRequest(key, p, 1)
	if err != nil {
		return billing.Decision{}, err
	}
	return l.decide(ctx, key, p, t, tau, 0)
}

// Reset deletes key's counter, giving it a full burst again. It returns the error when Redis is
// unavailable, whatever LimiterConfig.FailOpen says.
func (l *Limiter) Reset(ctx context.Context, key billing.RateKey) error {
	if _, _, err := billing.CheckRateRequest(key, billing.RatePolicy{Limit: 1, Window: 1}, 1); err != nil {
		return err
	}
	_, err := l.call(ctx, func(ctx context.Context) ([]int64, error) {
		return nil, l.client.Del(ctx, counterKey(l.cfg.Prefix, key)).Err()
	})
	return err
}

// decide runs the GCRA script for n units (0: only report) and turns its answer into a Decision.
func (l *Limiter) decide(ctx context.Context, key billing.RateKey, p billing.RatePolicy, t, tau, n int64) (billing.Decision, error) {
	var sec, nsec string
	if l.cfg.Now != nil {
		ns := l.cfg.Now().UnixNano()
		sec, nsec = strconv.FormatInt(ns/1e9, 10), strconv.FormatInt(ns%1e9, 10)
	}
	k := counterKey(l.cfg.Prefix, key)
	r, err := l.call(ctx, func(ctx context.Context) ([]int64, error) {
		return gcraScript.Run(ctx, l.client, []string{k}, t, tau, n, sec, nsec).Int64Slice()
	})
	if err != nil {
		return billing.Decision{}, err
	}
	if len(r) != 4 {
		return billing.Decision{}, fmt.Errorf("%w: the rate limit script answered %v, want 4 integers", ErrUnavailable, r)
	}
	return billing.Decision{Allowed: r[0] == 1, Limit: p.Limit, Remaining: r[1], RetryAfter: time.Duration(r[2]),
		ResetAfter: time.Duration(r[3]), Policy: p}, nil
}

// call runs fn under the limiter's timeout and translates its failure into an error matching
// ErrUnavailable that says what happened and that nothing was admitted by this call. An error of
// the caller's own context is returned as it is.
func (l *Limiter) call(ctx context.Context, fn func(context.Context) ([]int64, error)) ([]int64, error) {
	cctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	var r []int64
	var err error
	if l.direct {
		r, err = fn(cctx)
	} else {
		r, err = l.guard(cctx, fn)
	}
	if err == nil {
		return r, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("billing/redis: %w", ctx.Err())
	}
	var what string
	var rerr goredis.Error
	switch {
	case cctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		what = fmt.Sprintf("Redis is unreachable or too slow: no answer within %v (LimiterConfig.Timeout)", l.cfg.Timeout)
	case errors.As(err, &rerr):
		what = "Redis answered with an error"
	default:
		what = "Redis is unreachable"
	}
	mode := "failing closed: nothing admitted (set LimiterConfig.FailOpen to admit instead)"
	if l.cfg.FailOpen {
		mode = "failing open"
	}
	return nil, fmt.Errorf("%w: %s; %s: %w", ErrUnavailable, what, mode, err)
}

// guard runs fn in a goroutine and stops waiting for it when ctx ends, for clients whose socket
// I/O ignores context deadlines.
func (l *Limiter) guard(ctx context.Context, fn func(context.Context) ([]int64, error)) ([]int64, error) {
	if l.guarded.Add(1) > guardedMax {
		l.guarded.Add(-1)
		return nil, fmt.Errorf("%d calls are already waiting for Redis", guardedMax)
	}
	type result struct {
		r   []int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer l.guarded.Add(-1)
		r, err := fn(ctx)
		done <- result{r, err}
	}()
	select {
	case res := <-done:
		return res.r, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// logError is the default OnError: a warning, at most once per second.
func (l *Limiter) logError(err error) {
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last < int64(time.Second) || !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	slog.Default().Warn("billing/redis: rate limiter unavailable", "err", err)
}
