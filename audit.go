package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// AuditEntry is one record of the audit log: who changed what, when, and the state before and
// after. Admin tools write one per mutating call (see Meter.Audit). A plain value; safe to copy.
type AuditEntry struct {
	// ID is assigned by the store when the entry is appended: increasing, so newer entries have
	// larger IDs. Zero before that.
	ID int64 `json:"id"`
	// At is when the change happened; Meter.Audit sets it to the Meter's Now when zero.
	At time.Time `json:"at"`
	// Principal is who made the change, such as "admin" or "alice@example.com". Required.
	Principal string `json:"principal"`
	// Action names the change, such as "quota.put" or "invoice.finalize". Required.
	Action string `json:"action"`
	// Tenant is the tenant the change concerns; empty for changes of shared records (plans).
	Tenant string `json:"tenant,omitempty"`
	// Target names the record changed, such as "quota/requests/day" or "invoice/inv_123".
	Target string `json:"target,omitempty"`
	// Before and After are the record as JSON before and after the change; null when it did not
	// exist (before a creation, after a deletion) or has no state (a rate-limit reset).
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// AuditQuery selects audit entries, newest first. The zero value selects the newest 100.
type AuditQuery struct {
	Tenant string // empty: every tenant (and entries of no tenant)
	// Before is a cursor: only entries with ID < Before; 0 means from the newest.
	Before int64
	Limit  int // 0: 100
}

// AuditStore is the audit part of a Store: an append-only log of changes made by people and
// tools. Implementations must be safe for concurrent use.
type AuditStore interface {
	// AppendAudit stores e (its ID is ignored) and returns the ID it was given: larger than the
	// ID of every entry appended before.
	AppendAudit(ctx context.Context, e AuditEntry) (int64, error)
	// ListAudit returns the entries matching q, newest (largest ID) first.
	ListAudit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
}

// Audit appends e to the audit log, setting e.At to the Meter's Now when it is zero, and returns
// e with its ID. Principal and Action are required (errors match ErrInvalidQuery); Before and
// After must be valid JSON when set. Safe for concurrent use.
func (m *Meter) Audit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	if e.Principal == "" {
		return e, fieldErr(ErrInvalidQuery, "audit.principal", "must not be empty")
	}
	if e.Action == "" {
		return e, fieldErr(ErrInvalidQuery, "audit.action", "must not be empty")
	}
	for name, raw := range map[string]json.RawMessage{"audit.before": e.Before, "audit.after": e.After} {
		if len(raw) > 0 && !json.Valid(raw) {
			return e, fieldErr(ErrInvalidQuery, name, "must be valid JSON")
		}
	}
	if e.At.IsZero() {
		e.At = m.cfg.Now()
	}
	id, err := m.cfg.Store.AppendAudit(ctx, e)
	if err != nil {
		return e, fmt.Errorf("billing: append audit entry: %w", err)
	}
	e.ID = id
	return e, nil
}

// AuditLog returns the audit entries matching q, newest first. To page, pass the ID of the last
// entry of a page as the next query's Before. Safe for concurrent use.
func (m *Meter) AuditLog(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	if q.Limit < 0 {
		return nil, fieldErr(ErrInvalidQuery, "limit", "must be >= 0 (got %d)", q.Limit)
	}
	if q.Before < 0 {
		return nil, fieldErr(ErrInvalidQuery, "before", "must be >= 0 (got %d)", q.Before)
	}
	return m.cfg.Store.ListAudit(ctx, q)
}
