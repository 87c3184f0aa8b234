package middleware

import (
	"context"
	"errors"

	"github.com/meterplane/billing"
)

// maxLowering bounds how often the completion budget is lowered and reserved again while other
// requests of the same tenant take the quota meanwhile.
const maxLowering = 16

// budget is what a chat request holds: its prompt estimate on the input resource, and its
// completion budget (perChoice tokens for each of n choices) on the output resource.
type budget struct {
	tenant    string
	in, out   *billing.Reservation
	perChoice int64
	choices   int64
	// setLimit says the upstream must be told perChoice as the request's limit: the client's
	// limit was lowered, or it set none and a hard quota needs one.
	setLimit bool
}

// reserve takes the request's budget. The completion budget is the client's limit (or
// DefaultMaxTokens) per choice; when a hard quota refuses it, the budget drops to what the quota
// has left and is reserved again, until it fits or nothing is left (then the refusal is
// returned). Reserve holds the units atomically, so concurrent requests can never together take
// more than the quota: the hard limit holds.
func (h *chatHandler) reserve(ctx context.Context, tenant string, req *chatRequest) (*budget, error) {
	attrs := map[string]string{"model": req.model}
	in, err := h.m.Reserve(ctx, tenant, h.opts.InputResource, max(req.prompt, 1))
	if err != nil {
		return nil, err
	}
	in.Attrs = attrs

	asked := req.limit()
	per := asked
	if per == 0 {
		per = h.opts.DefaultMaxTokens
	}
	var out *billing.Reservation
	for attempt := 0; ; attempt++ {
		out, err = h.m.Reserve(ctx, tenant, h.opts.OutputResource, per*req.choices)
		if err == nil {
			break
		}
		var qe *billing.QuotaExceededError
		left := int64(0)
		if errors.As(err, &qe) {
			left = (qe.Limit - qe.Used - qe.Reserved) / req.choices
		}
		if left <= 0 || left >= per || attempt == maxLowering {
			_ = in.Cancel(context.WithoutCancel(ctx))
			return nil, err
		}
		per = left
	}
	out.Attrs = attrs

	b := &budget{tenant: tenant, in: in, out: out, perChoice: per, choices: req.choices}
	if asked > 0 {
		b.setLimit = per < asked
	} else {
		b.setLimit = per < h.opts.DefaultMaxTokens || h.hardOutputQuota(ctx, tenant)
	}
	return b, nil
}

// hardOutputQuota reports whether a hard rule caps tenant's output tokens (true when the rules
// cannot be read: then the limit is sent, to be safe).
func (h *chatHandler) hardOutputQuota(ctx context.Context, tenant string) bool {
	rules, err := h.m.Quotas(ctx, tenant)
	if err != nil {
		return true
	}
	for _, q := range rules {
		if q.Hard && q.Resource == h.opts.OutputResource {
			return true
		}
	}
	return false
}

// outBudget is the most completion tokens the request may produce.
func (b *budget) outBudget() int64 { return b.perChoice * b.choices }

// cancel returns both reservations.
func (b *budget) cancel(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	_ = b.in.Cancel(ctx)
	_ = b.out.Cancel(ctx)
}
