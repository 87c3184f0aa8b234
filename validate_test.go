package billing_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/meterplane/billing"
)

// validEvent is an event every rule accepts at fixedNow.
func validEvent() billing.Event {
	return billing.Event{
		Tenant:   "acme",
		Resource: "tokens.output",
		Quantity: 10,
		Time:     fixedNow.Add(-time.Hour),
		Attrs:    map[string]string{"model": "gpt-4o"},
	}
}

func manyAttrs(n int) map[string]string {
	attrs := make(map[string]string, n)
	for i := 0; i < n; i++ {
		attrs[fmt.Sprintf("k%02d", i)] = "v"
	}
	return attrs
}

// seed records some usage of two tenants, so that the tests can see it left unharmed.
func seed(t *testing.T, m *billing.Meter) {
	t.Helper()
	err := m.Track(context.Background(),
		billing.Event{ID: "seed-1", Tenant: "acme", Resource: "tokens.output", Quantity: 100, Time: fixedNow.Add(-2 * time.Hour),
			Attrs: map[string]string{"model": "gpt-4o"}},
		billing.Event{ID: "seed-2", Tenant: "acme", Resource: "requests", Quantity: 1, Time: fixedNow.Add(-3 * time.Hour)},
		billing.Event{ID: "seed-3", Tenant: "globex", Resource: "tokens.output", Quantity: 7, Time: fixedNow.Add(-24 * time.Hour)},
	)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
}

