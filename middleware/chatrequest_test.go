package middleware

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestParseChatRequest(t *testing.T) {
	known := newModelSet([]string{"m-small", "m-large"})
	req, err := parseChatRequest([]byte(`{"model":"m-small","messages":[{"role":"user","content":[`+
		`{"type":"text","text":"abcdefgh"}]},{"role":"assistant","content":null,"tool_calls":[`+
		`{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}],`+
		`"max_tokens":40,"max_completion_tokens":30,"n":2,"stream":true,"temperature":0.5,"x":"<b>"}`), known)
	if err != nil {
		t.Fatal(err)
	}
	if req.model != "m-small" || req.limit() != 30 || req.choices != 2 || !req.stream || req.wantUsage {
		t.Errorf("parsed %+v", req)
	}
	// Message 1: "text" + "abcdefgh" = 12 chars = 3 tokens; message 2: "c1" "function" "f" "{}" = 13
	// chars = 4 tokens; 4 per message; 3 for the reply.
	if req.prompt != 3+4+4+4+3 {
		t.Errorf("prompt estimate = %d, want 18", req.prompt)
	}
	out, err := req.encode(10)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(out, &fields); err != nil {
		t.Fatal(err)
	}
	if fields["max_tokens"] != float64(10) || fields["max_completion_tokens"] != float64(10) ||
		fields["temperature"] != 0.5 || fields["x"] != "<b>" {
		t.Errorf("forwarded %s", out)
	}
	if so := fields["stream_options"].(map[string]any); so["include_usage"] != true {
		t.Errorf("stream_options = %v", so)
	}
	if !strings.Contains(string(out), `"<b>"`) {
		t.Errorf("text was HTML-escaped: %s", out)
	}
}

func TestParseChatRequestDuplicateKeys(t *testing.T) {
	// The value checked is the value forwarded: duplicates are resolved once, by the wrapper.
	req, err := parseChatRequest([]byte(`{"model":"m","messages":[{"role":"user","content":"x"}],`+
		`"max_tokens":10,"max_tokens":99999}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := req.encode(0)
	if strings.Count(string(out), "max_tokens") != 1 || req.limit() != 99999 || !strings.Contains(string(out), "99999") {
		t.Errorf("limit %d, forwarded %s", req.limit(), out)
	}
}

// FuzzChatRequest: parsing never panics; a refusal is a *RequestError answered with 400; an
// accepted request has sane values and forwards as valid JSON that parses back to the same.
func FuzzChatRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m-small","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m-large","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":5,"stream":true}`,
		`{"model":"m-small","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":-1}`,
		`{"model":"m-small","messages":[],"n":3,"stream_options":{"include_usage":false}}`,
		`{"model":"x","messages":[{}],"max_tokens":1e99}`,
		`{"model":1}`, `[]`, `null`, `{`, `"\u0000"`, ``,
	} {
		f.Add([]byte(s))
	}
	known := newModelSet([]string{"m-small", "m-large"})
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, models := range []*modelSet{known, nil} {
			req, err := parseChatRequest(body, models)
			if err != nil {
				var re *RequestError
				if !errors.As(err, &re) || ProblemFor(err).Status != http.StatusBadRequest || re.Detail == "" {
					t.Fatalf("refusal %v (%T) is not a 400 request error", err, err)
				}
				continue
			}
			if req.model == "" || req.prompt < PromptTokensPerMessage+PromptTokensPerReply ||
				req.limit() < 0 || req.limit() > MaxTokensParam || req.choices < 1 || req.choices > MaxChoicesParam {
				t.Fatalf("accepted with bad values: %+v", req)
			}
			model, stream, limit := req.model, req.stream, req.limit()
			setLimit := int64(0)
			if limit > 1 {
				setLimit = limit - 1
			}
			out, err := req.encode(setLimit)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			again, err := parseChatRequest(out, models)
			if err != nil {
				t.Fatalf("the forwarded body %s does not parse: %v", out, err)
			}
			if again.model != model || again.stream != stream || (stream && !again.wantUsage) {
				t.Fatalf("forwarded %s changed the request", out)
			}
			if setLimit > 0 && again.limit() != setLimit {
				t.Fatalf("forwarded limit %d, want %d", again.limit(), setLimit)
			}
		}
	})
}
