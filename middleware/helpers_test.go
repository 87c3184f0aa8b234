package middleware

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// newMeter returns a Meter on a real SQLite file in a temporary directory, closed at cleanup.
func newMeter(t testing.TB, cfg billing.Config) *billing.Meter {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "billing.db"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = st
	m, err := billing.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		st.Close()
	})
	return m
}

// usage returns tenant's all-time usage of resource, by model when byModel is set.
func usage(t testing.TB, m *billing.Meter, tenant, resource string) map[string]int64 {
	t.Helper()
	rows, err := m.Usage(context.Background(), billing.UsageQuery{Tenant: tenant, Resource: resource,
		GroupBy: []string{"model"}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, r := range rows {
		out[r.Group["model"]] += r.Sum
	}
	return out
}

// total returns tenant's all-time usage of resource.
func total(t testing.TB, m *billing.Meter, tenant, resource string) int64 {
	t.Helper()
	var n int64
	for _, v := range usage(t, m, tenant, resource) {
		n += v
	}
	return n
}

func setQuota(t testing.TB, m *billing.Meter, tenant, resource string, limit int64, hard bool) {
	t.Helper()
	if err := m.SetQuota(context.Background(), billing.QuotaRule{Tenant: tenant, Resource: resource,
		Period: billing.PeriodDay, Limit: limit, Hard: hard, NotifyAt: []int{}}); err != nil {
		t.Fatal(err)
	}
}

// reserved returns the units held for tenant's resource.
func reserved(t testing.TB, m *billing.Meter, tenant, resource string) int64 {
	t.Helper()
	states, err := m.QuotaStatus(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if s.Rule.Resource == resource {
			return s.Reserved
		}
	}
	return 0
}

// decodeProblem checks that a response is a problem of type typ and status, and returns it.
func decodeProblem(t testing.TB, status int, h http.Header, body []byte, wantStatus int, wantType string) Problem {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status = %d, want %d; body %s", status, wantStatus, body)
	}
	if ct := h.Get("Content-Type"); ct != ProblemContentType {
		t.Errorf("Content-Type = %q, want %q", ct, ProblemContentType)
	}
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	if p.Type != wantType || p.Status != wantStatus || p.Title == "" || p.Detail == "" {
		t.Errorf("problem = %+v, want type %s, status %d, a title and a detail", p, wantType, wantStatus)
	}
	if p.Error == nil || p.Error.Message != p.Detail {
		t.Errorf("problem's OpenAI-style error member = %+v, want the detail as its message", p.Error)
	}
	return p
}

// serve runs one request through h with a recorder.
func serve(h http.Handler, method, target, body string, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// okHandler answers 200 "ok".
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })

// pendingOpts returns Options with a Pending group the test waits on.
func pendingOpts(o Options) (Options, *sync.WaitGroup) {
	wg := &sync.WaitGroup{}
	o.Pending = wg
	return o, wg
}