// invalidEvents lists every rule of Event validation with an event breaking it: the field the
// error must name and words its rule must say.
var invalidEvents = []struct {
	name   string
	edit   func(e *billing.Event)
	field  string
	rule   []string
	byTime bool // a rule Track checks against the clock; Event.Validate does not
}{
	{"tenant empty", func(e *billing.Event) { e.Tenant = "" }, "tenant", []string{"required"}, false},
	{"tenant too long", func(e *billing.Event) { e.Tenant = strings.Repeat("t", 129) }, "tenant", []string{"at most 128 bytes", "got 129"}, false},
	{"tenant NUL", func(e *billing.Event) { e.Tenant = "ac\x00me" }, "tenant", []string{"control characters", "0x00"}, false},
	{"tenant newline", func(e *billing.Event) { e.Tenant = "acme\n" }, "tenant", []string{"control characters", "0x0a"}, false},
	{"tenant DEL", func(e *billing.Event) { e.Tenant = "ac\x7fme" }, "tenant", []string{"control characters", "0x7f"}, false},
	{"tenant C1 NEL", func(e *billing.Event) { e.Tenant = "ac\u0085me" }, "tenant", []string{"control characters"}, false},
	{"tenant invalid UTF-8", func(e *billing.Event) { e.Tenant = "ac\xffme" }, "tenant", []string{"valid UTF-8"}, false},
	{"tenant truncated UTF-8", func(e *billing.Event) { e.Tenant = "caf\xc3" }, "tenant", []string{"valid UTF-8"}, false},
	{"tenant UTF-8 surrogate", func(e *billing.Event) { e.Tenant = "a\xed\xa0\x80" }, "tenant", []string{"valid UTF-8"}, false},
	{"id too long", func(e *billing.Event) { e.ID = strings.Repeat("i", 129) }, "id", []string{"at most 128 bytes", "got 129"}, false},
	{"id NUL", func(e *billing.Event) { e.ID = "id\x00" }, "id", []string{"control characters"}, false},
	{"id newline", func(e *billing.Event) { e.ID = "id\n1" }, "id", []string{"control characters"}, false},
	{"id tab", func(e *billing.Event) { e.ID = "id\t1" }, "id", []string{"control characters"}, false},
	{"id DEL", func(e *billing.Event) { e.ID = "\x7f" }, "id", []string{"control characters"}, false},
	{"id C1 NEL", func(e *billing.Event) { e.ID = "id\u0085" }, "id", []string{"control characters"}, false},
	{"id C1 last", func(e *billing.Event) { e.ID = "id\u009f" }, "id", []string{"control characters"}, false},
	{"id invalid UTF-8", func(e *billing.Event) { e.ID = "\x80id" }, "id", []string{"valid UTF-8"}, false},
	{"resource empty", func(e *billing.Event) { e.Resource = "" }, "resource", []string{"required"}, false},
	{"resource space", func(e *billing.Event) { e.Resource = "tokens output" }, "resource", []string{"ASCII letters, digits", "' '"}, false},
	{"resource non-ASCII", func(e *billing.Event) { e.Resource = "café" }, "resource", []string{"ASCII letters, digits", "0xc3"}, false},
	{"resource control", func(e *billing.Event) { e.Resource = "tokens\x00" }, "resource", []string{"ASCII letters, digits"}, false},
	{"resource too long", func(e *billing.Event) { e.Resource = strings.Repeat("r", 129) }, "resource", []string{"at most 128 bytes", "got 129"}, false},
	{"quantity zero", func(e *billing.Event) { e.Quantity = 0 }, "quantity", []string{"must be > 0", "got 0"}, false},
	{"quantity negative", func(e *billing.Event) { e.Quantity = -5 }, "quantity", []string{"must be > 0", "got -5"}, false},
	{"quantity MinInt64", func(e *billing.Event) { e.Quantity = math.MinInt64 }, "quantity", []string{"must be > 0"}, false},
	{"quantity above max", func(e *billing.Event) { e.Quantity = billing.MaxQuantity + 1 }, "quantity", []string{"at most 1000000000000000"}, false},
	{"quantity MaxInt64", func(e *billing.Event) { e.Quantity = math.MaxInt64 }, "quantity", []string{"at most 1000000000000000"}, false},
	{"17 attrs", func(e *billing.Event) { e.Attrs = manyAttrs(17) }, "attrs", []string{"at most 16 entries", "got 17"}, false},
	{"attr key empty", func(e *billing.Event) { e.Attrs = map[string]string{"": "x"} }, "attrs", []string{"must not be empty"}, false},
	{"attr key space", func(e *billing.Event) { e.Attrs = map[string]string{"mo del": "x"} }, "attrs", []string{`key "mo del"`, "ASCII letters, digits", "' '"}, false},
	{"attr key non-ASCII", func(e *billing.Event) { e.Attrs = map[string]string{"modèle": "x"} }, "attrs", []string{"ASCII letters, digits"}, false},
	{"attr key quote", func(e *billing.Event) { e.Attrs = map[string]string{`a"b`: "x"} }, "attrs", []string{"ASCII letters, digits"}, false},
	{"attr key too long", func(e *billing.Event) { e.Attrs = map[string]string{strings.Repeat("k", 65): "x"} }, "attrs", []string{"at most 64 bytes", "got 65"}, false},
	{"attr value too long", func(e *billing.Event) { e.Attrs = map[string]string{"model": strings.Repeat("v", 257)} }, "attrs[model]", []string{"at most 256 bytes", "got 257"}, false},
	{"attr value NUL", func(e *billing.Event) { e.Attrs = map[string]string{"model": "gpt\x00"} }, "attrs[model]", []string{"control characters"}, false},
	{"attr value newline", func(e *billing.Event) { e.Attrs = map[string]string{"model": "gpt\n4"} }, "attrs[model]", []string{"control characters"}, false},
	{"attr value DEL", func(e *billing.Event) { e.Attrs = map[string]string{"model": "\x7f"} }, "attrs[model]", []string{"control characters"}, false},
	{"attr value C1 NEL", func(e *billing.Event) { e.Attrs = map[string]string{"model": "gpt\u0085"} }, "attrs[model]", []string{"control characters"}, false},
	{"attr value invalid UTF-8", func(e *billing.Event) { e.Attrs = map[string]string{"model": "gpt\xfe"} }, "attrs[model]", []string{"valid UTF-8"}, false},
	{"time older than LateWindow", func(e *billing.Event) { e.Time = fixedNow.Add(-billing.DefaultLateWindow - time.Nanosecond) },
		"time", []string{"at most 840h0m0s old", "Config.LateWindow"}, true},
	{"time years old", func(e *billing.Event) { e.Time = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC) },
		"time", []string{"Config.LateWindow", "2001-01-01T00:00:00Z"}, true},
	{"time beyond MaxFuture", func(e *billing.Event) { e.Time = fixedNow.Add(billing.DefaultMaxFuture + time.Nanosecond) },
		"time", []string{"at most 5m0s in the future", "Config.MaxFuture"}, true},
	{"time next year", func(e *billing.Event) { e.Time = fixedNow.AddDate(1, 0, 0) },
		"time", []string{"Config.MaxFuture"}, true},
}

