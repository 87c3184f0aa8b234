package billing

import (
	"context"
	"fmt"
	"math/bits"
	"time"
)

// RatePolicy limits how fast a tenant may use a resource: Limit units per Window, with bursts of
// up to Burst units. It is enforced with GCRA (the generic cell rate algorithm): one unit is
// released every Window/Limit, and at most Burst units may be taken at once. Policies come from
// the tenant's plan, the tenant's overrides, or Config.RatePolicies.
//
// Arithmetic is in whole nanoseconds: the emission interval Window/Limit is rounded up to a whole
// nanosecond (see Interval), so a policy never admits more than it says. The rounding is exact
// when Window is a multiple of Limit nanoseconds (100 per minute, 1000 per second) and otherwise
// costs less than one part in Window/Limit nanoseconds (one in 142 million for 7 per second).
//
// The zero value is not a valid policy: Limit and Window are required. RatePolicy is a plain value,
// safe to copy and to share.
type RatePolicy struct {
	// Resource is what the policy limits, such as "requests" or "tokens.input". Required in a
	// configured policy (one per resource); limiters key their counters by RateKey and only report
	// it.
	Resource string `json:"resource"`
	// Limit is how many units are released per Window. Must be > 0 and at most Window in
	// nanoseconds (one unit per nanosecond).
	Limit int64 `json:"limit"`
	// Window is the period over which Limit units are released. Must be > 0.
	Window time.Duration `json:"window"`
	// Burst is the most units that can be taken at once after an idle period. Zero means Limit;
	// it must not be negative, and a full burst must refill within MaxBurstRefill.
	Burst int64 `json:"burst,omitempty"`
}

// MaxBurstRefill is the longest time a policy's full burst may take to refill (Burst ×
// Window/Limit): 2^53 nanoseconds, about 104 days. It keeps every quantity a limiter computes
// exact in an int64 and in the float64 numbers of Redis's Lua scripts.
const MaxBurstRefill = time.Duration(1 << 53)

// EffectiveBurst returns the burst the policy enforces: Burst, or Limit when Burst is zero.
func (p RatePolicy) EffectiveBurst() int64 {
	if p.Burst == 0 {
		return p.Limit
	}
	return p.Burst
}

// Interval returns the emission interval: the time in which one unit is released, Window/Limit
// rounded up to a whole nanosecond. It returns 0 when Limit or Window is not positive.
func (p RatePolicy) Interval() time.Duration {
	if p.Limit <= 0 || p.Window <= 0 {
		return 0
	}
	t := p.Window / time.Duration(p.Limit)
	if p.Window%time.Duration(p.Limit) != 0 {
		t++
	}
	return t
}

// Validate checks a configured policy: its Resource (required, with the characters of an Event's
// Resource) and its numbers. The error matches ErrInvalidConfig and is a *FieldError naming the
// field by its JSON name ("resource", "limit", "window" or "burst"). Limiters check only the numbers (see
// CheckRateRequest), so they accept a policy without a Resource.
func (p RatePolicy) Validate() error {
	if err := p.validate(""); err != nil {
		return err
	}
	return nil
}

// validate checks p, naming fields after prefix (such as "plan.rates[2].").
func (p RatePolicy) validate(prefix string) *FieldError {
	if r := checkName(p.Resource); r != "" {
		return fieldErr(ErrInvalidConfig, prefix+"resource", "%s", r)
	}
	_, _, err := p.gcra(prefix)
	return err
}

// gcra validates the numbers of p and returns its emission interval T and its tolerance tau
// (Burst × T), both in nanoseconds. Field names in errors get prefix.
func (p RatePolicy) gcra(prefix string) (t, tau int64, err *FieldError) {
	switch {
	case p.Limit <= 0:
		return 0, 0, fieldErr(ErrInvalidConfig, prefix+"limit", "must be > 0 (got %d)", p.Limit)
	case p.Window <= 0:
		return 0, 0, fieldErr(ErrInvalidConfig, prefix+"window", "must be > 0 (got %v)", p.Window)
	case p.Burst < 0:
		return 0, 0, fieldErr(ErrInvalidConfig, prefix+"burst", "must not be negative (got %d); use 0 for Limit", p.Burst)
	case p.Limit > int64(p.Window):
		return 0, 0, fieldErr(ErrInvalidConfig, prefix+"limit",
			"must be at most one unit per nanosecond of Window (got %d per %v); count in larger units", p.Limit, p.Window)
	}
	t = int64(p.Interval())
	burst := p.EffectiveBurst()
	hi, lo := bits.Mul64(uint64(burst), uint64(t))
	if hi != 0 || lo > uint64(MaxBurstRefill) {
		return 0, 0, fieldErr(ErrInvalidConfig, prefix+"burst",
			"a full burst of %d at %d per %v takes longer than %v to refill; lower Burst or raise Limit",
			burst, p.Limit, p.Window, MaxBurstRefill)
	}
	return t, int64(lo), nil
}

// RateKey names one rate-limited counter: a tenant's use of a resource. Both fields are required.
// RateKey is a comparable value, usable as a map key.
type RateKey struct {
	Tenant   string
	Resource string
}

// Validate checks that both fields are set and follow the rules of an Event's Tenant and
// Resource. The error matches ErrInvalidQuery and is a *FieldError naming "tenant" or "resource".
func (k RateKey) Validate() error {
	if err := k.validate(); err != nil {
		return err
	}
	return nil
}

func (k RateKey) validate() *FieldError {
	if err := checkRateTenant(k.Tenant); err != nil {
		return err
	}
	if r := checkName(k.Resource); r != "" {
		return fieldErr(ErrInvalidQuery, "resource", "%s", r)
	}
	return nil
}

