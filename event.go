package billing

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one measured use of a resource by a tenant: 812 output tokens of gpt-4o, one request,
// 3 MB stored. Events are immutable facts; usage, quotas and invoices are derived from them.
//
// The zero value is not a valid event: Tenant, Resource and a positive Quantity are required.
type Event struct {
	// ID is the idempotency key, unique per tenant: tracking the same (Tenant, ID) twice records it
	// once. Empty means "generate one" (a time-ordered UUIDv7); set it yourself (see NewEventID)
	// when you may retry a Track call. At most MaxIDLen bytes, no control characters.
	ID string `json:"id"`
	// Tenant is who used the resource. Required; at most MaxNameLen bytes, no control characters.
	Tenant string `json:"tenant"`
	// Resource names what was used, such as "requests" or "tokens.output". Required; at most
	// MaxNameLen bytes of ASCII letters, digits and . _ - : /
	Resource string `json:"resource"`
	// Quantity is how many units were used, in the unit the resource names (tokens, bytes, ms).
	// It must be between 1 and MaxQuantity.
	Quantity int64 `json:"quantity"`
	// Time is when the usage happened. Zero means now (Config.Now). It must not be older than
	// Config.LateWindow nor further ahead than Config.MaxFuture.
	Time time.Time `json:"time"`
	// Attrs are dimensions of the usage, such as {"model": "gpt-4o"}: usage can be grouped and
	// priced by them. At most MaxAttrs entries; keys of at most MaxAttrKeyLen bytes of ASCII
	// letters, digits and . _ - : /; values of at most MaxAttrValueLen bytes of UTF-8 text without
	// control characters. Keep their values few (models, regions), not per request: every distinct
	// combination gets its own usage buckets.
	Attrs map[string]string `json:"attrs,omitempty"`
}

// Validation limits for an Event.
const (
	MaxIDLen        = 128  // bytes of Event.ID
	MaxNameLen      = 128  // bytes of Event.Tenant and Event.Resource
	MaxAttrs        = 16   // entries in Event.Attrs
	MaxAttrKeyLen   = 64   // bytes of an attribute key
	MaxAttrValueLen = 256  // bytes of an attribute value
	MaxQuantity     = 1e15 // units in one event; keeps sums of millions of events inside int64
)

// Validate checks every field of e except Time, whose allowed range depends on the Meter's clock
// (Track checks it). The error matches ErrInvalidEvent and is a *FieldError naming the field.
func (e Event) Validate() error {
	if err := e.validate(""); err != nil {
		return err
	}
	return nil
}

func (e *Event) validate(prefix string) *FieldError {
	if fe := e.validateNames(prefix); fe != nil {
		return fe
	}
	return e.validateUsage(prefix)
}

// validateNames checks the id, tenant and resource.
func (e *Event) validateNames(prefix string) *FieldError {
	bad := func(field, format string, args ...any) *FieldError {
		return fieldErr(ErrInvalidEvent, prefix+field, format, args...)
	}
	if len(e.ID) > MaxIDLen {
		return bad("id", "must be at most %d bytes (got %d)", MaxIDLen, len(e.ID))
	}
	if r := checkText(e.ID); r != "" {
		return bad("id", "%s", r)
	}
	if r := tenantRule(e.Tenant); r != "" {
		return bad("tenant", "%s", r)
	}
	if r := checkName(e.Resource); r != "" {
		return bad("resource", "%s", r)
	}
	return nil
}

