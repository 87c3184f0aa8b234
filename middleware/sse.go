package middleware

import "bytes"

// maxEventBytes bounds an SSE event held while its end is awaited; a longer one is passed on as
// it is, unread.
const maxEventBytes = 1 << 20

// sseSplitter cuts a server-sent event stream into events as its bytes arrive: each event is
// handed on whole, with the blank line that ends it, so what is passed on is byte for byte what
// came in. Lines may end in LF or CRLF.
type sseSplitter struct {
	buf []byte
}

var (
	sepLF   = []byte("\n\n")
	sepCRLF = []byte("\r\n\r\n")
)

// feed appends p and calls emit for every event it completes. emit must not keep its argument.
func (s *sseSplitter) feed(p []byte, emit func(event []byte, whole bool)) {
	s.buf = append(s.buf, p...)
	start := 0
	for {
		rest := s.buf[start:]
		end := -1
		if i := bytes.Index(rest, sepLF); i >= 0 {
			end = i + len(sepLF)
		}
		if i := bytes.Index(rest, sepCRLF); i >= 0 && (end < 0 || i+len(sepCRLF) < end) {
			end = i + len(sepCRLF)
		}
		if end < 0 {
			break
		}
		emit(rest[:end], true)
		start += end
	}
	if len(s.buf)-start > maxEventBytes {
		emit(s.buf[start:], false)
		start = len(s.buf)
	}
	n := copy(s.buf, s.buf[start:])
	s.buf = s.buf[:n]
}

// flush hands on what is left of an unfinished event, when the stream ends.
func (s *sseSplitter) flush(emit func(event []byte, whole bool)) {
	if len(s.buf) > 0 {
		emit(s.buf, false)
		s.buf = s.buf[:0]
	}
}

// eventData returns the data of an SSE event: its "data:" lines, without the field name and one
// optional space, joined by newlines; nil when it has none.
func eventData(event []byte) []byte {
	var data []byte
	found := false
	for len(event) > 0 {
		line := event
		if i := bytes.IndexByte(event, '\n'); i >= 0 {
			line, event = event[:i], event[i+1:]
		} else {
			event = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		v, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue
		}
		v = bytes.TrimPrefix(v, []byte(" "))
		if found {
			data = append(data, '\n')
		}
		data = append(data, v...)
		found = true
	}
	if !found {
		return nil
	}
	if data == nil {
		data = []byte{}
	}
	return data
}
