package middleware

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// fakeModel is a test upstream that speaks the chat completions protocol: it answers with
// tokens "tok " (4 characters, one token each), as many as the request's limit allows (or
// natural when it sets none), and reports prompt tokens as prompt. Streamed, it sends one chunk
// per token, sleeping firstPause after the first and pause after each other, and stops when the
// client goes. It counts its calls and records what it produced.
type fakeModel struct {
	natural    int64
	prompt     int64
	pause      time.Duration
	firstPause time.Duration
	status     int    // non-zero: answer with this status and errBody
	errBody    string // the error body
	noUsage    bool   // never report usage

	calls    atomic.Int64
	mu       sync.Mutex
	lastBody map[string]any
	produced int64         // tokens written by the last call
	done     chan struct{} // receives when a call returns, if not nil
}

func (f *fakeModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	defer func() {
		if f.done != nil {
			f.done <- struct{}{}
		}
	}()
	raw, _ := io.ReadAll(r.Body)
	var req map[string]any
	if err := json.Unmarshal(raw, &req); err != nil {
		http.Error(w, "fake model: bad json: "+err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.lastBody = req
	f.mu.Unlock()
	if f.status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		_, _ = io.WriteString(w, f.errBody)
		return
	}
	n := f.natural
	for _, k := range []string{"max_tokens", "max_completion_tokens"} {
		if v, ok := req[k].(float64); ok && int64(v) < n {
			n = int64(v)
		}
	}
	model, _ := req["model"].(string)
	stream, _ := req["stream"].(bool)
	if !stream {
		text := ""
		for range n {
			text += "tok "
		}
		resp := map[string]any{"id": "cmpl-1", "object": "chat.completion", "model": model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": text}}}}
		if !f.noUsage {
			resp["usage"] = map[string]any{"prompt_tokens": f.prompt, "completion_tokens": n,
				"total_tokens": f.prompt + n}
		}
		f.setProduced(n)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher := w.(http.Flusher)
	includeUsage := false
	if so, ok := req["stream_options"].(map[string]any); ok {
		includeUsage, _ = so["include_usage"].(bool)
	}
	var produced int64
	defer func() { f.setProduced(produced) }()
	for i := range n {
		chunk := fmt.Sprintf(`{"id":"cmpl-1","object":"chat.completion.chunk","model":%q,"choices":[{"index":0,"delta":{"content":"tok "}}]}`, model)
		produced++
		if _, err := fmt.Fprintf(w, "data: %s\n\n", chunk); err != nil {
			return
		}
		flusher.Flush()
		pause := f.pause
		if i == 0 && f.firstPause > 0 {
			pause = f.firstPause
		}
		if pause > 0 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(pause):
			}
		}
		if r.Context().Err() != nil {
			return
		}
	}
	if includeUsage && !f.noUsage {
		fmt.Fprintf(w, "data: {\"id\":\"cmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":%q,\"choices\":[],"+
			"\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", model, f.prompt, n, f.prompt+n)
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	flusher.Flush()
}

func (f *fakeModel) setProduced(n int64) {
	f.mu.Lock()
	f.produced = n
	f.mu.Unlock()
}

func (f *fakeModel) last() (map[string]any, int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastBody, f.produced
}
