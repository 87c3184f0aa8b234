package middleware

import (
	"net/http"
	"strconv"
	"time"

	"github.com/meterplane/billing"
)

// The headers SetRateLimitHeaders writes.
const (
	headerRateLimitPolicy     = "RateLimit-Policy"
	headerRateLimit           = "RateLimit"
	headerXRateLimitLimit     = "X-RateLimit-Limit"
	headerXRateLimitRemaining = "X-RateLimit-Remaining"
	headerXRateLimitReset     = "X-RateLimit-Reset"
	headerRetryAfter          = "Retry-After"

	defaultPolicyName = "default" // for a decision whose policy has no Resource
	maxPolicyName     = 1024      // bytes of a policy name written
)

// SetRateLimitHeaders writes the rate-limit response headers of one request's decisions (one per
// rate-limited resource the request used) to h, replacing earlier values of the headers it writes.
// Decisions with Limit 0 (no policy applied) are skipped; when none is left, h is not touched.
// Retry-After is written only on refusal, and otherwise left as it is.
//
// For each decision, in order, with the policy named after its resource (a Structured Field
// String, so `"` and `\` are escaped, and bytes outside printable ASCII become '?'):
//
//	RateLimit-Policy: "requests";q=100;w=60
//	RateLimit: "requests";r=42;t=18
//
// following draft-ietf-httpapi-ratelimit-headers-10: q is the policy's Limit and w its Window in
// seconds, rounded up; r is Remaining; t is, in seconds rounded up, how long until the request
// could pass (RetryAfter) when it was refused, and otherwise how long until the counter is back to
// a full burst (ResetAfter) — at t the client can count on the quota the field promises.
//
// X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset (seconds, the same t) describe
// the tightest decision: a refusing one (the longest wait), else the one with the fewest units
// remaining. When a decision refused, Retry-After is the longest wait of the refusing decisions in
// whole seconds rounded up, so it is never earlier than their t; a refusal that no wait can lift
// (RetryAfter 0, as with billing.ErrExceedsBurst) sets no Retry-After.
//
// Safe for concurrent use on distinct headers, like http.Header itself.
func SetRateLimitHeaders(h http.Header, decisions ...billing.Decision) {
	var policy, state []byte
	tightest := -1
	var tightestT int64
	var retry int64 = -1
	for i, d := range decisions {
		if d.Limit <= 0 {
			continue
		}
		t := ceilSeconds(d.ResetAfter)
		if !d.Allowed {
			t = ceilSeconds(d.RetryAfter)
			if d.RetryAfter > 0 {
				retry = max(retry, t)
			}
		}
		name := d.Policy.Resource
		if name == "" {
			name = defaultPolicyName
		}
		if len(policy) > 0 {
			policy = append(policy, ", "...)
			state = append(state, ", "...)
		}
		policy = appendSFString(policy, name)
		policy = append(policy, ";q="...)
		policy = strconv.AppendInt(policy, d.Limit, 10)
		if d.Policy.Window > 0 {
			policy = append(policy, ";w="...)
			policy = strconv.AppendInt(policy, ceilSeconds(d.Policy.Window), 10)
		}
		state = appendSFString(state, name)
		state = append(state, ";r="...)
		state = strconv.AppendInt(state, max(d.Remaining, 0), 10)
		state = append(state, ";t="...)
		state = strconv.AppendInt(state, t, 10)

		if tightest < 0 || tighter(d, t, decisions[tightest], tightestT) {
			tightest, tightestT = i, t
		}
	}
	if tightest < 0 {
		return
	}
	h.Set(headerRateLimitPolicy, string(policy))
	h.Set(headerRateLimit, string(state))
	d := decisions[tightest]
	h.Set(headerXRateLimitLimit, strconv.FormatInt(d.Limit, 10))
	h.Set(headerXRateLimitRemaining, strconv.FormatInt(max(d.Remaining, 0), 10))
	h.Set(headerXRateLimitReset, strconv.FormatInt(tightestT, 10))
	if retry >= 0 {
		h.Set(headerRetryAfter, strconv.FormatInt(retry, 10))
	}
}

// tighter reports whether decision a (whose t is at) constrains the client more than b (bt).
func tighter(a billing.Decision, at int64, b billing.Decision, bt int64) bool {
	if a.Allowed != b.Allowed {
		return !a.Allowed
	}
	if !a.Allowed {
		return at > bt
	}
	if a.Remaining != b.Remaining {
		return a.Remaining < b.Remaining
	}
	return at > bt
}

// ceilSeconds returns d in whole seconds, rounded up; 0 for d <= 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}

// appendSFString appends s as a Structured Field String (RFC 9651, section 3.3.3): quoted, with
// `"` and `\` escaped. A String holds only printable ASCII, so other bytes become '?'.
func appendSFString(dst []byte, s string) []byte {
	if len(s) > maxPolicyName {
		s = s[:maxPolicyName]
	}
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c > 0x7e:
			dst = append(dst, '?')
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
