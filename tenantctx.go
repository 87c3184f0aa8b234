package billing

import "context"

// tenantKey is the context key of the tenant; unexported, so no other package can collide with it.
type tenantKey struct{}

// WithTenant returns a copy of ctx that carries tenant, the id of the tenant a request acts for.
// The HTTP middleware (package middleware) puts the tenant it identified there, so handlers and
// the Chat wrapper below it read it back with TenantFrom. An empty tenant is stored as it is, and
// TenantFrom then reports none.
func WithTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenant)
}

// TenantFrom returns the tenant that WithTenant put in ctx, and whether there is one (a non-empty
// id). Safe for concurrent use, like every context value.
func TenantFrom(ctx context.Context) (string, bool) {
	t, _ := ctx.Value(tenantKey{}).(string)
	return t, t != ""
}
