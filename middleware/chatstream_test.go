package middleware

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meterplane/billing"
)

// readEvents reads an SSE body and returns the data of each event.
func readEvents(t testing.TB, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestChatStreaming(t *testing.T) {
	m := newMeter(t, billing.Config{})
	up := &fakeModel{natural: 25, prompt: 9}
	h, wg := chatStack(m, up, ChatOptions{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, c := range []struct {
		extra     string
		wantUsage bool
	}{
		{`,"stream":true`, false},
		{`,"stream":true,"stream_options":{"include_usage":true}`, true},
	} {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(chatBody("m-small", c.extra)))
		req.Header.Set("X-Tenant", "acme")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		events := readEvents(t, resp.Body)
		resp.Body.Close()
		var chunks, usageChunks int
		for _, e := range events {
			if e == "[DONE]" {
				continue
			}
			var ch struct {
				Choices []any       `json:"choices"`
				Usage   *tokenUsage `json:"usage"`
			}
			if err := json.Unmarshal([]byte(e), &ch); err != nil {
				t.Fatalf("event %q: %v", e, err)
			}
			if ch.Usage != nil {
				usageChunks++
			} else {
				chunks++
			}
		}
		if chunks != 25 || (usageChunks == 1) != c.wantUsage || events[len(events)-1] != "[DONE]" {
			t.Errorf("%s: %d chunks, %d usage chunks, last %q; want 25, usage chunk %v, [DONE]",
				c.extra, chunks, usageChunks, events[len(events)-1], c.wantUsage)
		}
		if got := resp.Trailer.Get(HeaderCost); got != "0.000059 USD" {
			t.Errorf("%s: trailer %s = %q, want 0.000059 USD (9 in + 25 out)", c.extra, HeaderCost, got)
		}
		body, _ := up.last()
		if so, _ := body["stream_options"].(map[string]any); so["include_usage"] != true {
			t.Errorf("the upstream was not asked for usage: %v", body["stream_options"])
		}
	}
	srv.Close()
	wg.Wait()
	if in, out := total(t, m, "acme", "tokens.input"), total(t, m, "acme", "tokens.output"); in != 18 || out != 50 {
		t.Errorf("tracked %d in, %d out; want 18 and 50", in, out)
	}
}

// ttfb returns how long the first byte of a streamed completion from url takes.
func ttfb(t *testing.T, url string) time.Duration {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(chatBody("m-small", `,"stream":true`)))
	req.Header.Set("X-Tenant", "acme")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	one := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, one); err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	_, _ = io.Copy(io.Discard, resp.Body)
	return d
}

// TestChatStreamTimeToFirstByte: the upstream sends its first chunk and then pauses; the first
// byte through the wrapper arrives within milliseconds of the upstream's own, long before the
// pause ends: the wrapper does not buffer.
func TestChatStreamTimeToFirstByte(t *testing.T) {
	const pause = 400 * time.Millisecond
	m := newMeter(t, billing.Config{})
	up := &fakeModel{natural: 2, prompt: 3, firstPause: pause}
	direct := httptest.NewServer(up)
	defer direct.Close()
	h, wg := chatStack(m, up, ChatOptions{})
	wrapped := httptest.NewServer(h)
	defer wrapped.Close()

	ttfb(t, direct.URL) // warm both up
	ttfb(t, wrapped.URL)
	var bestDirect, bestWrapped time.Duration = time.Hour, time.Hour
	for range 3 {
		bestDirect = min(bestDirect, ttfb(t, direct.URL))
		bestWrapped = min(bestWrapped, ttfb(t, wrapped.URL))
	}
	t.Logf("time to first byte: upstream %v, through the middleware and Chat %v (upstream pauses %v after it)",
		bestDirect, bestWrapped, pause)
	if bestWrapped > pause/4 {
		t.Errorf("first byte through the wrapper after %v: it waited for the upstream's pause", bestWrapped)
	}
	if bestWrapped-bestDirect > 50*time.Millisecond {
		t.Errorf("the wrapper adds %v to the time to first byte", bestWrapped-bestDirect)
	}
	wrapped.Close()
	wg.Wait()
}

// TestChatStreamClientDisconnect: a client that leaves mid-stream still has the tokens the
// upstream produced committed (counted from the chunks, as no usage chunk came).
func TestChatStreamClientDisconnect(t *testing.T) {
	for _, viaProxy := range []bool{false, true} {
		t.Run(fmt.Sprintf("proxy=%v", viaProxy), func(t *testing.T) {
			m := newMeter(t, billing.Config{})
			setQuota(t, m, "acme", "tokens.output", 1_000_000, true)
			up := &fakeModel{natural: 10_000, prompt: 3, pause: 5 * time.Millisecond, done: make(chan struct{}, 1)}
			var upstream http.Handler = up
			if viaProxy {
				model := httptest.NewServer(up)
				defer model.Close()
				p, err := ChatProxy(model.URL, "sk-upstream")
				if err != nil {
					t.Fatal(err)
				}
				upstream = p
			}
			h, wg := chatStack(m, upstream, ChatOptions{})
			srv := httptest.NewServer(h)
			defer srv.Close()

			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions",
				strings.NewReader(chatBody("m-small", `,"stream":true`)))
			req.Header.Set("X-Tenant", "acme")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(resp.Body)
			for seen := 0; seen < 10 && sc.Scan(); {
				if strings.HasPrefix(sc.Text(), "data: ") {
					seen++
				}
			}
			cancel()
			resp.Body.Close()
			select {
			case <-up.done:
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream did not stop after the client left")
			}
			srv.Close() // waits for the handler, which starts the commit
			wg.Wait()
			_, produced := up.last()
			if produced < 10 || produced >= 10_000 {
				t.Fatalf("the upstream produced %d tokens; want it stopped early, after at least 10", produced)
			}
			// In process the wrapper sees every chunk the upstream writes. Through a proxy, a
			// chunk written just as the connection closes may never arrive.
			got, slack := total(t, m, "acme", "tokens.output"), int64(0)
			if viaProxy {
				slack = 2
			}
			if got > produced || got < produced-slack {
				t.Errorf("tokens.output committed = %d, want the %d produced", got, produced)
			}
			if got := reserved(t, m, "acme", "tokens.output"); got != 0 {
				t.Errorf("tokens.output still reserved: %d", got)
			}
			if got := total(t, m, "acme", "requests"); got != 1 {
				t.Errorf("requests = %d, want 1", got)
			}
		})
	}
}
