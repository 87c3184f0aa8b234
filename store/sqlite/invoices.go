package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/meterplane/billing"
)

// PutDrafts implements billing.InvoiceStore in one transaction.
func (s *Store) PutDrafts(ctx context.Context, invs []*billing.Invoice) ([]error, error) {
	errs := make([]error, len(invs))
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return nil, translate("begin drafts", err)
	}
	defer tx.Rollback()
	for i, inv := range invs {
		var cur struct {
			ID     string `db:"id"`
			Status string `db:"status"`
		}
		err := tx.GetContext(ctx, &cur, `SELECT id, status FROM invoices
			WHERE tenant = ? AND span_start = ? AND span_end = ? AND status <> 'void'`,
			inv.Tenant, inv.Start.UnixNano(), inv.End.UnixNano())
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if inv.ID != "" {
				// The ID of another invoice (another tenant's or span's, or a void one) is not
				// taken over: the draft would overwrite that invoice.
				var taken int
				if err := tx.GetContext(ctx, &taken, `SELECT count(*) FROM invoices WHERE id = ?`, inv.ID); err != nil {
					return nil, translate("read draft", err)
				}
				if taken > 0 {
					inv.ID = ""
				}
			}
			if inv.ID == "" {
				inv.ID = "inv_" + strings.ReplaceAll(billing.NewEventID(), "-", "")
			}
		case err != nil:
			return nil, translate("read draft", err)
		case cur.Status != string(billing.InvoiceDraft):
			errs[i] = fmt.Errorf("%w: tenant %q already has %s invoice %s for %s", billing.ErrPeriodClosed,
				inv.Tenant, cur.Status, cur.ID, billing.Span{Start: inv.Start, End: inv.End})
			continue
		default:
			inv.ID = cur.ID
		}
		inv.Status = billing.InvoiceDraft
		body, err := json.Marshal(inv)
		if err != nil {
			return nil, fmt.Errorf("sqlite: encode invoice: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO invoices (id, tenant, span_start, span_end, status, body, updated)
			VALUES (?, ?, ?, ?, 'draft', ?, ?)
			ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated = excluded.updated`,
			inv.ID, inv.Tenant, inv.Start.UnixNano(), inv.End.UnixNano(), string(body), inv.Created.UnixNano()); err != nil {
			return nil, translate("write draft", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, translate("commit drafts", err)
	}
	return errs, nil
}

// GetInvoice implements billing.InvoiceStore.
func (s *Store) GetInvoice(ctx context.Context, id string) (*billing.Invoice, error) {
	return getInvoice(ctx, s.r, id)
}

type getter interface {
	GetContext(ctx context.Context, dest any, query string, args ...any) error
}

func getInvoice(ctx context.Context, db getter, id string) (*billing.Invoice, error) {
	var body string
	err := db.GetContext(ctx, &body, `SELECT body FROM invoices WHERE id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: invoice %q", billing.ErrNotFound, id)
	}
	if err != nil {
		return nil, translate("get invoice", err)
	}
	var inv billing.Invoice
	if err := json.Unmarshal([]byte(body), &inv); err != nil {
		return nil, fmt.Errorf("sqlite: stored invoice %q is not valid JSON: %w", id, err)
	}
	return &inv, nil
}

// ListInvoices implements billing.InvoiceStore.
func (s *Store) ListInvoices(ctx context.Context, q billing.InvoiceQuery) ([]*billing.Invoice, error) {
	var where []string
	var args []any
	if q.Tenant != "" {
		where, args = append(where, "tenant = ?"), append(args, q.Tenant)
	}
	if q.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(q.Status))
	}
	if !q.Start.IsZero() {
		where, args = append(where, "span_start = ?"), append(args, q.Start.UnixNano())
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var bodies []string
	if err := s.r.SelectContext(ctx, &bodies, `SELECT body FROM invoices`+cond+
		` ORDER BY span_start DESC, tenant, updated DESC LIMIT ?`, append(args, limitOr100(q.Limit))...); err != nil {
		return nil, translate("list invoices", err)
	}
	out := make([]*billing.Invoice, len(bodies))
	for i, b := range bodies {
		out[i] = new(billing.Invoice)
		if err := json.Unmarshal([]byte(b), out[i]); err != nil {
			return nil, fmt.Errorf("sqlite: stored invoice is not valid JSON: %w", err)
		}
	}
	return out, nil
}