func TestTrackRejectsInvalidEvents(t *testing.T) {
	ctx := context.Background()
	for _, tc := range invalidEvents {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			m := newMeter(t, billing.Config{Store: st})
			seed(t, m)
			before := totals(t, m)
			if len(before) == 0 {
				t.Fatal("seeded store reports no usage")
			}

			bad := validEvent()
			bad.ID = "seed-1" // even an id already stored must not be touched by a rejected call
			tc.edit(&bad)

			// Alone.
			err := m.Track(ctx, bad)
			requireFieldError(t, err, billing.ErrInvalidEvent, tc.field, tc.rule...)

			// Exported Validate checks the same rules, except the clock-dependent time.
			verr := bad.Validate()
			if tc.byTime {
				if verr != nil {
					t.Errorf("Validate() = %v, want nil: the time window is checked by Track", verr)
				}
			} else {
				requireFieldError(t, verr, billing.ErrInvalidEvent, tc.field, tc.rule...)
			}

			// Between valid events of new ids: the whole call is refused, and the field path
			// says which event.
			ok1, ok2 := validEvent(), validEvent()
			ok1.ID, ok2.ID = "fresh-1", "fresh-2"
			ok2.Tenant = "initech"
			err = m.Track(ctx, ok1, bad, ok2)
			requireFieldError(t, err, billing.ErrInvalidEvent, "events[1]."+tc.field, tc.rule...)

			// Last of several, in async mode: refused before anything is queued.
			am := newMeter(t, billing.Config{Store: st, Async: true})
			err = am.Track(ctx, ok1, ok2, bad)
			requireFieldError(t, err, billing.ErrInvalidEvent, "events[2]."+tc.field, tc.rule...)
			if err := am.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			if d := cmp.Diff(before, totals(t, m)); d != "" {
				t.Errorf("a rejected Track changed the stored usage (-before +after):\n%s", d)
			}
		})
	}
}

