package storetest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/meterplane/billing"
)

// gen makes random, valid events from a seeded source, with times concentrated where buckets
// change (daylight-saving changes, month and day starts), down to the nanosecond around them.
type gen struct {
	rng       *rand.Rand
	prefix    string         // of generated IDs
	tenants   []string       // drawn uniformly
	resources []string       // drawn uniformly
	spans     []billing.Span // times are drawn in these spans...
	hot       []time.Time    // ...or near these instants
	n         int
}

func newGen(s uint64, prefix string, spans []billing.Span, hot []time.Time) *gen {
	return &gen{
		rng:       rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15)),
		prefix:    prefix,
		tenants:   []string{"acme", "globex", "initech", "ténant ü"},
		resources: []string{"requests", "tokens.input", "tokens.output"},
		spans:     spans,
		hot:       hot,
	}
}

// Attribute values include JSON's special characters, non-ASCII text, commas and the empty
// string, to catch stores and groupings that spell groups carelessly.
var (
	models  = []string{"gpt-4o", "gpt-4o-mini", `say "hi"`, `back\slash`, "ünïcode", "a,b", "a", ",b"}
	regions = []string{"eu", "us", ""}
	tiers   = []string{"free", "pro"}
)

func (g *gen) pick(list []string) string { return list[g.rng.IntN(len(list))] }

func (g *gen) time() time.Time {
	switch r := g.rng.IntN(100); {
	case r < 10 && len(g.hot) > 0:
		h := g.hot[g.rng.IntN(len(g.hot))]
		return h.Add(time.Duration(g.rng.IntN(3) - 1)) // a nanosecond before, at, or after
	case r < 45 && len(g.hot) > 0:
		h := g.hot[g.rng.IntN(len(g.hot))]
		return h.Add(time.Duration(g.rng.Int64N(int64(6*time.Hour))) - 3*time.Hour)
	default:
		s := g.spans[g.rng.IntN(len(g.spans))]
		return s.Start.Add(time.Duration(g.rng.Int64N(int64(s.End.Sub(s.Start)))))
	}
}

func (g *gen) attrs() map[string]string {
	m := map[string]string{}
	if g.rng.IntN(10) < 8 {
		m["model"] = g.pick(models)
	}
	if g.rng.IntN(10) < 6 {
		m["region"] = g.pick(regions)
	}
	if g.rng.IntN(10) < 3 {
		m["tier"] = g.pick(tiers)
	}
	if len(m) == 0 && g.rng.IntN(2) == 0 {
		return nil
	}
	return m
}

// event returns a new event with a new ID.
func (g *gen) event() billing.Event {
	g.n++
	q := 1 + g.rng.Int64N(1000)
	if g.rng.IntN(50) == 0 {
		q = 1 + g.rng.Int64N(1e12)
	}
	return billing.Event{
		ID:       fmt.Sprintf("%s-%05d", g.prefix, g.n),
		Tenant:   g.pick(g.tenants),
		Resource: g.pick(g.resources),
		Quantity: q,
		Time:     g.time(),
		Attrs:    g.attrs(),
	}
}

// variant returns e with different content (and so a conflict when tracked after e).
func (g *gen) variant(e billing.Event) billing.Event {
	switch g.rng.IntN(3) {
	case 0:
		e.Quantity++
	case 1:
		e.Resource = e.Resource + ".other"
	default:
		attrs := make(map[string]string, len(e.Attrs)+1)
		for k, v := range e.Attrs {
			attrs[k] = v
		}
		attrs["model"] = attrs["model"] + "-changed"
		e.Attrs = attrs
	}
	return e
}

// retry returns e as a retry sends it: the same content in a fresh map, maybe at another time
// (a retry whose Time was left to the Meter's clock).
func (g *gen) retry(e billing.Event) billing.Event {
	if e.Attrs != nil {
		attrs := make(map[string]string, len(e.Attrs))
		for k, v := range e.Attrs {
			attrs[k] = v
		}
		e.Attrs = attrs
	}
	if g.rng.IntN(2) == 0 {
		e.Time = g.time()
	}
	return e
}
