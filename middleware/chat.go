package middleware

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/meterplane/billing"
)

// Defaults of ChatOptions.
const (
	DefaultMaxBodyBytes     = 1 << 20  // 1 MiB
	DefaultMaxResponseBytes = 32 << 20 // 32 MiB
	DefaultMaxTokens        = 4096
)

// ChatOptions configures Chat. Upstream is required; every other field documents its default.
type ChatOptions struct {
	// Upstream serves the chat completions: an in-process http.Handler, or ChatProxy for a real
	// OpenAI-compatible endpoint. It receives the request as the client sent it, except that the
	// completion limit may be lowered or added, a streaming request asks for the usage chunk
	// (stream_options.include_usage), and the client's credentials (Authorization, X-API-Key) and
	// Accept-Encoding are removed. Required.
	Upstream http.Handler

	// Tenant identifies the tenant. Defaults to FromContext(): put HTTP in front of Chat.
	Tenant TenantSource

	// Models are the models served; a request for another is a 400 unknown-model problem.
	// Defaults to the models that Prices match on ("model" attribute); with neither, any model
	// name is accepted.
	Models []string

	// Prices are per-model token prices (Resource InputResource or OutputResource, Match
	// {"model": ...}), usually the same as the tenants' plans. They set the X-Billing-Cost
	// header (a trailer on streamed responses). Defaults to none: no cost header.
	Prices []billing.Price

	// Currency is the ISO 4217 code of Prices, such as "USD". Required with Prices.
	Currency string

	// InputResource is the resource prompt tokens are metered as. Defaults to "tokens.input".
	InputResource string
	// OutputResource is the resource completion tokens are metered as. Defaults to
	// "tokens.output".
	OutputResource string

	// MaxBodyBytes limits the request body. Defaults to DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64

	// MaxResponseBytes limits a non-streamed upstream response, which is buffered to read its
	// usage. Defaults to DefaultMaxResponseBytes (32 MiB).
	MaxResponseBytes int64

	// DefaultMaxTokens is the completion budget reserved for a request that sets neither
	// max_tokens nor max_completion_tokens. When the tenant has a hard quota on OutputResource,
	// the budget is also sent upstream as max_tokens, so the quota holds. Defaults to
	// DefaultMaxTokens (4096).
	DefaultMaxTokens int64

	// QuotaExceededStatus is the status of a quota refusal: 429 (the default) or 402.
	QuotaExceededStatus int

	// WaitDurable makes the response wait until its token usage is recorded, as in Options.
	// Defaults to false: usage is committed behind the response.
	WaitDurable bool
	// Pending, when set, counts the commits running behind responses, as in Options. Give HTTP
	// and Chat the same WaitGroup. Defaults to nil.
	Pending *sync.WaitGroup
	// MaxPending bounds the commits running behind responses, as in Options. Defaults to
	// DefaultMaxPending.
	MaxPending int
	// OnError receives errors no response can report, as in Options. Defaults to logging them
	// with slog.Default().
	OnError func(error)
}

