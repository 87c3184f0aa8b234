package billing_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/meterplane/billing"
)

func TestAuditLog(t *testing.T) {
	m := newMeter(t, billing.Config{})
	ctx := context.Background()
	e, err := m.Audit(ctx, billing.AuditEntry{Principal: "alice", Action: "quota.put", Tenant: "acme",
		Before: json.RawMessage(`{"limit":1}`), After: json.RawMessage(`{"limit":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	if e.ID == 0 || !e.At.Equal(fixedNow) {
		t.Errorf("Audit = %+v, want an id and At = the Meter's Now", e)
	}
	at := fixedNow.Add(-time.Hour)
	if _, err := m.Audit(ctx, billing.AuditEntry{Principal: "bob", Action: "plan.put", At: at}); err != nil {
		t.Fatal(err)
	}
	all, err := m.AuditLog(ctx, billing.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Principal != "bob" || !all[0].At.Equal(at) || string(all[1].After) != `{"limit":2}` {
		t.Errorf("AuditLog = %+v", all)
	}
	for _, bad := range []billing.AuditEntry{
		{Action: "x"}, {Principal: "p"}, {Principal: "p", Action: "x", After: json.RawMessage(`{`)},
	} {
		if _, err := m.Audit(ctx, bad); !errors.Is(err, billing.ErrInvalidQuery) {
			t.Errorf("Audit(%+v) = %v, want ErrInvalidQuery", bad, err)
		}
	}
	if _, err := m.AuditLog(ctx, billing.AuditQuery{Limit: -1}); !errors.Is(err, billing.ErrInvalidQuery) {
		t.Errorf("negative limit: %v", err)
	}
}

func TestTenantsPages(t *testing.T) {
	m := newMeter(t, billing.Config{})
	ctx := context.Background()
	for _, id := range []string{"c", "a", "b"} {
		if err := m.SetQuota(ctx, billing.QuotaRule{Tenant: id, Resource: "requests", Period: billing.PeriodDay, Limit: 1}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := m.Tenants(ctx, "", 2)
	if err != nil || len(first) != 2 || first[0].ID != "a" || first[1].ID != "b" {
		t.Fatalf("first page %+v, %v", first, err)
	}
	rest, err := m.Tenants(ctx, "b", 2)
	if err != nil || len(rest) != 1 || rest[0].ID != "c" {
		t.Fatalf("second page %+v, %v", rest, err)
	}
	if _, err := m.Tenants(ctx, "", -1); !errors.Is(err, billing.ErrInvalidQuery) {
		t.Errorf("negative limit: %v", err)
	}
}