func TestTrackAcceptsBoundaryValues(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		edit func(e *billing.Event)
	}{
		{"tenant 128 bytes", func(e *billing.Event) { e.Tenant = strings.Repeat("t", 128) }},
		{"tenant 128 bytes multibyte", func(e *billing.Event) { e.Tenant = strings.Repeat("租", 42) + "ab" }},
		{"tenant free text", func(e *billing.Event) { e.Tenant = `Ünïcode Corp "quoted" \ {json}` }},
		{"id 128 bytes", func(e *billing.Event) { e.ID = strings.Repeat("i", 128) }},
		{"id text after C1", func(e *billing.Event) { e.ID = "id\u00a0nbsp" }},
		{"resource 128 bytes", func(e *billing.Event) { e.Resource = strings.Repeat("r", 128) }},
		{"resource every allowed char", func(e *billing.Event) { e.Resource = "AZaz09._-:/" }},
		{"quantity 1", func(e *billing.Event) { e.Quantity = 1 }},
		{"quantity MaxQuantity", func(e *billing.Event) { e.Quantity = billing.MaxQuantity }},
		{"16 attrs", func(e *billing.Event) { e.Attrs = manyAttrs(16) }},
		{"no attrs", func(e *billing.Event) { e.Attrs = nil }},
		{"attr key 64 bytes", func(e *billing.Event) { e.Attrs = map[string]string{strings.Repeat("k", 64): "v"} }},
		{"attr value 256 bytes", func(e *billing.Event) { e.Attrs = map[string]string{"model": strings.Repeat("v", 256)} }},
		{"attr value empty", func(e *billing.Event) { e.Attrs = map[string]string{"model": ""} }},
		{"attr value JSON specials", func(e *billing.Event) { e.Attrs = map[string]string{"model": `"a\b" <&> é 😀 ` + "\u2028"} }},
		{"time exactly LateWindow old", func(e *billing.Event) { e.Time = fixedNow.Add(-billing.DefaultLateWindow) }},
		{"time exactly MaxFuture ahead", func(e *billing.Event) { e.Time = fixedNow.Add(billing.DefaultMaxFuture) }},
		{"time zero means now", func(e *billing.Event) { e.Time = time.Time{} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newMeter(t, billing.Config{})
			e := validEvent()
			tc.edit(&e)
			if err := e.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if err := m.Track(ctx, e); err != nil {
				t.Fatalf("Track() = %v, want nil", err)
			}
			rows, err := m.Usage(ctx, billing.UsageQuery{Tenant: e.Tenant, Window: billing.PeriodHour})
			if err != nil {
				t.Fatal(err)
			}
			when := e.Time
			if when.IsZero() {
				when = fixedNow
			}
			hour := when.Truncate(time.Hour)
			want := []billing.UsageRow{{Tenant: e.Tenant, Resource: e.Resource, Start: hour, End: hour.Add(time.Hour),
				Sum: e.Quantity, Count: 1, Max: e.Quantity}}
			if d := cmp.Diff(want, rows); d != "" {
				t.Errorf("usage (-want +got):\n%s", d)
			}
			// The attributes are stored exactly: grouping by every key gives them back.
			if len(e.Attrs) > 0 {
				keys := make([]string, 0, len(e.Attrs))
				for k := range e.Attrs {
					keys = append(keys, k)
				}
				rows, err := m.Usage(ctx, billing.UsageQuery{Tenant: e.Tenant, GroupBy: keys})
				if err != nil {
					t.Fatal(err)
				}
				if len(rows) != 1 || !cmp.Equal(rows[0].Group, e.Attrs) {
					t.Errorf("grouped usage = %+v, want one row with group %v", rows, e.Attrs)
				}
			}
		})
	}
}

// The time window follows Config.LateWindow and Config.MaxFuture, not only their defaults.
func TestTrackTimeWindowFollowsConfig(t *testing.T) {
	ctx := context.Background()
	m := newMeter(t, billing.Config{LateWindow: time.Hour, MaxFuture: time.Second})
	for _, tc := range []struct {
		at   time.Time
		rule string // "" when accepted
	}{
		{fixedNow.Add(-time.Hour), ""},
		{fixedNow.Add(-time.Hour - time.Nanosecond), "at most 1h0m0s old"},
		{fixedNow.Add(-2 * time.Hour), "at most 1h0m0s old"},
		{fixedNow.Add(time.Second), ""},
		{fixedNow.Add(time.Second + time.Nanosecond), "at most 1s in the future"},
		{fixedNow.In(time.FixedZone("X", -11*3600)).Add(-30 * time.Minute), ""}, // zones do not matter
	} {
		e := validEvent()
		e.Time = tc.at
		err := m.Track(ctx, e)
		if tc.rule == "" {
			if err != nil {
				t.Errorf("Track at %v: %v, want nil", tc.at, err)
			}
			continue
		}
		requireFieldError(t, err, billing.ErrInvalidEvent, "time", tc.rule)
	}
	if sum, n := sumOf(t, m, "acme", "tokens.output"); n != 3 || sum != 30 {
		t.Errorf("recorded sum %d of %d events, want 30 of 3", sum, n)
	}
}

// Validation never changes the caller's events: an empty ID or Time is filled in Track's copy.
func TestTrackDoesNotModifyCallerEvents(t *testing.T) {
	m := newMeter(t, billing.Config{})
	events := []billing.Event{validEvent(), validEvent()}
	events[0].Time = time.Time{}
	orig := []billing.Event{events[0], events[1]}
	if err := m.Track(context.Background(), events...); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(orig, events); d != "" {
		t.Errorf("Track modified its argument (-before +after):\n%s", d)
	}
	if _, n := sumOf(t, m, "acme", "tokens.output"); n != 2 {
		t.Errorf("recorded %d events, want 2 (each empty ID gets its own generated one)", n)
	}
}