// Chat returns a handler for an OpenAI-compatible POST /v1/chat/completions endpoint that holds
// each tenant to its token quotas and meters the tokens of every completion:
//
//  1. read the request (at most MaxBodyBytes): model, messages, max_tokens /
//     max_completion_tokens, n, stream. Malformed JSON, an oversized body, an unknown model or a
//     bad parameter is a 400 problem, and nothing is reserved or recorded;
//  2. reserve the estimated prompt tokens (see PromptCharsPerToken) on InputResource, and the
//     completion budget (the client's limit, or DefaultMaxTokens, times n) on OutputResource.
//     When a hard quota on OutputResource cannot hold the whole budget, the budget is lowered to
//     what is left and sent upstream as the request's limit; when nothing is left, or the
//     prompt does not fit the input quota, the answer is a 429 (or 402) quota-exceeded problem,
//     before the upstream is called;
//  3. call the upstream. A streamed response passes through event by event as it arrives,
//     flushed; the wrapper asks the upstream for the final usage chunk and passes it on only if
//     the client asked too. A non-streamed response is buffered, and passed on with the
//     X-Billing-Cost header;
//  4. commit the upstream's usage.prompt_tokens and usage.completion_tokens on InputResource and
//     OutputResource, with the "model" attribute (the requested model). Without a usage object
//     (a client that left mid-stream, an upstream that does not report it) the wrapper commits
//     its estimate: the prompt estimate, and for the completion the larger of the stream chunks
//     that carried text and its characters divided by four, capped by the budget. A non-2xx
//     upstream answer cancels the reservations and passes through unchanged. The commit runs
//     behind the response, but the unused part of the budget returns before the response ends
//     (so the client's next request sees it); when the budget took all the quota had left, the
//     commit runs in line instead, and that response waits for it.
//
// An upstream that panics has its reservations settled (what a stream produced is committed,
// otherwise cancelled) and the panic goes on up. Chat panics at setup on options that can never
// work (no Upstream, invalid Prices); never on a request. Safe for concurrent use.
func Chat(m *billing.Meter, opts ChatOptions) http.Handler {
	if m == nil {
		panic("middleware.Chat: the Meter is nil")
	}
	if opts.Upstream == nil {
		panic("middleware.Chat: ChatOptions.Upstream is required: an http.Handler, or ChatProxy(baseURL, apiKey)")
	}
	if opts.Tenant == nil {
		opts.Tenant = FromContext()
	}
	if opts.InputResource == "" {
		opts.InputResource = "tokens.input"
	}
	if opts.OutputResource == "" {
		opts.OutputResource = "tokens.output"
	}
	for _, res := range []string{opts.InputResource, opts.OutputResource} {
		if err := (billing.Event{Tenant: "t", Resource: res, Quantity: 1}).Validate(); err != nil {
			panic(fmt.Sprintf("middleware.Chat: resource %q: %v", res, err))
		}
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if opts.DefaultMaxTokens <= 0 {
		opts.DefaultMaxTokens = DefaultMaxTokens
	}
	opts.DefaultMaxTokens = min(opts.DefaultMaxTokens, MaxTokensParam)
	if opts.QuotaExceededStatus == 0 {
		opts.QuotaExceededStatus = http.StatusTooManyRequests
	}
	if opts.QuotaExceededStatus < 400 || opts.QuotaExceededStatus > 499 {
		panic(fmt.Sprintf("middleware.Chat: ChatOptions.QuotaExceededStatus must be a 4xx status such as 429 or 402 (got %d)",
			opts.QuotaExceededStatus))
	}
	price, err := newPricer(opts.Prices, opts.Currency, opts.InputResource, opts.OutputResource)
	if err != nil {
		panic("middleware.Chat: " + err.Error())
	}
	models := opts.Models
	if len(models) == 0 {
		models = modelsOf(opts.Prices)
	}
	return &chatHandler{m: m, opts: opts, known: newModelSet(models), price: price,
		commits: newCommitter(opts.WaitDurable, opts.Pending, opts.MaxPending, opts.OnError)}
}

// chatHandler is the handler Chat returns.
type chatHandler struct {
	m       *billing.Meter
	opts    ChatOptions
	known   *modelSet
	price   *pricer
	commits *committer
}

// ServeHTTP implements http.Handler: one chat completion, metered (see Chat).
func (h *chatHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, r, badRequest(ErrMethodNotAllowed, "", "chat completions are created with POST (got %s)", r.Method))
		return
	}
	tenant, err := h.opts.Tenant(r)
	if err == nil {
		err = checkTenant(tenant)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	body, err := h.readBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	req, err := parseChatRequest(body, h.known)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	b, err := h.reserve(ctx, tenant, req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	limit := int64(0)
	if b.setLimit {
		limit = b.perChoice
	}
	payload, err := req.encode(limit)
	if err != nil {
		b.cancel(ctx)
		h.fail(w, r, err)
		return
	}

	rl := newRelay(ctx, w, req.wantUsage, h.price != nil, h.opts.MaxResponseBytes)
	settled := false
	defer func() {
		if settled {
			return
		}
		// The upstream panicked: keep what a stream produced, and let the panic go on; except
		// when a proxy aborted because its response overflowed the buffer, which is answered.
		if rl.streaming {
			in, out := rl.tokens(req.prompt, b.outBudget())
			h.commit(ctx, b, in, out)
			return
		}
		b.cancel(context.WithoutCancel(ctx))
		if rl.overflow {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				panic(v)
			}
			h.fail(w, r, fmt.Errorf("%w: the upstream's response is larger than %d bytes", ErrUpstream,
				h.opts.MaxResponseBytes))
		}
	}()
	h.opts.Upstream.ServeHTTP(rl, upstreamRequest(r, payload))
	settled = true

	if rl.streaming {
		rl.endStream()
		in, out := rl.tokens(req.prompt, b.outBudget())
		if rl.trailer && rl.usage != nil {
			if c := h.price.cost(req.model, in, out); c != "" {
				w.Header().Set(HeaderCost, c)
			}
		}
		h.commit(ctx, b, in, out)
		return
	}
	if rl.overflow {
		b.cancel(ctx)
		h.fail(w, r, fmt.Errorf("%w: the upstream's response is larger than %d bytes", ErrUpstream, h.opts.MaxResponseBytes))
		return
	}
	if code := rl.code(); code < 200 || code > 299 {
		b.cancel(ctx)
		rl.passBuffered()
		return
	}
	rl.readBody()
	in, out := rl.tokens(req.prompt, b.outBudget())
	if c := h.price.cost(req.model, in, out); c != "" {
		rl.header.Set(HeaderCost, c)
	}
	rl.passBuffered()
	h.commit(ctx, b, in, out)
}

