package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// echoModel is the demo's built-in language model: deterministic, offline, and
// OpenAI-compatible enough for real clients. A "token" is a word: the reply is the words of the
// last user message (demo-mini) or the same words in reverse order (demo-max), cut at the
// request's max_tokens / max_completion_tokens. Usage counts words too: prompt tokens are the
// words of every message plus 3 per message. It streams one word per chunk, pausing delay between
// words, and stops when the client goes.
type echoModel struct {
	delay time.Duration
}

// demoModels are the models the echo model serves, with the reply each gives.
var demoModels = map[string]func(words []string) []string{
	"demo-mini": func(w []string) []string { return w },
	"demo-max": func(w []string) []string {
		r := make([]string, len(w))
		for i, s := range w {
			r[len(w)-1-i] = s
		}
		return r
	},
}

type echoRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	MaxTokens           int  `json:"max_tokens"`
	MaxCompletionTokens int  `json:"max_completion_tokens"`
	N                   int  `json:"n"`
	Stream              bool `json:"stream"`
	StreamOptions       struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

type echoUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// text returns a message content's text: a string, or the text parts of an array.
func text(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
		b.WriteByte(' ')
	}
	return b.String()
}

// ServeHTTP implements http.Handler: one chat completion.
func (e echoModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req echoRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		openAIError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	reply, ok := demoModels[req.Model]
	if !ok {
		openAIError(w, http.StatusNotFound, fmt.Sprintf("model %q does not exist", req.Model))
		return
	}
	prompt, last := 0, ""
	for _, m := range req.Messages {
		t := text(m.Content)
		prompt += len(strings.Fields(t)) + 3
		if m.Role == "user" {
			last = t
		}
	}
	words := reply(strings.Fields(last))
	if len(words) == 0 {
		words = []string{"..."}
	}
	finish := "stop"
	for _, limit := range []int{req.MaxTokens, req.MaxCompletionTokens} {
		if limit > 0 && limit < len(words) {
			words, finish = words[:limit], "length"
		}
	}
	n := max(req.N, 1)
	usage := echoUsage{PromptTokens: prompt, CompletionTokens: n * len(words)}
	usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	id := fmt.Sprintf("chatcmpl-demo-%d", time.Now().UnixNano())
	created := time.Now().Unix()

	if !req.Stream {
		choices := make([]map[string]any, n)
		for i := range choices {
			choices[i] = map[string]any{"index": i, "finish_reason": finish, "logprobs": nil,
				"message": map[string]any{"role": "assistant", "content": strings.Join(words, " "), "refusal": nil}}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "object": "chat.completion", "created": created,
			"model": req.Model, "choices": choices, "usage": usage})
		return
	}

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	send := func(v any) bool {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		choices := make([]map[string]any, n)
		for i := range choices {
			choices[i] = map[string]any{"index": i, "delta": delta, "finish_reason": finish, "logprobs": nil}
		}
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": choices}
	}
	for i, word := range words {
		if i > 0 {
			word = " " + word
		}
		delta := map[string]any{"content": word}
		if i == 0 {
			delta["role"] = "assistant"
		}
		if !send(chunk(delta, nil)) {
			return
		}
		if e.delay > 0 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(e.delay):
			}
		}
	}
	if !send(chunk(map[string]any{}, finish)) {
		return
	}
	if req.StreamOptions.IncludeUsage {
		if !send(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []any{}, "usage": usage}) {
			return
		}
	}
	_, _ = fmt.Fprint(w, "data: [DONE]\n\n")
	_ = rc.Flush()
}

// openAIError answers in the shape of OpenAI's errors.
func openAIError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg,
		"type": "invalid_request_error", "param": nil, "code": nil}})
}