// CloseSpan implements billing.InvoiceStore.
func (s *Store) CloseSpan(ctx context.Context, tenant string, span billing.Span) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO closed_spans (tenant, span_start, span_end) VALUES (?, ?, ?)
		ON CONFLICT DO NOTHING`, tenant, span.Start.UnixNano(), span.End.UnixNano())
	return translate("close span", err)
}

// FinalizeInvoice implements billing.InvoiceStore in one IMMEDIATE transaction.
func (s *Store) FinalizeInvoice(ctx context.Context, inv *billing.Invoice, sequence string, number func(int64) string) (*billing.Invoice, error) {
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return nil, translate("begin finalize", err)
	}
	defer tx.Rollback()
	cur, err := getInvoice(ctx, tx, inv.ID)
	if err != nil {
		return nil, err
	}
	if cur.Status != billing.InvoiceDraft {
		return cur, nil
	}
	var last int64
	switch err := tx.GetContext(ctx, &last, `SELECT last FROM invoice_sequences WHERE name = ?`, sequence); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, translate("read invoice sequence", err)
	}
	next := last + 1
	if _, err := tx.ExecContext(ctx, `INSERT INTO invoice_sequences (name, last) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET last = excluded.last`, sequence, next); err != nil {
		return nil, translate("advance invoice sequence", err)
	}
	out := *inv
	out.Number = number(next)
	out.Status = billing.InvoiceFinalized
	if err := writeInvoice(ctx, tx, &out); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, translate("commit finalize", err)
	}
	return &out, nil
}

func writeInvoice(ctx context.Context, tx *sqlx.Tx, inv *billing.Invoice) error {
	body, err := json.Marshal(inv)
	if err != nil {
		return fmt.Errorf("sqlite: encode invoice: %w", err)
	}
	var number any
	if inv.Number != "" {
		number = inv.Number
	}
	_, err = tx.ExecContext(ctx, `UPDATE invoices SET status = ?, number = ?, body = ?, updated = ? WHERE id = ?`,
		string(inv.Status), number, string(body), time.Now().UnixNano(), inv.ID)
	return translate("write invoice", err)
}

// SetInvoiceStatus implements billing.InvoiceStore.
func (s *Store) SetInvoiceStatus(ctx context.Context, id string, from, to billing.InvoiceStatus, at time.Time) (*billing.Invoice, error) {
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return nil, translate("begin invoice status", err)
	}
	defer tx.Rollback()
	inv, err := getInvoice(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if err := inv.Move(from, to, at); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := writeInvoice(ctx, tx, inv); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, translate("commit invoice status", err)
	}
	return inv, nil
}

// closedEvents finds the events just inserted (first occurrences in uniq, marked in inserted)
// whose time is in a span closed for their tenant, deletes them, and returns their keys. It reads
// the closed spans of the batch's tenants that end after the batch's earliest event: usually
// none, or one per tenant.
func closedEvents(ctx context.Context, tx *sqlx.Tx, events []billing.Event, uniq []int, inserted map[eventKey]bool) (map[eventKey]bool, error) {
	tenants := map[string]bool{}
	minTs := int64(1<<63 - 1)
	for _, i := range uniq {
		tenants[events[i].Tenant] = true
		minTs = min(minTs, events[i].Time.UnixNano())
	}
	type span struct{ start, end int64 }
	spans := map[string][]span{}
	list := make([]any, 0, len(tenants))
	for t := range tenants {
		list = append(list, t)
	}
	for lo := 0; lo < len(list); lo += chunkRows {
		part := list[lo:min(lo+chunkRows, len(list))]
		rows, err := tx.QueryContext(ctx, `SELECT tenant, span_start, span_end FROM closed_spans
			WHERE span_end > ? AND tenant IN (?`+strings.Repeat(",?", len(part)-1)+`)`,
			append([]any{minTs}, part...)...)
		if err != nil {
			return nil, translate("read closed spans", err)
		}
		for rows.Next() {
			var t string
			var sp span
			if err := rows.Scan(&t, &sp.start, &sp.end); err != nil {
				rows.Close()
				return nil, translate("read closed spans", err)
			}
			spans[t] = append(spans[t], sp)
		}
		if err := rows.Close(); err != nil {
			return nil, translate("read closed spans", err)
		}
	}
	if len(spans) == 0 {
		return nil, nil
	}
	closed := map[eventKey]bool{}
	for _, i := range uniq {
		e := &events[i]
		k := eventKey{e.Tenant, e.ID}
		if !inserted[k] {
			continue
		}
		ts := e.Time.UnixNano()
		for _, sp := range spans[e.Tenant] {
			if ts >= sp.start && ts < sp.end {
				if _, err := tx.ExecContext(ctx, `DELETE FROM events WHERE tenant = ? AND id = ?`, e.Tenant, e.ID); err != nil {
					return nil, translate("refuse event in closed span", err)
				}
				delete(inserted, k)
				closed[k] = true
				break
			}
		}
	}
	return closed, nil
}
