package middleware

import (
	"strings"
	"testing"
)

func TestSSESplitter(t *testing.T) {
	stream := "data: a\n\n: comment\r\ndata: b\r\ndata: c\r\n\r\nevent: x\ndata:d\n\ndata: tail"
	// Feed it in every split, byte by byte included: the events are the same.
	for _, step := range []int{1, 2, 3, 7, len(stream)} {
		var s sseSplitter
		var events, whole []string
		emit := func(ev []byte, w bool) {
			events = append(events, string(ev))
			if w {
				whole = append(whole, string(eventData(ev)))
			}
		}
		for i := 0; i < len(stream); i += step {
			s.feed([]byte(stream[i:min(i+step, len(stream))]), emit)
		}
		s.flush(emit)
		if got := strings.Join(events, ""); got != stream {
			t.Errorf("step %d: passed on %q, want the stream unchanged", step, got)
		}
		if got := strings.Join(whole, "|"); got != "a|b\nc|d" {
			t.Errorf("step %d: event data %q", step, got)
		}
	}
}

func TestSSESplitterBoundsAnEvent(t *testing.T) {
	var s sseSplitter
	var n int
	s.feed([]byte("data: "+strings.Repeat("x", maxEventBytes+10)), func(ev []byte, whole bool) {
		if whole {
			t.Error("an unfinished event was read as whole")
		}
		n += len(ev)
	})
	if n != maxEventBytes+16 || len(s.buf) != 0 {
		t.Errorf("passed on %d bytes, held %d", n, len(s.buf))
	}
}

func TestEventData(t *testing.T) {
	for in, want := range map[string]string{"id: 1\n\n": "<nil>", "data:\n\n": "", "data: [DONE]\n\n": "[DONE]"} {
		got := "<nil>"
		if d := eventData([]byte(in)); d != nil {
			got = string(d)
		}
		if got != want {
			t.Errorf("eventData(%q) = %q, want %q", in, got, want)
		}
	}
}
