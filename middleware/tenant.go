package middleware

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/meterplane/billing"
)

// TenantSource identifies the tenant a request acts for. It returns the tenant id, or an error:
// one matching ErrNoTenant or ErrInvalidAPIKey (answered with 401), or any other error (answered
// by ProblemFor, usually 500). FromHeader, FromAPIKey and FromContext are ready-made sources; any
// func with this signature is one too. A source is called on every request, concurrently.
type TenantSource func(r *http.Request) (string, error)

// FromHeader takes the tenant from a request header, such as "X-Tenant", trimmed of spaces. Use it
// behind a gateway that authenticates callers and sets the header; on its own a header proves
// nothing. A missing or empty header is ErrNoTenant.
func FromHeader(name string) TenantSource {
	name = http.CanonicalHeaderKey(name)
	return func(r *http.Request) (string, error) {
		v := strings.TrimSpace(r.Header.Get(name))
		if v == "" {
			return "", fmt.Errorf("%w: the %s header is missing", ErrNoTenant, name)
		}
		return v, nil
	}
}

// FromContext takes the tenant that an earlier layer put in the request's context with
// billing.WithTenant, as the HTTP middleware does. The Chat wrapper uses it by default. No tenant
// in the context is ErrNoTenant.
func FromContext() TenantSource {
	return func(r *http.Request) (string, error) {
		if t, ok := billing.TenantFrom(r.Context()); ok {
			return t, nil
		}
		return "", fmt.Errorf("%w: no tenant in the request context; put the HTTP middleware in front of this "+
			"handler, or set a TenantSource", ErrNoTenant)
	}
}

// FromAPIKey identifies the tenant by an API key looked up in keys: the key is read from an
// "Authorization: Bearer <key>" header (what OpenAI-compatible clients send) or, failing that,
// from an "X-API-Key" header. No key is ErrNoTenant; a key that keys does not hold is
// ErrInvalidAPIKey.
func FromAPIKey(keys *KeyStore) TenantSource {
	return func(r *http.Request) (string, error) {
		key := bearer(r.Header.Get("Authorization"))
		if key == "" {
			key = strings.TrimSpace(r.Header.Get("X-Api-Key"))
		}
		if key == "" {
			return "", fmt.Errorf("%w: send an API key as \"Authorization: Bearer <key>\"", ErrNoTenant)
		}
		t, ok := keys.Lookup(key)
		if !ok {
			return "", ErrInvalidAPIKey
		}
		return t, nil
	}
}

// bearer returns the token of an "Authorization: Bearer <token>" value, or "".
func bearer(v string) string {
	const scheme = "bearer "
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return ""
	}
	return strings.TrimSpace(v[len(scheme):])
}

// checkTenant validates a tenant id as the Meter does (at most billing.MaxNameLen bytes of UTF-8
// text without control characters), so a bad id is a 401 rather than a failed reservation.
func checkTenant(t string) error {
	if t == "" {
		return fmt.Errorf("%w: the tenant id is empty", ErrNoTenant)
	}
	if len(t) > billing.MaxNameLen {
		return fmt.Errorf("%w: the tenant id is longer than %d bytes", ErrNoTenant, billing.MaxNameLen)
	}
	if !utf8.ValidString(t) {
		return fmt.Errorf("%w: the tenant id is not valid UTF-8", ErrNoTenant)
	}
	for _, c := range t {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return fmt.Errorf("%w: the tenant id contains control characters", ErrNoTenant)
		}
	}
	return nil
}