// readBody reads the request body, at most MaxBodyBytes.
func (h *chatHandler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := h.opts.MaxBodyBytes
	tooLarge := badRequest(ErrBodyTooLarge, "", "the body is larger than the limit of %d bytes; send a shorter "+
		"conversation", limit)
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, badRequest(ErrMalformedJSON, "", "the body could not be read: %v", err)
	}
	return body, nil
}

// commit records the tokens of a finished request, behind the response unless WaitDurable.
//
// The completion budget usually exceeds what was produced, and a hold returns only when its
// commit is recorded, which behind the response happens a disk sync later: a client's next
// request could find its quota still held by the last one. So the budget's hold is first swapped
// for one of the actual size (a new reservation, then the budget cancelled: the tokens stay held
// throughout, so the hard limit holds), and the rest returns before the response ends. When the
// quota has no room for the second hold (the budget took what was left), the commit runs in line
// instead, so the budget still returns before the response ends.
func (h *chatHandler) commit(ctx context.Context, b *budget, in, out int64) {
	inline, outDone := false, false
	if !h.commits.wait && out < b.out.Quantity {
		ctx := context.WithoutCancel(ctx)
		if out == 0 {
			_ = b.out.Cancel(ctx)
			outDone = true
		} else if exact, err := h.m.Reserve(ctx, b.tenant, h.opts.OutputResource, out); err == nil {
			exact.Attrs = b.out.Attrs
			_ = b.out.Cancel(ctx)
			b.out = exact
		} else {
			inline = true
		}
	}
	commit := func(ctx context.Context) error {
		// Both events go to the Meter's writer at once, so they share a batch (one disk sync).
		var errIn error
		done := make(chan struct{})
		go func() {
			defer close(done)
			errIn = b.in.Commit(ctx, in)
		}()
		var errOut error
		if !outDone {
			errOut = b.out.Commit(ctx, out)
		}
		<-done
		return errors.Join(errIn, errOut)
	}
	if inline {
		h.commits.do(context.WithoutCancel(ctx), commit)
		return
	}
	h.commits.run(ctx, commit)
}

// fail answers with the problem of err, and reports server-side failures.
func (h *chatHandler) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(err, h.opts.QuotaExceededStatus, time.Now())
	if p.Status >= 500 {
		h.commits.onError(fmt.Errorf("billing chat: %s %s: %w", r.Method, r.URL.Path, err))
	}
	writeProblem(w, r, p)
}

// upstreamRequest is r with the rewritten body, without the client's credentials, and without
// Accept-Encoding (the wrapper must read the response).
func upstreamRequest(r *http.Request, body []byte) *http.Request {
	ur := r.Clone(r.Context())
	ur.Body = io.NopCloser(bytes.NewReader(body))
	ur.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	ur.ContentLength = int64(len(body))
	ur.TransferEncoding = nil
	ur.Header.Set("Content-Length", strconv.Itoa(len(body)))
	ur.Header.Set("Content-Type", "application/json")
	for _, k := range []string{"Accept-Encoding", "Authorization", "X-Api-Key"} {
		ur.Header.Del(k)
	}
	return ur
}
