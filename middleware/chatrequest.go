package middleware

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/meterplane/billing"
)

// Limits of the chat request parameters the wrapper reads.
const (
	// MaxTokensParam is the largest max_tokens or max_completion_tokens accepted.
	MaxTokensParam = 1_000_000_000
	// MaxChoicesParam is the largest n (choices per request) accepted.
	MaxChoicesParam = 128
)

// The prompt estimate: PromptTokensPerMessage plus one token per PromptCharsPerToken characters
// of each message's text, and PromptTokensPerReply for the reply's priming.
const (
	PromptCharsPerToken    = 4
	PromptTokensPerMessage = 4
	PromptTokensPerReply   = 3
)

// chatRequest is what the wrapper reads from a chat completion request, and the request's other
// members, kept as they were to be forwarded.
type chatRequest struct {
	fields        map[string]json.RawMessage
	model         string
	maxTokens     int64 // max_tokens; 0 when absent
	maxCompletion int64 // max_completion_tokens; 0 when absent
	choices       int64 // n; 1 when absent
	stream        bool
	wantUsage     bool  // the client asked for the final usage chunk itself
	prompt        int64 // estimated prompt tokens
}

// parseChatRequest reads an OpenAI-compatible chat completion request. known lists the models
// served (nil: any model whose name is a valid attribute value). Errors are
// *RequestError values naming the parameter. It never panics, whatever body holds.
func parseChatRequest(body []byte, known *modelSet) (*chatRequest, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest(ErrMalformedJSON, "", "the body is empty; send a chat completion request as a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, jsonError(err)
	}
	if fields == nil {
		return nil, badRequest(ErrMalformedJSON, "", "the body must be a JSON object, not null")
	}
	req := &chatRequest{fields: fields, choices: 1}
	var err error
	if req.model, err = modelParam(fields["model"], known); err != nil {
		return nil, err
	}
	if req.prompt, err = estimatePrompt(fields["messages"]); err != nil {
		return nil, err
	}
	if req.maxTokens, err = countParam(fields["max_tokens"], "max_tokens", MaxTokensParam); err != nil {
		return nil, err
	}
	if req.maxCompletion, err = countParam(fields["max_completion_tokens"], "max_completion_tokens", MaxTokensParam); err != nil {
		return nil, err
	}
	n, err := countParam(fields["n"], "n", MaxChoicesParam)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		req.choices = n
	}
	if req.stream, err = boolParam(fields["stream"], "stream"); err != nil {
		return nil, err
	}
	if raw, ok := fields["stream_options"]; ok && !isNull(raw) {
		var so map[string]json.RawMessage
		if err := json.Unmarshal(raw, &so); err != nil {
			return nil, badRequest(ErrInvalidParameter, "stream_options", "must be an object such as {\"include_usage\": true}")
		}
		if req.wantUsage, err = boolParam(so["include_usage"], "stream_options.include_usage"); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// limit returns the completion limit per choice the client asked for: the smaller of max_tokens
// and max_completion_tokens, or 0 when it set neither.
func (c *chatRequest) limit() int64 {
	switch {
	case c.maxTokens > 0 && c.maxCompletion > 0:
		return min(c.maxTokens, c.maxCompletion)
	case c.maxTokens > 0:
		return c.maxTokens
	default:
		return c.maxCompletion
	}
}

// encode returns the request to forward. perChoice > 0 sets the completion limit: the client's
// limit fields are lowered to it, and max_tokens is added when the client set neither. A
// streaming request gets stream_options.include_usage = true. Every other member is forwarded
// as it came (key order aside); duplicate keys are resolved once, here, so the upstream sees the
// values the wrapper checked.
func (c *chatRequest) encode(perChoice int64) ([]byte, error) {
	if perChoice > 0 {
		v := json.RawMessage(strconv.FormatInt(perChoice, 10))
		if c.maxTokens > 0 || c.maxCompletion == 0 {
			c.fields["max_tokens"] = v
		}
		if c.maxCompletion > 0 {
			c.fields["max_completion_tokens"] = v
		}
	}
	if c.stream {
		so := map[string]json.RawMessage{}
		if raw, ok := c.fields["stream_options"]; ok && !isNull(raw) {
			if err := json.Unmarshal(raw, &so); err != nil {
				return nil, err
			}
		}
		so["include_usage"] = json.RawMessage("true")
		raw, err := marshalRaw(so)
		if err != nil {
			return nil, err
		}
		c.fields["stream_options"] = raw
	}
	return marshalRaw(c.fields)
}

// marshalRaw encodes v without HTML escaping (so text reaches the upstream as the client wrote it)
// and without the encoder's trailing newline.
func marshalRaw(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// jsonError turns a decoding error of the body into a *RequestError that says where.
func jsonError(err error) *RequestError {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return badRequest(ErrMalformedJSON, "", "the body is not valid JSON: %s (at byte %d)", se.Error(), se.Offset)
	case errors.As(err, &te):
		return badRequest(ErrMalformedJSON, "", "the body must be a JSON object, not %s", te.Value)
	default:
		return badRequest(ErrMalformedJSON, "", "the body is not valid JSON: %v", err)
	}
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// modelParam reads "model": a required string the wrapper knows.
func modelParam(raw json.RawMessage, known *modelSet) (string, error) {
	if isNull(raw) {
		return "", badRequest(ErrInvalidParameter, "model", "is required: name the model to use")
	}
	var model string
	if err := json.Unmarshal(raw, &model); err != nil {
		return "", badRequest(ErrInvalidParameter, "model", "must be a string (got %s)", preview(raw))
	}
	if model == "" {
		return "", badRequest(ErrInvalidParameter, "model", "is required: name the model to use")
	}
	if known != nil {
		if !known.has(model) {
			return "", badRequest(ErrUnknownModel, "model", "model %q is not served here; use one of: %s", clip(model),
				known.list)
		}
		return model, nil
	}
	// Any model is accepted: it becomes the "model" attribute of the usage events.
	if err := (billing.Event{Tenant: "t", Resource: "r", Quantity: 1,
		Attrs: map[string]string{"model": model}}).Validate(); err != nil {
		return "", badRequest(ErrUnknownModel, "model", "model %q is not a valid model name (at most %d bytes of text)",
			clip(model), billing.MaxAttrValueLen)
	}
	return model, nil
}

// countParam reads an optional positive integer parameter such as max_tokens; 0 means absent.
func countParam(raw json.RawMessage, param string, most int64) (int64, error) {
	if isNull(raw) {
		return 0, nil
	}
	s := string(raw)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if _, ferr := strconv.ParseFloat(s, 64); ferr == nil && s[0] != '"' {
			if strings.HasPrefix(s, "-") {
				return 0, badRequest(ErrInvalidParameter, param, "must be a positive integer (got %s)", preview(raw))
			}
			if errors.Is(err, strconv.ErrRange) {
				return 0, badRequest(ErrInvalidParameter, param, "must be at most %d (got %s)", most, preview(raw))
			}
			return 0, badRequest(ErrInvalidParameter, param, "must be an integer (got %s)", preview(raw))
		}
		return 0, badRequest(ErrInvalidParameter, param, "must be a positive integer (got %s)", preview(raw))
	}
	switch {
	case n < 0:
		return 0, badRequest(ErrInvalidParameter, param, "must be a positive integer (got %d)", n)
	case n == 0:
		return 0, badRequest(ErrInvalidParameter, param, "must be at least 1 (got 0)")
	case n > most:
		return 0, badRequest(ErrInvalidParameter, param, "must be at most %d (got %d)", most, n)
	}
	return n, nil
}

// boolParam reads an optional boolean parameter; absent and null are false.
func boolParam(raw json.RawMessage, param string) (bool, error) {
	switch string(raw) {
	case "", "null", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, badRequest(ErrInvalidParameter, param, "must be true or false (got %s)", preview(raw))
}

// estimatePrompt checks "messages" (a non-empty array of objects) and estimates its tokens: per
// message, PromptTokensPerMessage plus one token per PromptCharsPerToken characters (rounded up)
// of every string in it except its role (content, text parts, names, tool call arguments), and
// PromptTokensPerReply for the reply. It is a deliberately simple heuristic for reserving quota
// before the upstream counts; the upstream's usage.prompt_tokens is what gets recorded.
func estimatePrompt(raw json.RawMessage) (int64, error) {
	if isNull(raw) {
		return 0, badRequest(ErrInvalidParameter, "messages", "is required: a list of messages such as "+
			`[{"role": "user", "content": "Hello"}]`)
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return 0, badRequest(ErrInvalidParameter, "messages", "must be an array of message objects")
	}
	if len(msgs) == 0 {
		return 0, badRequest(ErrInvalidParameter, "messages", "must contain at least one message")
	}
	total := int64(PromptTokensPerReply)
	for i, m := range msgs {
		var msg map[string]any
		if err := json.Unmarshal(m, &msg); err != nil || msg == nil {
			return 0, badRequest(ErrInvalidParameter, fmt.Sprintf("messages[%d]", i),
				`must be an object such as {"role": "user", "content": "Hello"}`)
		}
		var chars int64
		for k, v := range msg {
			if k != "role" {
				chars += textChars(v)
			}
		}
		total += PromptTokensPerMessage + (chars+PromptCharsPerToken-1)/PromptCharsPerToken
	}
	return total, nil
}

// textChars counts the characters of every string value in v (object keys excluded).
func textChars(v any) int64 {
	switch v := v.(type) {
	case string:
		return int64(utf8.RuneCountInString(v))
	case []any:
		var n int64
		for _, e := range v {
			n += textChars(e)
		}
		return n
	case map[string]any:
		var n int64
		for _, e := range v {
			n += textChars(e)
		}
		return n
	}
	return 0
}

// preview returns raw for an error message, cut short.
func preview(raw json.RawMessage) string { return clip(string(raw)) }

// clip cuts s to 64 bytes (on a rune boundary) for error messages.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	i := 64
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

// modelSet is the set of models a Chat wrapper serves.
type modelSet struct {
	names map[string]bool
	list  string // the names, comma-separated, for error messages
}

func newModelSet(names []string) *modelSet {
	if len(names) == 0 {
		return nil
	}
	s := &modelSet{names: make(map[string]bool, len(names))}
	var uniq []string
	for _, n := range names {
		if !s.names[n] {
			s.names[n] = true
			uniq = append(uniq, n)
		}
	}
	s.list = strings.Join(uniq, ", ")
	return s
}

func (s *modelSet) has(name string) bool { return s.names[name] }