// FuzzEventValidate checks Validate against an independent statement of the rules, that it never
// panics, and that accepted attributes survive the canonical encoding exactly.
func FuzzEventValidate(f *testing.F) {
	f.Add("", "acme", "tokens.output", int64(10), "model", "gpt-4o", "region", "eu", uint8(0))
	f.Add("id-1", "ac\x00me", "requests", int64(1), "", "", "", "", uint8(0))
	f.Add("x", "t", "a b", int64(-1), "k", "v\u0085", "k", "w", uint8(3))
	f.Add(strings.Repeat("i", 128), "t", "r", int64(billing.MaxQuantity), "a\"b", `"\`, "k2", "\xff", uint8(16))
	f.Add("id", "tenant", "r", int64(5), "model", `he said "hi" \o/ <b>&amp;</b>`, "u", "\u2028\u2029😀", uint8(14))
	f.Fuzz(func(t *testing.T, id, tenant, resource string, qty int64, k1, v1, k2, v2 string, extra uint8) {
		attrs := map[string]string{}
		for i := 0; i < int(extra%20); i++ {
			attrs[fmt.Sprintf("x%d", i)] = v2
		}
		attrs[k1] = v1
		attrs[k2] = v2
		e := billing.Event{ID: id, Tenant: tenant, Resource: resource, Quantity: qty, Attrs: attrs}

		err := e.Validate()

		want := oracleValid(e)
		if (err == nil) != want {
			t.Fatalf("Validate(%#v) = %v, but the rules say valid=%v", e, err, want)
		}
		if err != nil {
			var fe *billing.FieldError
			if !errors.Is(err, billing.ErrInvalidEvent) || !errors.As(err, &fe) {
				t.Fatalf("Validate error %v is not a *FieldError matching ErrInvalidEvent", err)
			}
			if !strings.HasPrefix(fe.Field, "id") && !strings.HasPrefix(fe.Field, "tenant") &&
				!strings.HasPrefix(fe.Field, "resource") && !strings.HasPrefix(fe.Field, "quantity") &&
				!strings.HasPrefix(fe.Field, "attrs") {
				t.Fatalf("Field %q names no Event field", fe.Field)
			}
			if fe.Rule == "" || !utf8.ValidString(err.Error()) {
				t.Fatalf("error message %q is empty or not UTF-8", err.Error())
			}
			return
		}

		enc := billing.EncodeAttrs(attrs)
		if !json.Valid([]byte(enc)) {
			t.Fatalf("EncodeAttrs(%q) = %q is not valid JSON", attrs, enc)
		}
		dec, derr := billing.DecodeAttrs(enc)
		if derr != nil {
			t.Fatalf("DecodeAttrs(%q): %v", enc, derr)
		}
		if !cmp.Equal(attrs, dec, cmpopts.EquateEmpty()) {
			t.Fatalf("attrs %q encode to %q and decode to %q", attrs, enc, dec)
		}
		if again := billing.EncodeAttrs(dec); again != enc {
			t.Fatalf("re-encoding gives %q, want %q", again, enc)
		}
	})
}

// oracleValid states the Event rules (except Time) independently of the implementation.
func oracleValid(e billing.Event) bool {
	text := func(s string) bool {
		if !utf8.ValidString(s) {
			return false
		}
		for _, r := range s {
			if unicode.IsControl(r) { // Cc: C0, DEL and C1
				return false
			}
		}
		return true
	}
	name := func(s string, max int) bool {
		if s == "" || len(s) > max {
			return false
		}
		for _, r := range s {
			if !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._-:/", r))) {
				return false
			}
		}
		return true
	}
	if len(e.ID) > 128 || !text(e.ID) {
		return false
	}
	if e.Tenant == "" || len(e.Tenant) > 128 || !text(e.Tenant) {
		return false
	}
	if !name(e.Resource, 128) {
		return false
	}
	if e.Quantity < 1 || e.Quantity > 1_000_000_000_000_000 {
		return false
	}
	if len(e.Attrs) > 16 {
		return false
	}
	for k, v := range e.Attrs {
		if !name(k, 64) || len(v) > 256 || !text(v) {
			return false
		}
	}
	return true
}
