package billing

import (
	"errors"
	"fmt"
)

// Sentinel errors. Compare with errors.Is: the library wraps them in typed errors that carry the
// details (which field, which event), and stores translate their driver errors into them.
var (
	// ErrInvalidEvent reports an Event that failed validation. The wrapping *FieldError names the
	// field and the rule; nothing of the rejected call is stored.
	ErrInvalidEvent = errors.New("billing: invalid event")

	// ErrInvalidQuery reports a UsageQuery (or another request) with a bad field.
	ErrInvalidQuery = errors.New("billing: invalid query")

	// ErrInvalidConfig reports a Config that New cannot use.
	ErrInvalidConfig = errors.New("billing: invalid config")

	// ErrClosed is returned by calls made after Meter.Close.
	ErrClosed = errors.New("billing: meter is closed")

	// ErrBackpressure is returned by Track (durable or async) when the writer's queue is full and
	// Config.Overflow is OverflowReject. Nothing of that call was queued; retry later.
	ErrBackpressure = errors.New("billing: event queue is full")

	// ErrEventConflict reports an event whose (tenant, id) was already recorded with a different
	// resource, quantity or attributes. The stored event is kept as it was and the new one is
	// dropped; see *EventConflictError.
	ErrEventConflict = errors.New("billing: event id already recorded with different content")

	// ErrNotFound reports a missing record.
	ErrNotFound = errors.New("billing: not found")

	// ErrQuotaExceeded reports a refusal by a hard quota.
	ErrQuotaExceeded = errors.New("billing: quota exceeded")

	// ErrRateLimited reports a refusal by a rate limit.
	ErrRateLimited = errors.New("billing: rate limited")

	// ErrExceedsBurst reports a rate-limit request for more units at once than the policy's burst:
	// unlike an ordinary refusal (ErrRateLimited) it can never pass, however long the caller
	// waits. Split the request or raise the policy's Burst.
	ErrExceedsBurst = errors.New("billing: request exceeds the rate limit's burst")

	// ErrPeriodClosed reports an event whose time falls in an invoiced (finalized) period.
	ErrPeriodClosed = errors.New("billing: period closed")

	// ErrWebhookSignature reports a webhook request that VerifyWebhook refused: a missing or
	// malformed header, a timestamp outside the tolerance, or no signature that matches. The
	// wrapping error says which.
	ErrWebhookSignature = errors.New("billing: webhook verification failed")

	// ErrSchemaTooNew is returned by a store that finds a database migrated by a newer version of
	// this library than the running one.
	ErrSchemaTooNew = errors.New("billing: database schema is newer than this library")
)

// FieldError is a validation failure of one field. It matches its Kind (ErrInvalidEvent,
// ErrInvalidQuery, ErrInvalidConfig) with errors.Is, and its message names the field and the rule,
// for example `billing: invalid event: events[2].quantity: must be > 0 (got -5)`.
type FieldError struct {
	// Kind is the sentinel this error matches.
	Kind error
	// Field is the path of the offending field, such as "events[2].attrs[model]".
	Field string
	// Rule says what the field must be.
	Rule string
}

// Error implements error.
func (e *FieldError) Error() string {
	return fmt.Sprintf("%v: %s: %s", e.Kind, e.Field, e.Rule)
}

// Unwrap lets errors.Is match the Kind sentinel.
func (e *FieldError) Unwrap() error { return e.Kind }

func fieldErr(kind error, field, format string, args ...any) *FieldError {
	return &FieldError{Kind: kind, Field: field, Rule: fmt.Sprintf(format, args...)}
}

// EventConflictError reports events whose ids were already recorded with different content. The
// other events of the same Track call were recorded (or were exact duplicates).
type EventConflictError struct {
	// Events are the rejected events, as they were passed to Track.
	Events []Event
}

// Error implements error.
func (e *EventConflictError) Error() string {
	if len(e.Events) == 1 {
		return fmt.Sprintf("%v: tenant %q, id %q (same id, different resource, quantity or attributes)",
			ErrEventConflict, e.Events[0].Tenant, e.Events[0].ID)
	}
	return fmt.Sprintf("%v: %d events, first tenant %q, id %q", ErrEventConflict, len(e.Events),
		e.Events[0].Tenant, e.Events[0].ID)
}

// Unwrap lets errors.Is match ErrEventConflict.
func (e *EventConflictError) Unwrap() error { return ErrEventConflict }

// PeriodClosedError reports events refused because their time falls in a period that a finalized
// invoice closed for their tenant. It matches ErrPeriodClosed. The other events of the same Track
// call were recorded; record a correction in the current period instead.
type PeriodClosedError struct {
	// Events are the refused events, as they were passed to Track.
	Events []Event
}

// Error implements error.
func (e *PeriodClosedError) Error() string {
	first := e.Events[0]
	return fmt.Sprintf("%v: %d event(s) refused, first tenant %q, id %q at %s: that period is invoiced "+
		"(finalized); record the usage in the current period", ErrPeriodClosed, len(e.Events), first.Tenant,
		first.ID, first.Time.UTC().Format("2006-01-02T15:04:05Z07:00"))
}

// Unwrap lets errors.Is match ErrPeriodClosed.
func (e *PeriodClosedError) Unwrap() error { return ErrPeriodClosed }
