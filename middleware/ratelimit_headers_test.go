package middleware

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

var (
	requests = billing.RatePolicy{Resource: "requests", Limit: 100, Window: time.Minute}
	tokens   = billing.RatePolicy{Resource: "tokens.output", Limit: 10000, Window: 90 * time.Second, Burst: 2000}
)

func TestSetRateLimitHeaders(t *testing.T) {
	for _, c := range []struct {
		name      string
		decisions []billing.Decision
		want      http.Header
	}{
		{
			name: "allowed",
			decisions: []billing.Decision{{Allowed: true, Limit: 100, Remaining: 42, ResetAfter: 17*time.Second + time.Millisecond,
				Policy: requests}},
			want: http.Header{
				"Ratelimit-Policy":      {`"requests";q=100;w=60`},
				"Ratelimit":             {`"requests";r=42;t=18`},
				"X-Ratelimit-Limit":     {"100"},
				"X-Ratelimit-Remaining": {"42"},
				"X-Ratelimit-Reset":     {"18"},
			},
		},
		{
			name: "refused: t and Retry-After are the wait, rounded up",
			decisions: []billing.Decision{{Limit: 100, Remaining: 0, RetryAfter: 600 * time.Millisecond, ResetAfter: time.Minute,
				Policy: requests}},
			want: http.Header{
				"Ratelimit-Policy":      {`"requests";q=100;w=60`},
				"Ratelimit":             {`"requests";r=0;t=1`},
				"X-Ratelimit-Limit":     {"100"},
				"X-Ratelimit-Remaining": {"0"},
				"X-Ratelimit-Reset":     {"1"},
				"Retry-After":           {"1"},
			},
		},
		{
			name:      "full counter",
			decisions: []billing.Decision{{Allowed: true, Limit: 100, Remaining: 100, Policy: requests}},
			want: http.Header{
				"Ratelimit-Policy":      {`"requests";q=100;w=60`},
				"Ratelimit":             {`"requests";r=100;t=0`},
				"X-Ratelimit-Limit":     {"100"},
				"X-Ratelimit-Remaining": {"100"},
				"X-Ratelimit-Reset":     {"0"},
			},
		},
		{
			name: "two policies: the X- headers follow the tighter, window rounded up",
			decisions: []billing.Decision{
				{Allowed: true, Limit: 100, Remaining: 99, ResetAfter: 600 * time.Millisecond, Policy: requests},
				{Allowed: true, Limit: 10000, Remaining: 12, ResetAfter: 17 * time.Second, Policy: tokens},
			},
			want: http.Header{
				"Ratelimit-Policy":      {`"requests";q=100;w=60, "tokens.output";q=10000;w=90`},
				"Ratelimit":             {`"requests";r=99;t=1, "tokens.output";r=12;t=17`},
				"X-Ratelimit-Limit":     {"10000"},
				"X-Ratelimit-Remaining": {"12"},
				"X-Ratelimit-Reset":     {"17"},
			},
		},
		{
			name: "two policies, one refuses: Retry-After is its wait",
			decisions: []billing.Decision{
				{Allowed: false, Limit: 100, Remaining: 0, RetryAfter: 2500 * time.Millisecond, ResetAfter: time.Minute, Policy: requests},
				{Allowed: true, Limit: 10000, Remaining: 5, ResetAfter: 80 * time.Second, Policy: tokens},
			},
			want: http.Header{
				"Ratelimit-Policy":      {`"requests";q=100;w=60, "tokens.output";q=10000;w=90`},
				"Ratelimit":             {`"requests";r=0;t=3, "tokens.output";r=5;t=80`},
				"X-Ratelimit-Limit":     {"100"},
				"X-Ratelimit-Remaining": {"0"},
				"X-Ratelimit-Reset":     {"3"},
				"Retry-After":           {"3"},
			},
		},
		{
			name: "both refuse: Retry-After is the longer wait",
			decisions: []billing.Decision{
				{Limit: 100, RetryAfter: 2 * time.Second, ResetAfter: time.Minute, Policy: requests},
				{Limit: 10000, Remaining: 3, RetryAfter: 4*time.Second + 1, ResetAfter: 80 * time.Second, Policy: tokens},
			},
			want: http.Header{
				"Ratelimit-Policy":      {`"requests";q=100;w=60, "tokens.output";q=10000;w=90`},
				"Ratelimit":             {`"requests";r=0;t=2, "tokens.output";r=3;t=5`},
				"X-Ratelimit-Limit":     {"10000"},
				"X-Ratelimit-Remaining": {"3"},
				"X-Ratelimit-Reset":     {"5"},
				"Retry-After":           {"5"},
			},
		},
		{
			name:      "above the burst: no wait helps, no Retry-After",
			decisions: []billing.Decision{{Limit: 10000, Remaining: 2000, Policy: tokens}},
			want: http.Header{
				"Ratelimit-Policy":      {`"tokens.output";q=10000;w=90`},
				"Ratelimit":             {`"tokens.output";r=2000;t=0`},
				"X-Ratelimit-Limit":     {"10000"},
				"X-Ratelimit-Remaining": {"2000"},
				"X-Ratelimit-Reset":     {"0"},
			},
		},
		{
			name: "names are escaped Structured Field Strings",
			decisions: []billing.Decision{{Allowed: true, Limit: 5, Remaining: 4, ResetAfter: time.Second,
				Policy: billing.RatePolicy{Resource: `a"b\c` + "\u00e9\n", Limit: 5, Window: 1500 * time.Millisecond}}},
			want: http.Header{
				"Ratelimit-Policy":      {`"a\"b\\c???";q=5;w=2`},
				"Ratelimit":             {`"a\"b\\c???";r=4;t=1`},
				"X-Ratelimit-Limit":     {"5"},
				"X-Ratelimit-Remaining": {"4"},
				"X-Ratelimit-Reset":     {"1"},
			},
		},
		{
			name:      "no policy: nothing written",
			decisions: []billing.Decision{{Allowed: true}},
			want:      http.Header{},
		},
		{
			name:      "no decisions",
			decisions: nil,
			want:      http.Header{},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			SetRateLimitHeaders(h, c.decisions...)
			if diff := cmp.Diff(c.want, h); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetRateLimitHeadersReplaces(t *testing.T) {
	h := http.Header{}
	h.Set("Retry-After", "99")
	h.Set("RateLimit", "stale")
	SetRateLimitHeaders(h, billing.Decision{Limit: 100, RetryAfter: time.Second, Policy: requests})
	if got := h.Values("RateLimit"); len(got) != 1 || got[0] != `"requests";r=0;t=1` {
		t.Errorf("RateLimit = %q", got)
	}
	if got := h.Values("Retry-After"); len(got) != 1 || got[0] != "1" {
		t.Errorf("Retry-After = %q", got)
	}
}
