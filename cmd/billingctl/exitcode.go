package main

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meterplane/billing"
)

// Exit codes. Scripts rely on them: keep them stable.
const (
	exitOK          = 0 // success
	exitError       = 1 // runtime or store error
	exitUsage       = 2 // bad or missing flags or arguments
	exitNotFound    = 3 // a record, the database file or the PostgreSQL store does not exist
	exitConflict    = 4 // the state forbids it: a finalized period, a period not yet ended
	exitSchemaNew   = 5 // the database was migrated by a newer library
	exitUnavailable = 6 // the store cannot be reached: the database server is down, unreachable or refuses the connection
)

// usageError is a bad command line. reported says whether the flag package already printed it.
type usageError struct {
	msg      string
	reported bool
}

func (e *usageError) Error() string { return e.msg }

// usagef returns a usage error (exit code 2) whose message says what to fix.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// conflictError is a refusal because of the state of the data (exit code 4).
type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }

// notFoundError is a missing record or file (exit code 3).
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }

// unavailableError is a store that cannot be reached (exit code 6): a script may retry later.
type unavailableError struct {
	msg string
	err error // the driver's error
}

func (e *unavailableError) Error() string { return e.msg }

func (e *unavailableError) Unwrap() error { return e.err }

// exitCode maps an error to the documented exit code.
func exitCode(err error) int {
	var ue *usageError
	var ce *conflictError
	var ne *notFoundError
	var ua *unavailableError
	var pc *pgconn.ConnectError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue),
		errors.Is(err, billing.ErrInvalidQuery),
		errors.Is(err, billing.ErrInvalidEvent),
		errors.Is(err, billing.ErrInvalidConfig):
		return exitUsage
	case errors.As(err, &ne), errors.Is(err, billing.ErrNotFound):
		return exitNotFound
	case errors.As(err, &ce), errors.Is(err, billing.ErrPeriodClosed), errors.Is(err, billing.ErrEventConflict):
		return exitConflict
	case errors.Is(err, billing.ErrSchemaTooNew):
		return exitSchemaNew
	case errors.As(err, &ua), errors.As(err, &pc):
		return exitUnavailable
	default:
		return exitError
	}
}
