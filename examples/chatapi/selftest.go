package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/meterplane/billing"
)

// callResult is what the selftest's client saw of one chat call.
type callResult struct {
	Status  int
	Header  http.Header
	Trailer http.Header
	Text    string       // the generated text
	Words   int64        // streamed words (one chunk each) or words of the text
	Usage   *callUsage   // the usage object, when the response had one
	Problem *callProblem // the problem, for an error
}

type callUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

type callProblem struct {
	Type   string `json:"type"`
	Detail string `json:"detail"`
}

// call makes one chat completion request with a plain net/http client, as any client would.
func call(c *http.Client, url, key string, req map[string]any) (*callResult, error) {
	body, _ := json.Marshal(req)
	hr, err := http.NewRequest("POST", url+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Authorization", "Bearer "+key)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	res := &callResult{Status: resp.StatusCode, Header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		res.Problem = &callProblem{}
		err := json.NewDecoder(resp.Body).Decode(res.Problem)
		return res, err
	}
	if stream, _ := req["stream"].(bool); stream {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok || data == "[DONE]" {
				continue
			}
			var chunk struct {
				Choices []struct {
					Delta struct {
						Content string `json:"content"`
					} `json:"delta"`
				} `json:"choices"`
				Usage *callUsage `json:"usage"`
			}
			if err := json.Unmarshal([]byte(data), &chunk); err != nil {
				return nil, fmt.Errorf("stream chunk %q: %w", data, err)
			}
			for _, ch := range chunk.Choices {
				if ch.Delta.Content != "" {
					res.Text += ch.Delta.Content
					res.Words++
				}
			}
			if chunk.Usage != nil {
				res.Usage = chunk.Usage
			}
		}
		res.Trailer = resp.Trailer // complete once the body is read
		return res, sc.Err()
	}
	var out struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Usage *callUsage `json:"usage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	for _, ch := range out.Choices {
		res.Text += ch.Message.Content
		res.Words += int64(len(strings.Fields(ch.Message.Content)))
	}
	res.Usage = out.Usage
	return res, nil
}

// promptTokens is the echo model's count of a one-message prompt: its words plus 3.
func promptTokens(content string) int64 { return int64(len(strings.Fields(content))) + 3 }

// runSelftest starts the demo on a random port with the database at path, calls it as both
// tenants (streaming and not, errors and limits included), prints what came back and a usage
// table, and checks that the usage recorded equals the usage the client received.
func runSelftest(out io.Writer, path string) error {
	a, err := start("127.0.0.1:0", path, 0, io.Discard)
	if err != nil {
		return err
	}
	defer a.stop()
	url, c := a.URL(), &http.Client{Timeout: 30 * time.Second}
	fmt.Fprintf(out, "chatapi selftest: server on %s, database %s\n\n", url, path)

	type key struct{ tenant, resource, model string }
	want := map[key]int64{}
	free, pro := demoTenants[0], demoTenants[1]
	// check makes one call and checks its status (0: 200 or 429) and usage.
	check := func(name, tenant, k, model, content string, req map[string]any, status int) (*callResult, error) {
		req["model"] = model
		req["messages"] = []map[string]string{{"role": "user", "content": content}}
		res, err := call(c, url, k, req)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line := fmt.Sprintf("%-34s %-9s %-9s -> %d", name, tenant, model, res.Status)
		if res.Status != status && (status != 0 || res.Status != http.StatusOK && res.Status != http.StatusTooManyRequests) {
			return nil, fmt.Errorf("%s: status %d, want %d (%+v)", name, res.Status, status, res.Problem)
		}
		if res.Status == http.StatusOK {
			in := promptTokens(content)
			want[key{tenant, "tokens.input", model}] += in
			want[key{tenant, "tokens.output", model}] += res.Words
			want[key{tenant, "requests", ""}]++
			if res.Usage != nil && (res.Usage.PromptTokens != in || res.Usage.CompletionTokens != res.Words) {
				return nil, fmt.Errorf("%s: usage %+v, but %d prompt and %d completion tokens were sent", name,
					*res.Usage, in, res.Words)
			}
			line += fmt.Sprintf("  %q", clip(res.Text, 30))
			cost := res.Header.Get("X-Billing-Cost")
			if res.Trailer != nil && res.Trailer.Get("X-Billing-Cost") != "" {
				cost = res.Trailer.Get("X-Billing-Cost") + " (trailer)"
			}
			line += fmt.Sprintf("  tokens %d+%d  cost %s", in, res.Words, cost)
		} else {
			line += "  " + strings.TrimPrefix(res.Problem.Type, "https://meterplane.dev/problems/") + ": " +
				clip(res.Problem.Detail, 70)
			if ra := res.Header.Get("Retry-After"); ra != "" {
				line += "  Retry-After: " + ra
			}
		}
		if rl := res.Header.Get("RateLimit"); rl != "" {
			line += "  RateLimit: " + rl
		}
		if w := res.Header.Get("X-Billing-Quota-Warning"); w != "" {
			line += "  X-Billing-Quota-Warning: " + w
		}
		fmt.Fprintln(out, line)
		return res, nil
	}

	steps := []struct {
		name, tenant, key, model, content string
		req                               map[string]any
		status                            int
	}{
		{"chat", pro.Tenant, pro.Key, "demo-max", "the quick brown fox jumps", map[string]any{}, 200},
		{"chat, stream + usage chunk", pro.Tenant, pro.Key, "demo-mini", "streams pass through chunk by chunk",
			map[string]any{"stream": true, "stream_options": map[string]any{"include_usage": true}}, 200},
		{"chat, max_tokens 3", free.Tenant, free.Key, "demo-mini", "one two three four five six",
			map[string]any{"max_tokens": 3}, 200},
		{"chat, stream", free.Tenant, free.Key, "demo-max", "hello from the free plan", map[string]any{"stream": true}, 200},
		{"unknown model", free.Tenant, free.Key, "gpt-9", "hi", map[string]any{}, 400},
		{"negative max_tokens", free.Tenant, free.Key, "demo-mini", "hi", map[string]any{"max_tokens": -1}, 400},
		{"wrong API key", "nobody", "sk-wrong-0123456789", "demo-mini", "hi", map[string]any{}, 401},
	}
	for _, s := range steps {
		if _, err := check(s.name, s.tenant, s.key, s.model, s.content, s.req, s.status); err != nil {
			return err
		}
	}
	// The free plan allows 10 requests a minute: keep calling until the rate limit answers.
	limited := false
	for i := 0; i < 15 && !limited; i++ {
		res, err := check("chat (free plan, until limited)", free.Tenant, free.Key, "demo-mini", "again",
			map[string]any{}, 0)
		if err != nil {
			return err
		}
		limited = res.Status == http.StatusTooManyRequests
		time.Sleep(30 * time.Millisecond) // lets the soft-limit warning refresh
	}
	if !limited {
		return fmt.Errorf("the free plan's rate limit never answered 429")
	}

	if err := a.stop(); err != nil { // every commit done and durable before the usage is read
		return err
	}
	a2, err := start("127.0.0.1:0", path, 0, io.Discard) // read it back as a restarted service would
	if err != nil {
		return err
	}
	defer a2.stop()
	return usageTable(out, a2.meter, func(tenant, resource, model string) int64 {
		return want[key{tenant, resource, model}]
	}, len(want))
}

// usageTable prints every tenant's recorded usage by resource and model, and checks each row
// against want.
func usageTable(out io.Writer, m *billing.Meter, want func(tenant, resource, model string) int64, rowsWanted int) error {
	rows, err := m.Usage(context.Background(), billing.UsageQuery{GroupBy: []string{"model"}})
	if err != nil {
		return err
	}
	// Meter.Usage returns rows sorted by tenant, resource and model.
	fmt.Fprintf(out, "\nusage recorded (all time)\n%-10s %-14s %-10s %8s %7s  %s\n", "tenant", "resource", "model",
		"sum", "events", "client saw")
	var bad []string
	for _, r := range rows {
		w := want(r.Tenant, r.Resource, r.Group["model"])
		mark := "ok"
		if w != r.Sum {
			mark = fmt.Sprintf("MISMATCH: %d", w)
			bad = append(bad, fmt.Sprintf("%s %s %s", r.Tenant, r.Resource, r.Group["model"]))
		}
		fmt.Fprintf(out, "%-10s %-14s %-10s %8d %7d  %s\n", r.Tenant, r.Resource, r.Group["model"], r.Sum, r.Count, mark)
	}
	if len(rows) != rowsWanted {
		bad = append(bad, fmt.Sprintf("%d usage rows, want %d", len(rows), rowsWanted))
	}
	if len(bad) > 0 {
		return fmt.Errorf("recorded usage differs from what the client received: %s", strings.Join(bad, "; "))
	}
	fmt.Fprintln(out, "\nselftest: OK (recorded usage equals the usage the client received)")
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
