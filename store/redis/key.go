package redis

import (
	"strings"

	"github.com/meterplane/billing"
)

// counterKey returns the Redis key of k's counter: prefix{tenant}:resource. The tenant is the
// key's hash tag, so every counter of a tenant hashes to the same Redis Cluster slot. Both parts
// are escaped ('%', '{' and '}' as %25, %7B and %7D), so a brace inside a tenant id cannot end or
// move the tag, and two different keys never share a counter.
func counterKey(prefix string, k billing.RateKey) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(k.Tenant) + len(k.Resource) + 3)
	b.WriteString(prefix)
	b.WriteByte('{')
	writeEscaped(&b, k.Tenant)
	b.WriteString("}:")
	writeEscaped(&b, k.Resource)
	return b.String()
}

func writeEscaped(b *strings.Builder, s string) {
	if !strings.ContainsAny(s, "%{}") {
		b.WriteString(s)
		return
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '%':
			b.WriteString("%25")
		case '{':
			b.WriteString("%7B")
		case '}':
			b.WriteString("%7D")
		default:
			b.WriteByte(s[i])
		}
	}
}
