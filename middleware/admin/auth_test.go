package admin_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meterplane/billing/middleware"
	"github.com/meterplane/billing/middleware/admin"
)

func TestParsePrincipal(t *testing.T) {
	for spec, want := range map[string]admin.Principal{
		"admin":             {Name: "admin", Role: admin.RoleAdmin},
		"admin=alice":       {Name: "alice", Role: admin.RoleAdmin},
		"viewer":            {Name: "viewer", Role: admin.RoleViewer},
		"tenant:acme":       {Name: "tenant:acme", Role: admin.RoleTenant, Tenant: "acme"},
		"tenant:acme=robot": {Name: "robot", Role: admin.RoleTenant, Tenant: "acme"},
	} {
		got, err := admin.ParsePrincipal(spec)
		if err != nil || got != want {
			t.Errorf("ParsePrincipal(%q) = %+v, %v; want %+v", spec, got, err, want)
		}
	}
	for _, bad := range []string{"", "root", "tenant:", "admin=", "Admin"} {
		if _, err := admin.ParsePrincipal(bad); err == nil {
			t.Errorf("ParsePrincipal(%q) succeeded", bad)
		}
	}
}

func TestNewHandlerRefusesBadTokens(t *testing.T) {
	f := newFixture(t)
	if _, err := admin.NewHandler(f.m, admin.Options{Tokens: map[string]string{"short": "admin"}}); err == nil ||
		!strings.Contains(err.Error(), "16") {
		t.Errorf("short token: %v", err)
	}
	if _, err := admin.NewHandler(f.m, admin.Options{Tokens: map[string]string{tokAdmin: "superuser"}}); err == nil {
		t.Error("unknown principal accepted")
	}
}

// TestAuthenticator plugs in a host's own auth: a header names the principal.
func TestAuthenticator(t *testing.T) {
	f := newFixture(t)
	h := admin.Handler(f.m, admin.Options{Authenticator: func(r *http.Request) (admin.Principal, error) {
		switch r.Header.Get("X-User") {
		case "":
			return admin.Principal{}, errors.New("no session")
		case "mallory":
			return admin.Principal{}, middleware.ErrForbidden
		case "acme-user":
			return admin.Principal{Name: "acme-user", Role: admin.RoleTenant, Tenant: "acme"}, nil
		}
		return admin.Principal{Name: r.Header.Get("X-User"), Role: admin.RoleAdmin}, nil
	}})
	for _, c := range []struct {
		user, path string
		status     int
	}{
		{"", "/v1/tenants", 401}, {"mallory", "/v1/tenants", 403}, {"bob", "/v1/tenants", 200},
		{"acme-user", "/v1/tenants/acme/summary", 200}, {"acme-user", "/v1/tenants/globex/summary", 404},
	} {
		req := httptest.NewRequest("GET", c.path, nil)
		if c.user != "" {
			req.Header.Set("X-User", c.user)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.status {
			t.Errorf("%q %s = %d, want %d: %s", c.user, c.path, rec.Code, c.status, rec.Body)
		}
	}
}

func TestHashToken(t *testing.T) {
	if got := admin.HashToken("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashToken(abc) = %s", got)
	}
}