// checkRateTenant validates a tenant id given to a rate-limit method.
func checkRateTenant(tenant string) *FieldError {
	if r := tenantRule(tenant); r != "" {
		return fieldErr(ErrInvalidQuery, "tenant", "%s", r)
	}
	return nil
}

// Decision is the answer of a rate limiter. The zero value means "allowed, no policy applies"
// (Limit 0); Decision is a plain value, safe to copy and to share.
type Decision struct {
	// Allowed says whether the units were admitted (and counted).
	Allowed bool `json:"allowed"`
	// Limit is the policy's Limit, for response headers. Zero means no policy applies to the
	// resource, so nothing was limited or counted; the other fields are then zero too.
	Limit int64 `json:"limit"`
	// Remaining is how many units could be taken right now, after this decision.
	Remaining int64 `json:"remaining"`
	// RetryAfter is how long to wait before the same request can be admitted; zero when allowed.
	RetryAfter time.Duration `json:"retry_after"`
	// ResetAfter is how long until the counter is back to a full burst.
	ResetAfter time.Duration `json:"reset_after"`
	// Policy is the policy that decided.
	Policy RatePolicy `json:"policy"`
}

// Err returns nil when d allowed the request, and otherwise a *RateLimitedError carrying d, which
// matches ErrRateLimited. It lets a caller turn a refusal into an error in one line:
//
//	d, err := m.Allow(ctx, tenant, "requests", 1)
//	if err == nil {
//		err = d.Err()
//	}
func (d Decision) Err() error {
	if d.Allowed {
		return nil
	}
	return &RateLimitedError{Decision: d}
}

// RateLimitedError is an ordinary refusal by a rate limit, as an error: waiting RetryAfter lets
// the same request through. It matches ErrRateLimited with errors.Is. Decision.Err makes one.
type RateLimitedError struct {
	// Decision is the refusal.
	Decision Decision
}

// Error implements error, for example
// `billing: rate limited: "requests": 100 per 1m0s (burst 100); retry after 600ms`.
func (e *RateLimitedError) Error() string {
	p := e.Decision.Policy
	return fmt.Sprintf("%v: %q: %d per %v (burst %d); retry after %v", ErrRateLimited, p.Resource, p.Limit,
		p.Window, p.EffectiveBurst(), e.Decision.RetryAfter)
}

// Unwrap lets errors.Is match ErrRateLimited.
func (e *RateLimitedError) Unwrap() error { return ErrRateLimited }

// Limiter keeps rate-limit counters and decides under a policy. The built-in in-process limiter
// (LocalLimiter, from NewLocalLimiter) is the default; store/redis provides one shared by every
// replica of a service. Implementations must be safe for concurrent use.
//
// A limiter keeps one counter per RateKey, whatever the policy: the policy is passed on every call
// (it may change between calls, as when a tenant changes plan), and p.Resource is only reported.
// Every method refuses an empty key field, and Allow and Peek refuse an invalid policy, with a
// *FieldError (see RateKey.Validate and RatePolicy.Validate).
type Limiter interface {
	// Allow admits n units for key under p, or refuses them without counting anything.
	//
	// An ordinary refusal returns Decision{Allowed: false, RetryAfter: ...} and a nil error: the
	// caller checks d.Allowed (or d.Err()). n larger than the policy's burst can never pass, so it
	// returns an error matching ErrExceedsBurst, with a Decision describing the key as it is. An
	// n below 1 is refused with a *FieldError for "n". Any other error (a shared store that did not
	// answer) means no decision was made.
	Allow(ctx context.Context, key RateKey, p RatePolicy, n int64) (Decision, error)
	// Peek reports the state of key under p without counting anything: Allowed says whether one
	// unit would be admitted now, RetryAfter how long until it would be.
	Peek(ctx context.Context, key RateKey, p RatePolicy) (Decision, error)
	// Reset forgets key's counter, giving it a full burst again.
	Reset(ctx context.Context, key RateKey) error
}

// checkN validates the n of Limiter.Allow.
func checkN(n int64) error {
	if n < 1 {
		return fieldErr(ErrInvalidQuery, "n", "must be >= 1 (got %d)", n)
	}
	return nil
}

// CheckRateRequest validates the arguments of a Limiter call as every Limiter must: key's fields
// must be set, n (the units Allow asks for; Peek and Reset pass 1) must be at least 1, and p's
// numbers must be valid. It returns p's emission interval and its tolerance (the time a full
// burst takes to refill), both in nanoseconds, for implementations of Limiter outside this
// package. It does not check the characters of key's fields, which Meter.Allow does
// (RateKey.Validate), nor n against the burst (see ExceedsBurst).
func CheckRateRequest(key RateKey, p RatePolicy, n int64) (interval, tolerance int64, err error) {
	if key.Tenant == "" {
		return 0, 0, fieldErr(ErrInvalidQuery, "tenant", "is required")
	}
	if key.Resource == "" {
		return 0, 0, fieldErr(ErrInvalidQuery, "resource", "is required")
	}
	if err := checkN(n); err != nil {
		return 0, 0, err
	}
	t, tau, ferr := p.gcra("")
	if ferr != nil {
		return 0, 0, ferr
	}
	return t, tau, nil
}

// ExceedsBurst returns the error for a request of n units under p when n is above p's burst: it
// matches ErrExceedsBurst and says the request can never pass. For implementations of Limiter.
func ExceedsBurst(key RateKey, p RatePolicy, n int64) error {
	return fmt.Errorf("%w: %d units of %q requested, the burst is %d (%d per %v): no wait admits it; "+
		"split the request or raise the policy's Burst", ErrExceedsBurst, n, key.Resource, p.EffectiveBurst(),
		p.Limit, p.Window)
}
