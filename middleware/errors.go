package middleware

import (
	"errors"
	"fmt"
)

// Sentinel errors of the HTTP layer. Compare with errors.Is. Each maps to one problem type in
// ProblemFor; request errors come wrapped in a *RequestError that names the parameter.
var (
	// ErrNoTenant reports a request that names no tenant (a missing header, credential or
	// context value) or names one that is not a valid tenant id. Answered with 401.
	ErrNoTenant = errors.New("middleware: no tenant identified")

	// ErrInvalidAPIKey reports a request whose API key no tenant holds. Answered with 401.
	ErrInvalidAPIKey = errors.New("middleware: invalid API key")

	// ErrMalformedJSON reports a request body that is not the JSON object the endpoint expects.
	// Answered with 400.
	ErrMalformedJSON = errors.New("middleware: malformed JSON")

	// ErrBodyTooLarge reports a request body above the endpoint's limit. Answered with 400.
	ErrBodyTooLarge = errors.New("middleware: request body too large")

	// ErrUnknownModel reports a chat request for a model the Chat wrapper does not know.
	// Answered with 400.
	ErrUnknownModel = errors.New("middleware: unknown model")

	// ErrInvalidParameter reports a request parameter with a wrong type or value, such as a
	// negative max_tokens. Answered with 400.
	ErrInvalidParameter = errors.New("middleware: invalid parameter")

	// ErrMethodNotAllowed reports a request with a method the endpoint does not serve.
	// Answered with 405.
	ErrMethodNotAllowed = errors.New("middleware: method not allowed")

	// ErrUpstream reports an upstream (a proxied model endpoint) that could not be reached or
	// did not answer. Answered with 502.
	ErrUpstream = errors.New("middleware: upstream unavailable")

	// ErrForbidden reports a caller who is authenticated but may not do what it asked, such as
	// a read-only principal changing a quota. Answered with 403.
	ErrForbidden = errors.New("middleware: forbidden")

	// ErrConflict reports a request that the current state of a record refuses, such as voiding
	// a paid invoice. Answered with 409.
	ErrConflict = errors.New("middleware: conflict")
)

// RequestError is a bad request: which parameter is wrong and why. It matches its Kind
// (ErrMalformedJSON, ErrBodyTooLarge, ErrUnknownModel, ErrInvalidParameter, ErrMethodNotAllowed)
// with errors.Is. A plain value once built; safe to share.
type RequestError struct {
	// Kind is the sentinel the error matches.
	Kind error
	// Param names the offending parameter, such as "max_tokens" or "messages[2].content"; empty
	// when the error concerns the body as a whole.
	Param string
	// Detail says what is wrong and what is expected, for people.
	Detail string
}

// Error implements error, for example
// `middleware: invalid parameter: max_tokens: must be a positive integer (got -5)`.
func (e *RequestError) Error() string {
	if e.Param == "" {
		return fmt.Sprintf("%v: %s", e.Kind, e.Detail)
	}
	return fmt.Sprintf("%v: %s: %s", e.Kind, e.Param, e.Detail)
}

// Unwrap lets errors.Is match Kind.
func (e *RequestError) Unwrap() error { return e.Kind }

// badRequest builds a *RequestError.
func badRequest(kind error, param, format string, args ...any) *RequestError {
	return &RequestError{Kind: kind, Param: param, Detail: fmt.Sprintf(format, args...)}
}