// validateUsage checks the quantity and the attributes.
func (e *Event) validateUsage(prefix string) *FieldError {
	bad := func(field, format string, args ...any) *FieldError {
		return fieldErr(ErrInvalidEvent, prefix+field, format, args...)
	}
	if e.Quantity <= 0 {
		return bad("quantity", "must be > 0 (got %d)", e.Quantity)
	}
	if e.Quantity > MaxQuantity {
		return bad("quantity", "must be at most %d (got %d)", int64(MaxQuantity), e.Quantity)
	}
	if len(e.Attrs) > MaxAttrs {
		return bad("attrs", "must have at most %d entries (got %d)", MaxAttrs, len(e.Attrs))
	}
	// Report the first bad attribute in key order, so the error does not depend on map order.
	var worst *FieldError
	worstKey := ""
	for k, v := range e.Attrs {
		if worst != nil && k > worstKey {
			continue
		}
		var fe *FieldError
		if r := checkKey(k); r != "" {
			fe = bad("attrs", "key %q: %s", k, r)
		} else if len(v) > MaxAttrValueLen {
			fe = bad("attrs["+k+"]", "must be at most %d bytes (got %d)", MaxAttrValueLen, len(v))
		} else if r := checkText(v); r != "" {
			fe = bad("attrs["+k+"]", "%s", r)
		}
		if fe != nil {
			worst, worstKey = fe, k
		}
	}
	return worst
}

// tenantRule validates a tenant id; it returns the broken rule or "".
func tenantRule(s string) string {
	switch {
	case s == "":
		return "is required"
	case len(s) > MaxNameLen:
		return "must be at most " + itoa(MaxNameLen) + " bytes (got " + itoa(len(s)) + ")"
	}
	return checkText(s)
}

// checkName validates a resource name; it returns the broken rule or "".
func checkName(s string) string {
	if s == "" {
		return "is required"
	}
	if len(s) > MaxNameLen {
		return "must be at most " + itoa(MaxNameLen) + " bytes (got " + itoa(len(s)) + ")"
	}
	return checkChars(s)
}

// checkKey validates an attribute key; it returns the broken rule or "".
func checkKey(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > MaxAttrKeyLen {
		return "must be at most " + itoa(MaxAttrKeyLen) + " bytes (got " + itoa(len(s)) + ")"
	}
	return checkChars(s)
}

func checkChars(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-' || c == ':' || c == '/') {
			return "may contain only ASCII letters, digits and . _ - : / (found " + quoteByte(c) + ")"
		}
	}
	return ""
}

// checkText validates free text: UTF-8 without control characters. It returns the rule or "".
func checkText(s string) string {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return "must be valid UTF-8"
			}
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "must not contain control characters (found " + quoteRune(r) + ")"
		}
	}
	return ""
}

func quoteByte(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return "byte 0x" + hex2(c)
	}
	return "'" + string(rune(c)) + "'"
}

func quoteRune(r rune) string {
	if r < 0x100 {
		return "byte 0x" + hex2(byte(r))
	}
	return string(r)
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

func itoa(n int) string { return strconv.Itoa(n) }

// encodeAttrs appends the canonical JSON object of attrs (sorted keys; only the keys in dims when
// dims is not nil) to dst. Equal attribute sets always encode to equal bytes; no attributes
// encode to "{}".
func encodeAttrs(dst []byte, attrs map[string]string, dims map[string]bool) []byte {
	var keysBuf [MaxAttrs]string
	keys := keysBuf[:0]
	for k := range attrs {
		if dims == nil || dims[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendJSONString(dst, attrs[k])
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string. Control characters were refused by validation, so
// only the quote and the backslash need escaping.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	if !strings.ContainsAny(s, `"\`) {
		dst = append(dst, s...)
		return append(dst, '"')
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			dst = append(dst, '\\', c)
		} else {
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// EncodeAttrs returns the canonical JSON object of attrs: keys sorted, no whitespace, "{}" for
// none. Stores keep attributes in this form, so equal attribute sets compare as equal strings.
func EncodeAttrs(attrs map[string]string) string { return string(encodeAttrs(nil, attrs, nil)) }

// DecodeAttrs parses a canonical attribute object written by the library (as stored in an event
// or a usage bucket). "{}" and "" decode to nil.
func DecodeAttrs(s string) (map[string]string, error) {
	if s == "" || s == "{}" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, err
	}
	return m, nil
}
