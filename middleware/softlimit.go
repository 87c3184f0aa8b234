package middleware

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meterplane/billing"
)

// HeaderQuotaWarning is the response header that lists the tenant's soft quotas that are
// exceeded, as a Structured Field list (RFC 9651), one member per rule:
//
//	X-Billing-Quota-Warning: "requests";period=day;used=812;limit=800
//
// Soft quotas never refuse; the header tells the client (and its developers) before a hard wall
// or an overage charge arrives.
const HeaderQuotaWarning = "X-Billing-Quota-Warning"

// DefaultSoftLimitCheck is the default of Options.SoftLimitCheck.
const DefaultSoftLimitCheck = time.Second

// maxSoftTenants bounds the tenants whose warning is cached; past it the cache starts afresh.
const maxSoftTenants = 100_000

// epoch anchors the monotonic clock of the warning cache.
var epoch = time.Now()

// softWarnings keeps, per tenant, the value of the quota warning header, refreshed from
// Meter.QuotaStatus at most once per interval, so the hot path costs a map lookup.
type softWarnings struct {
	m     *billing.Meter
	every time.Duration
	size  atomic.Int64
	cache sync.Map // tenant -> *softEntry
}

type softEntry struct {
	checked atomic.Int64 // nanoseconds since epoch of the last refresh; 0 before the first
	busy    atomic.Bool  // a request is refreshing
	value   atomic.Pointer[string]
}

// header returns the warning header's value for tenant ("" when no soft quota is exceeded). The
// value is at most one interval old; the request that finds it stale refreshes it.
func (s *softWarnings) header(ctx context.Context, tenant string) string {
	v, ok := s.cache.Load(tenant)
	if !ok {
		if s.size.Add(1) > maxSoftTenants {
			s.cache.Clear()
			s.size.Store(1)
		}
		v, _ = s.cache.LoadOrStore(tenant, &softEntry{})
	}
	e := v.(*softEntry)
	now := int64(time.Since(epoch)) + 1
	if last := e.checked.Load(); (last == 0 || now-last >= int64(s.every)) && e.busy.CompareAndSwap(false, true) {
		if states, err := s.m.QuotaStatus(ctx, tenant); err == nil {
			h := formatWarning(states)
			e.value.Store(&h)
			e.checked.Store(now)
		}
		e.busy.Store(false)
	}
	if p := e.value.Load(); p != nil {
		return *p
	}
	return ""
}

// formatWarning returns the header value for the soft rules of states that are exceeded.
func formatWarning(states []billing.QuotaState) string {
	var b []byte
	for _, st := range states {
		if !st.SoftExceeded {
			continue
		}
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = appendSFString(b, st.Rule.Resource)
		b = append(b, ";period="...)
		b = append(b, st.Rule.Period...)
		b = append(b, ";used="...)
		b = strconv.AppendInt(b, st.Used, 10)
		b = append(b, ";limit="...)
		b = strconv.AppendInt(b, st.Rule.Limit, 10)
	}
	return string(b)
}
