package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/meterplane/billing/middleware"
)

// Role is what a principal may do.
type Role string

// The roles.
const (
	// RoleAdmin may read and change everything.
	RoleAdmin Role = "admin"
	// RoleViewer may read everything and change nothing.
	RoleViewer Role = "viewer"
	// RoleTenant may read its own tenant's summary, usage and invoices, and nothing else.
	RoleTenant Role = "tenant"
)

// Principal is who makes a request. A plain value; safe to copy.
type Principal struct {
	// Name identifies the principal in the audit log, such as "admin" or "alice@example.com".
	Name string
	// Role is what the principal may do.
	Role Role
	// Tenant is the tenant a RoleTenant principal may read; empty for other roles.
	Tenant string
}

// ParsePrincipal parses the principal of a token: "admin", "viewer" or "tenant:<id>",
// optionally followed by "=<name>" to name it in the audit log ("admin=alice"). The name
// defaults to the spec itself.
func ParsePrincipal(spec string) (Principal, error) {
	role, name, named := strings.Cut(spec, "=")
	if !named {
		name = spec
	}
	if name == "" {
		return Principal{}, fmt.Errorf("admin: principal %q has an empty name after '='", spec)
	}
	switch {
	case role == string(RoleAdmin):
		return Principal{Name: name, Role: RoleAdmin}, nil
	case role == string(RoleViewer):
		return Principal{Name: name, Role: RoleViewer}, nil
	case strings.HasPrefix(role, "tenant:") && len(role) > len("tenant:"):
		return Principal{Name: name, Role: RoleTenant, Tenant: strings.TrimPrefix(role, "tenant:")}, nil
	}
	return Principal{}, fmt.Errorf(`admin: principal %q is not "admin", "viewer" or "tenant:<id>"`, spec)
}

// tokenEntry is one accepted token, kept only as its SHA-256 digest.
type tokenEntry struct {
	digest    [sha256.Size]byte
	principal Principal
}

// tokenSet checks bearer tokens against the configured ones.
type tokenSet []tokenEntry

func newTokenSet(tokens map[string]string) (tokenSet, error) {
	out := make(tokenSet, 0, len(tokens))
	for tok, spec := range tokens {
		if len(tok) < 16 {
			return nil, fmt.Errorf("admin: a token of principal %q is %d characters; use at least 16 random ones", spec, len(tok))
		}
		p, err := ParsePrincipal(spec)
		if err != nil {
			return nil, err
		}
		out = append(out, tokenEntry{digest: sha256.Sum256([]byte(tok)), principal: p})
	}
	return out, nil
}

// lookup returns the principal of tok. It compares the digest with every entry in constant
// time and does not stop at the first match, so timing reveals nothing about the tokens.
func (ts tokenSet) lookup(tok string) (Principal, bool) {
	d := sha256.Sum256([]byte(tok))
	var found Principal
	ok := 0
	for _, e := range ts {
		if subtle.ConstantTimeCompare(d[:], e.digest[:]) == 1 {
			found, ok = e.principal, 1
		}
	}
	return found, ok == 1
}

// HashToken returns the hex SHA-256 digest of a token, for logs that must name a token without
// revealing it.
func HashToken(token string) string {
	d := sha256.Sum256([]byte(token))
	return hex.EncodeToString(d[:])
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// authenticate finds the principal of r: a configured token, else the Authenticator.
func (h *handler) authenticate(r *http.Request) (Principal, error) {
	if tok, ok := bearer(r); ok {
		if p, ok := h.tokens.lookup(tok); ok {
			return p, nil
		}
	}
	if h.opts.Authenticator != nil {
		p, err := h.opts.Authenticator(r)
		if err != nil {
			if errors.Is(err, middleware.ErrForbidden) {
				return Principal{}, err
			}
			return Principal{}, fmt.Errorf("%w: %v", middleware.ErrInvalidAPIKey, err)
		}
		if p.Role != RoleAdmin && p.Role != RoleViewer && (p.Role != RoleTenant || p.Tenant == "") {
			return Principal{}, fmt.Errorf("%w: the authenticator returned a principal without a valid role", middleware.ErrInvalidAPIKey)
		}
		return p, nil
	}
	return Principal{}, middleware.ErrInvalidAPIKey
}

// access is what a route requires of its caller.
type access int

const (
	// readAll: admin and viewer.
	readAll access = iota
	// readTenant: admin, viewer, and the tenant named by the route's {tenant} (or the invoice's
	// tenant, checked by the handler).
	readTenant
	// write: admin only.
	write
)

// errHidden answers a tenant principal asking about another tenant: 404, as for a tenant that
// does not exist.
var errHidden = fmt.Errorf("%w: no such tenant or record", errNotFound)

// authorize checks that p may call a route with access a about tenant (empty when the route
// names none).
func authorize(p Principal, a access, tenant string) error {
	if p.Role == RoleTenant && tenant != "" && tenant != p.Tenant {
		return errHidden // another tenant: never say whether it exists
	}
	switch {
	case p.Role == RoleAdmin:
		return nil
	case a == write:
		return fmt.Errorf("%w: %s may only read; changes need an admin token", middleware.ErrForbidden, p.Name)
	case p.Role == RoleViewer:
		return nil
	case a == readTenant: // routes without {tenant} (an invoice) check the record's tenant
		return nil
	}
	return fmt.Errorf("%w: a tenant token reads only its tenant's summary, usage and invoices", middleware.ErrForbidden)
}
