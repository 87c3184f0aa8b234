package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meterplane/billing"
)

// PutDrafts implements billing.InvoiceStore in one transaction. The live invoice of each draft's
// tenant and span is locked (FOR UPDATE) while the draft replaces it, so a concurrent
// FinalizeInvoice either numbers the old draft first (and the new one is refused with
// ErrPeriodClosed) or waits for the new one. Two processes drafting one tenant and span at once
// both insert; the unique index on live invoices refuses the second, whose transaction then runs
// again and replaces the first's draft.
func (s *Store) PutDrafts(ctx context.Context, invs []*billing.Invoice) ([]error, error) {
	if len(invs) == 0 {
		return []error{}, nil
	}
	// A retried transaction starts again from the IDs the caller gave.
	given := make([]string, len(invs))
	for i, inv := range invs {
		if inv == nil {
			return nil, fmt.Errorf("postgres: put drafts: invs[%d] is nil; pass only invoices", i)
		}
		given[i] = inv.ID
	}
	// Rows are locked in one order (tenant, then span) by every PutDrafts, so that concurrent
	// batches wait for each other instead of deadlocking. Drafts of one tenant and span keep
	// their order in the batch: the last one is stored.
	order := make([]int, len(invs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		x, y := invs[a], invs[b]
		return cmp.Or(strings.Compare(x.Tenant, y.Tenant), x.Start.Compare(y.Start), x.End.Compare(y.End))
	})
	var errs []error
	err := s.recordsTx(ctx, "put drafts", true, func(tx pgx.Tx) error {
		errs = make([]error, len(invs))
		for _, i := range order {
			invs[i].ID = given[i]
			if err := putDraft(ctx, tx, invs[i], &errs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for i, inv := range invs {
			inv.ID = given[i]
		}
		return nil, err
	}
	return errs, nil
}

// putDraft stores one draft in tx; a draft refused because its period is closed sets *refused.
func putDraft(ctx context.Context, tx pgx.Tx, inv *billing.Invoice, refused *error) error {
	var curID, curStatus string
	err := tx.QueryRow(ctx, `SELECT id, status FROM invoices
		WHERE tenant = $1 AND span_start = $2 AND span_end = $3 AND status <> 'void' FOR UPDATE`,
		inv.Tenant, inv.Start, inv.End).Scan(&curID, &curStatus)
	replace := false
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if inv.ID != "" {
			// The ID of another invoice (another tenant's or span's, or a void one) is not
			// taken over: the draft would overwrite that invoice.
			var taken bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM invoices WHERE id = $1)`, inv.ID).Scan(&taken); err != nil {
				return translate("read draft", err)
			}
			if taken {
				inv.ID = ""
			}
		}
		if inv.ID == "" {
			inv.ID = "inv_" + strings.ReplaceAll(billing.NewEventID(), "-", "")
		}
	case err != nil:
		return translate("read draft", err)
	case curStatus != string(billing.InvoiceDraft):
		*refused = fmt.Errorf("%w: tenant %q already has %s invoice %s for %s", billing.ErrPeriodClosed,
			inv.Tenant, curStatus, curID, billing.Span{Start: inv.Start, End: inv.End})
		return nil
	default:
		inv.ID, replace = curID, true
	}
	inv.Status = billing.InvoiceDraft
	body, err := json.Marshal(inv)
	if err != nil {
		return fmt.Errorf("postgres: encode invoice: %w", err)
	}
	if replace {
		_, err = tx.Exec(ctx, `UPDATE invoices SET body = $2, updated = $3 WHERE id = $1`, inv.ID, string(body), inv.Created)
	} else {
		// A concurrent insert of the same ID or the same tenant and span fails this one with a
		// unique violation, and PutDrafts runs again.
		_, err = tx.Exec(ctx, `INSERT INTO invoices (id, tenant, span_start, span_end, status, body, updated)
			VALUES ($1, $2, $3, $4, 'draft', $5, $6)`, inv.ID, inv.Tenant, inv.Start, inv.End, string(body), inv.Created)
	}
	return translate("write draft", err)
}

// GetInvoice implements billing.InvoiceStore.
func (s *Store) GetInvoice(ctx context.Context, id string) (*billing.Invoice, error) {
	return getInvoice(ctx, s.pool, id, false)
}

// queryRower is what getInvoice reads through: the pool or a transaction.
type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// getInvoice reads invoice id; forUpdate locks its row for the transaction db.
func getInvoice(ctx context.Context, db queryRower, id string, forUpdate bool) (*billing.Invoice, error) {
	q := `SELECT body FROM invoices WHERE id = $1`
	if forUpdate {
		q += ` FOR UPDATE`
	}
	var body []byte
	err := db.QueryRow(ctx, q, id).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: invoice %q", billing.ErrNotFound, id)
	}
	if err != nil {
		return nil, translate("get invoice", err)
	}
	var inv billing.Invoice
	if err := json.Unmarshal(body, &inv); err != nil {
		return nil, fmt.Errorf("postgres: stored invoice %q is not valid JSON: %w", id, err)
	}
	return &inv, nil
}

// ListInvoices implements billing.InvoiceStore.
func (s *Store) ListInvoices(ctx context.Context, q billing.InvoiceQuery) ([]*billing.Invoice, error) {
	var where []string
	args := []any{recordsLimit(q.Limit)}
	if q.Tenant != "" {
		args = append(args, q.Tenant)
		where = append(where, "tenant = $"+strconv.Itoa(len(args)))
	}
	if q.Status != "" {
		args = append(args, string(q.Status))
		where = append(where, "status = $"+strconv.Itoa(len(args)))
	}
	if !q.Start.IsZero() {
		args = append(args, q.Start)
		where = append(where, "span_start = $"+strconv.Itoa(len(args)))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.pool.Query(ctx, `SELECT body FROM invoices`+cond+`
		ORDER BY span_start DESC, tenant COLLATE "C", updated DESC LIMIT $1`, args...)
	if err != nil {
		return nil, translate("list invoices", err)
	}
	list, err := scanJSONRows[billing.Invoice](rows, "list invoices", "invoice")
	if err != nil {
		return nil, err
	}
	out := make([]*billing.Invoice, len(list))
	for i := range list {
		out[i] = &list[i]
	}
	return out, nil
}

// CloseSpan implements billing.InvoiceStore. It takes the append lock exclusively (appends take
// it shared) before it records the span, so that once it returns no append in flight can still
// count an event of the span: every later append sees the closed span.
func (s *Store) CloseSpan(ctx context.Context, tenant string, span billing.Span) error {
	return s.recordsTx(ctx, "close span", false, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.lockKey(lockAppend)); err != nil {
			return translate("lock appends to close span", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO closed_spans (tenant, span_start, span_end) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, tenant, span.Start, span.End)
		return translate("close span", err)
	})
}

// FinalizeInvoice implements billing.InvoiceStore in one transaction: it locks the draft's row,
// then advances the sequence (inserted at 0 if missing) while holding its row lock, and stores
// the numbered invoice. Numbers are given in commit order across every process, with no gap (a
// failed finalization rolls its number back) and no repeat; concurrent finalizers of one draft
// queue on its row, and all but the first find it finalized and return it unchanged.
func (s *Store) FinalizeInvoice(ctx context.Context, inv *billing.Invoice, sequence string, number func(int64) string) (*billing.Invoice, error) {
	var out *billing.Invoice
	err := s.recordsTx(ctx, "finalize invoice", false, func(tx pgx.Tx) error {
		cur, err := getInvoice(ctx, tx, inv.ID, true)
		if err != nil {
			return err
		}
		if cur.Status != billing.InvoiceDraft {
			out = cur
			return nil
		}
		var next int64
		if err := tx.QueryRow(ctx, `INSERT INTO invoice_sequences (name, last) VALUES ($1, 1)
			ON CONFLICT (name) DO UPDATE SET last = invoice_sequences.last + 1
			RETURNING last`, sequence).Scan(&next); err != nil {
			return translate("advance invoice sequence", err)
		}
		f := *inv
		f.Number = number(next)
		f.Status = billing.InvoiceFinalized
		if err := writeInvoice(ctx, tx, &f); err != nil {
			return err
		}
		out = &f
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// writeInvoice stores inv over the row with its ID in tx.
func writeInvoice(ctx context.Context, tx pgx.Tx, inv *billing.Invoice) error {
	body, err := json.Marshal(inv)
	if err != nil {
		return fmt.Errorf("postgres: encode invoice: %w", err)
	}
	var number any // NULL until numbered
	if inv.Number != "" {
		number = inv.Number
	}
	_, err = tx.Exec(ctx, `UPDATE invoices SET status = $2, number = $3, body = $4, updated = clock_timestamp() WHERE id = $1`,
		inv.ID, string(inv.Status), number, string(body))
	return translate("write invoice", err)
}

// SetInvoiceStatus implements billing.InvoiceStore. The invoice's row is locked while its status
// is checked and changed, so of concurrent transitions from one status only one succeeds.
func (s *Store) SetInvoiceStatus(ctx context.Context, id string, from, to billing.InvoiceStatus, at time.Time) (*billing.Invoice, error) {
	var out *billing.Invoice
	err := s.recordsTx(ctx, "set invoice status", false, func(tx pgx.Tx) error {
		inv, err := getInvoice(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if err := inv.Move(from, to, at); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		if err := writeInvoice(ctx, tx, inv); err != nil {
			return err
		}
		out = inv
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
