package middleware

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"

	"github.com/meterplane/billing"
)

// relay is the ResponseWriter the Chat wrapper hands the upstream. A successful event stream
// (2xx, text/event-stream) goes to the client as it arrives, event by event, flushed after each
// write, while the relay reads the chunks for usage; anything else (a JSON completion, an error)
// is buffered so that its usage can be read and the cost header set before the client sees it.
type relay struct {
	client    http.ResponseWriter
	rc        *http.ResponseController
	ctx       context.Context // the client's request
	header    http.Header     // what the upstream sets
	status    int
	streaming bool
	trailer   bool // the cost trailer is declared
	wantUsage bool // the client asked for the usage chunk
	costs     bool // prices are configured

	body     bytes.Buffer // buffered response
	maxBody  int64
	overflow bool

	split     sseSplitter
	clientErr error // the client has gone; nothing more is written to it

	usage  *tokenUsage // the last usage the upstream reported
	chunks int64       // stream chunks that carried generated text, per choice
	chars  int64       // characters of generated text seen
}

// tokenUsage is the usage object of a chat completion (or of the final stream chunk).
type tokenUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// generated is the text of a message or of a stream delta, in every field that costs tokens.
type generated struct {
	Content          any    `json:"content"`
	Refusal          string `json:"refusal"`
	ReasoningContent string `json:"reasoning_content"`
	ToolCalls        []struct {
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls"`
}

func (g *generated) chars() int64 {
	n := textChars(g.Content) + textChars(g.Refusal) + textChars(g.ReasoningContent)
	for _, tc := range g.ToolCalls {
		n += textChars(tc.Function.Name) + textChars(tc.Function.Arguments)
	}
	return n
}

func newRelay(ctx context.Context, client http.ResponseWriter, wantUsage, costs bool, maxBody int64) *relay {
	return &relay{client: client, rc: http.NewResponseController(client), ctx: ctx, header: make(http.Header),
		wantUsage: wantUsage, costs: costs, maxBody: maxBody}
}

// Header implements http.ResponseWriter: the upstream's headers, copied to the client when the
// response is passed on.
func (r *relay) Header() http.Header { return r.header }

// WriteHeader implements http.ResponseWriter. A 2xx event stream starts passing through at once.
func (r *relay) WriteHeader(code int) {
	if r.status != 0 || code < 200 {
		return
	}
	r.status = code
	if code > 299 || !isEventStream(r.header.Get("Content-Type")) {
		return
	}
	r.streaming = true
	copyHeader(r.client.Header(), r.header)
	if r.costs {
		r.client.Header().Add("Trailer", HeaderCost)
		r.trailer = true
	}
	r.client.WriteHeader(code)
	if err := r.rc.Flush(); err != nil {
		r.clientErr = err
	}
}

// Write implements http.ResponseWriter. Once the client has gone, writes of a stream fail, so
// the upstream stops generating; what it wrote is still counted.
func (r *relay) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if !r.streaming {
		if r.overflow || int64(r.body.Len()+len(p)) > r.maxBody {
			r.overflow = true
			return 0, fmt.Errorf("%w: the response is larger than %d bytes", ErrUpstream, r.maxBody)
		}
		return r.body.Write(p)
	}
	r.split.feed(p, r.event)
	r.flushClient()
	if r.clientErr != nil {
		return len(p), r.clientErr
	}
	return len(p), nil
}

// Flush implements http.Flusher: a stream is flushed after every write already.
func (r *relay) Flush() {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
}

// flushClient sends what was written to the client, and notices a client that has gone.
func (r *relay) flushClient() {
	if r.clientErr != nil {
		return
	}
	if err := r.ctx.Err(); err != nil {
		r.clientErr = err
		return
	}
	if err := r.rc.Flush(); err != nil {
		r.clientErr = err
	}
}

// event reads one event of a stream for generated text and usage, and passes it on. The final
// usage-only chunk is held back when the client did not ask for it (the wrapper asked the upstream
// on its behalf).
func (r *relay) event(ev []byte, whole bool) {
	pass := true
	if data := eventData(ev); whole && data != nil && !bytes.Equal(data, []byte("[DONE]")) {
		var chunk struct {
			Choices []struct {
				Delta generated `json:"delta"`
			} `json:"choices"`
			Usage *tokenUsage `json:"usage"`
		}
		if json.Unmarshal(data, &chunk) == nil {
			for i := range chunk.Choices {
				if n := chunk.Choices[i].Delta.chars(); n > 0 {
					r.chunks++
					r.chars += n
				}
			}
			if chunk.Usage != nil {
				u := *chunk.Usage
				r.usage = &u
				pass = len(chunk.Choices) > 0 || r.wantUsage
			}
		}
	}
	if pass && r.clientErr == nil {
		if _, err := r.client.Write(ev); err != nil {
			r.clientErr = err
		}
	}
}

// endStream passes on what is left of an unfinished event when the upstream returns.
func (r *relay) endStream() {
	r.split.flush(r.event)
	r.flushClient()
}

// code returns the upstream's status: 200 when it wrote nothing.
func (r *relay) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// readBody reads the usage of a buffered (non-streamed) completion, or failing that the
// characters of its generated text.
func (r *relay) readBody() {
	var resp struct {
		Choices []struct {
			Message generated `json:"message"`
		} `json:"choices"`
		Usage *tokenUsage `json:"usage"`
	}
	if json.Unmarshal(r.body.Bytes(), &resp) != nil {
		return
	}
	r.usage = resp.Usage
	for i := range resp.Choices {
		r.chars += resp.Choices[i].Message.chars()
	}
}

// tokens returns the prompt and completion tokens to record: the upstream's usage when it
// reported one; otherwise the estimate of the request (prompt) and of what was seen (completion:
// the larger of the chunks that carried text and the characters divided by
// PromptCharsPerToken, rounded up), capped by the completion budget.
func (r *relay) tokens(prompt, budget int64) (in, out int64) {
	if r.usage != nil {
		return clampTokens(r.usage.PromptTokens), clampTokens(r.usage.CompletionTokens)
	}
	out = max(r.chunks, (r.chars+PromptCharsPerToken-1)/PromptCharsPerToken)
	return prompt, min(out, budget)
}

func clampTokens(n int64) int64 { return min(max(n, 0), billing.MaxQuantity) }

// passBuffered sends a buffered response to the client as the upstream wrote it.
func (r *relay) passBuffered() {
	copyHeader(r.client.Header(), r.header)
	r.client.Header().Set("Content-Length", strconv.Itoa(r.body.Len()))
	r.client.WriteHeader(r.code())
	_, _ = r.client.Write(r.body.Bytes())
}

// copyHeader sets dst's values of every header in src, except the framing ones the server
// recomputes.
func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		dst[k] = append([]string(nil), vs...)
	}
}

func isEventStream(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "text/event-stream"
}
