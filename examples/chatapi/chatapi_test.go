package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// newDemo serves the demo's handler on a test server, with a Meter on a real SQLite file.
func newDemo(t *testing.T) (*httptest.Server, *billing.Meter, *service) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "billing.db"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := billing.New(billing.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := newService(context.Background(), m, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler)
	t.Cleanup(func() {
		srv.Close()        // returns once every handler has, so every commit has started
		svc.Pending.Wait() // and now has finished
		m.Close()
		st.Close()
	})
	return srv, m, svc
}

func client(srv *httptest.Server, key string) *openai.Client {
	c := openai.NewClient(option.WithBaseURL(srv.URL+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
	return &c
}

// tracked returns tenant's recorded usage of resource by model.
func tracked(t *testing.T, m *billing.Meter, tenant, resource string) map[string]int64 {
	t.Helper()
	rows, err := m.Usage(context.Background(), billing.UsageQuery{Tenant: tenant, Resource: resource,
		GroupBy: []string{"model"}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, r := range rows {
		out[r.Group["model"]] += r.Sum
	}
	return out
}

// TestOpenAIClient drives the demo through the official OpenAI Go client, streaming and not,
// on both models, and checks that the usage the client received equals the usage recorded, per
// model.
func TestOpenAIClient(t *testing.T) {
	srv, m, svc := newDemo(t)
	pro := demoTenants[1]
	c := client(srv, pro.Key)
	ctx := context.Background()
	gotIn, gotOut := map[string]int64{}, map[string]int64{}

	prompts := []string{"metering every token of every tenant", "hello world", "a b c d e f g h i j k"}
	for i, model := range []string{"demo-mini", "demo-max", "demo-mini"} {
		params := openai.ChatCompletionNewParams{
			Model:    model,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be terse"), openai.UserMessage(prompts[i])},
		}
		if i == 2 {
			params.MaxTokens = openai.Int(4)
		}

		// Non-streaming.
		var resp *http.Response
		comp, err := c.Chat.Completions.New(ctx, params, option.WithResponseInto(&resp))
		if err != nil {
			t.Fatalf("%s: %v", model, err)
		}
		if comp.Usage.CompletionTokens == 0 || comp.Choices[0].Message.Content == "" {
			t.Fatalf("%s: empty completion %+v", model, comp)
		}
		if resp.Header.Get("X-Billing-Cost") == "" || resp.Header.Get("RateLimit") == "" {
			t.Errorf("%s: headers %v", model, resp.Header)
		}
		gotIn[model] += comp.Usage.PromptTokens
		gotOut[model] += comp.Usage.CompletionTokens

		// Streaming, with the usage chunk.
		params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := c.Chat.Completions.NewStreaming(ctx, params)
		acc := openai.ChatCompletionAccumulator{}
		chunks := 0
		for stream.Next() {
			acc.AddChunk(stream.Current())
			chunks++
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("%s stream: %v", model, err)
		}
		stream.Close()
		if acc.Usage.CompletionTokens == 0 || acc.Choices[0].Message.Content != comp.Choices[0].Message.Content {
			t.Errorf("%s: streamed %q (usage %+v), want %q", model, acc.Choices[0].Message.Content, acc.Usage,
				comp.Choices[0].Message.Content)
		}
		if chunks < int(acc.Usage.CompletionTokens) {
			t.Errorf("%s: %d chunks for %d tokens", model, chunks, acc.Usage.CompletionTokens)
		}
		gotIn[model] += acc.Usage.PromptTokens
		gotOut[model] += acc.Usage.CompletionTokens
	}
	srv.Close()        // returns once every handler has, so every commit has started
	svc.Pending.Wait() // and now has finished
	if want, got := gotIn, tracked(t, m, pro.Tenant, "tokens.input"); !equal(want, got) {
		t.Errorf("tokens.input: client received %v, recorded %v", want, got)
	}
	if want, got := gotOut, tracked(t, m, pro.Tenant, "tokens.output"); !equal(want, got) {
		t.Errorf("tokens.output: client received %v, recorded %v", want, got)
	}
	if got := tracked(t, m, pro.Tenant, "requests")[""]; got != 6 {
		t.Errorf("requests = %d, want 6", got)
	}
	t.Logf("client and Meter agree: input %v, output %v", gotIn, gotOut)
}

func equal(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestOpenAIClientErrors: the SDK surfaces the problem details of refusals as its API errors.
func TestOpenAIClientErrors(t *testing.T) {
	srv, m, svc := newDemo(t)
	free := demoTenants[0]
	ctx := context.Background()
	msg := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}

	_, err := client(srv, free.Key).Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-9", Messages: msg})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, `"gpt-9" is not served`) ||
		apiErr.Code != "unknown_model" {
		t.Errorf("unknown model: %v", err)
	}
	_, err = client(srv, "sk-stolen-0123456789").Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "demo-mini", Messages: msg})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Errorf("bad key: %v", err)
	}

	// The free plan's hard limit on output tokens: use it up, then the next call is refused with
	// 429 before the model runs, and the limit was never crossed.
	if err := m.SetQuota(ctx, billing.QuotaRule{Tenant: free.Tenant, Resource: "tokens.output",
		Period: billing.PeriodDay, Limit: 6, Hard: true}); err != nil {
		t.Fatal(err)
	}
	long := openai.ChatCompletionNewParams{Model: "demo-mini", MaxTokens: openai.Int(4000),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10")}}
	comp, err := client(srv, free.Key).Chat.Completions.New(ctx, long)
	if err != nil {
		t.Fatal(err)
	}
	if comp.Usage.CompletionTokens != 6 || comp.Choices[0].FinishReason != "length" {
		t.Errorf("with 6 tokens left, max_tokens 4000: %d tokens, finish %q; want 6, length",
			comp.Usage.CompletionTokens, comp.Choices[0].FinishReason)
	}
	_, err = client(srv, free.Key).Chat.Completions.New(ctx, long)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "quota_exceeded" {
		t.Errorf("no tokens left: %v", err)
	}
	srv.Close()        // returns once every handler has, so every commit has started
	svc.Pending.Wait() // and now has finished
	if got := tracked(t, m, free.Tenant, "tokens.output")["demo-mini"]; got != 6 {
		t.Errorf("tokens.output = %d, want 6", got)
	}
}

// TestSelftest runs the demo's -selftest against a fresh database.
func TestSelftest(t *testing.T) {
	var out bytes.Buffer
	if err := runSelftest(&out, filepath.Join(t.TempDir(), "billing.db")); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"-> 429  rate-limited", "unknown-model", "selftest: OK"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("selftest output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestModelsAndUsageEndpoints(t *testing.T) {
	srv, _, _ := newDemo(t)
	c := client(srv, demoTenants[1].Key)
	page, err := c.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 2 || page.Data[0].ID != "demo-max" {
		t.Errorf("models: %+v", page.Data)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/v1/usage", nil)
	req.Header.Set("Authorization", "Bearer "+demoTenants[1].Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/v1/usage: %d", resp.StatusCode)
	}
}
