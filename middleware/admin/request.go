package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meterplane/billing/middleware"
)

// badParam is a 400 naming the parameter.
func badParam(param, format string, args ...any) error {
	return &middleware.RequestError{Kind: middleware.ErrInvalidParameter, Param: param, Detail: fmt.Sprintf(format, args...)}
}

// checkQuery refuses query parameters the route does not know, naming the first one.
func checkQuery(r *http.Request, known []string) error {
	for k := range r.URL.Query() {
		if !slices.Contains(known, k) {
			want := "none"
			if len(known) > 0 {
				want = strings.Join(known, ", ")
			}
			return badParam(k, "unknown query parameter %q; this endpoint takes: %s", k, want)
		}
	}
	return nil
}

// decode reads the JSON body of c into v: at most MaxBody bytes, one object, no unknown fields.
func (c *call) decode(v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, MaxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &middleware.RequestError{Kind: middleware.ErrBodyTooLarge,
			Detail: fmt.Sprintf("the body is larger than %d bytes", MaxBody)}
	}
	if err != nil {
		return &middleware.RequestError{Kind: middleware.ErrMalformedJSON, Detail: "the body could not be read: " + err.Error()}
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return &middleware.RequestError{Kind: middleware.ErrMalformedJSON, Detail: "the body has data after its JSON object"}
	}
	return nil
}

// jsonError turns a decoding error into a 400 that names the field at fault.
func jsonError(err error) error {
	var (
		se *json.SyntaxError
		te *json.UnmarshalTypeError
	)
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "json: unknown field "):
		field, _ := strconv.Unquote(strings.TrimPrefix(msg, "json: unknown field "))
		return &middleware.RequestError{Kind: middleware.ErrMalformedJSON, Param: field,
			Detail: fmt.Sprintf("unknown field %q", field)}
	case errors.As(err, &te):
		field := te.Field
		return &middleware.RequestError{Kind: middleware.ErrMalformedJSON, Param: field,
			Detail: fmt.Sprintf("field %q must be %s, not %s", field, te.Type, te.Value)}
	case errors.As(err, &se):
		return &middleware.RequestError{Kind: middleware.ErrMalformedJSON,
			Detail: fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, err)}
	case errors.Is(err, io.EOF):
		return &middleware.RequestError{Kind: middleware.ErrMalformedJSON, Detail: "the body is empty; send a JSON object"}
	}
	return &middleware.RequestError{Kind: middleware.ErrMalformedJSON, Detail: msg}
}

// writeJSON answers with v as JSON and status 200.
func (c *call) writeJSON(v any) error {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "application/json")
	_, _ = c.w.Write(append(body, '\n'))
	return nil
}

// page is the body of a list: the items and, when there may be more, the cursor of the next
// page.
type page[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// queryInt parses an optional non-negative integer query parameter; def when absent.
func (c *call) queryInt(name string, def, maxV int) (int, error) {
	s := c.r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxV {
		return 0, badParam(name, "must be an integer from 1 to %d (got %q)", maxV, s)
	}
	return n, nil
}

// queryTime parses an optional RFC 3339 time query parameter; the zero time when absent.
func (c *call) queryTime(name string) (time.Time, error) {
	s := c.r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badParam(name, "must be an RFC 3339 time such as 2026-03-01T00:00:00Z (got %q)", s)
	}
	return t, nil
}

// marshal returns v as JSON for the audit log; nil for nil.
func marshal(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" {
		return nil
	}
	return b
}
