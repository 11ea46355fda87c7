package client

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Error is an error the API answered with: its HTTP status and the body's
// {"error":{"code","message"}}. Match a kind of error with errors.Is and the
// sentinels below (errors.Is(err, client.ErrNotFound)), or read Code.
type Error struct {
	// Status is the HTTP status (404, 409, 503…).
	Status int
	// Code is the API's error code: not_found, invalid, conflict,
	// illegal_state, quota_exceeded, unauthenticated, forbidden, unavailable…
	Code string
	// Message is the API's explanation, meant for people.
	Message string
	// RetryAfter is the Retry-After the platform asked for (503, 429), or 0.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message + " (" + e.Code + ")" }

// Is matches sentinels by code: errors.Is(err, client.ErrNotFound).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == 0 && t.Code == e.Code
}

// Sentinels for errors.Is, one per API error code.
var (
	ErrNotFound        = &Error{Code: "not_found", Message: "not found"}
	ErrExists          = &Error{Code: "already_exists", Message: "already exists"}
	ErrInvalid         = &Error{Code: "invalid", Message: "invalid"}
	ErrBadRequest      = &Error{Code: "bad_request", Message: "bad request"}
	ErrConflict        = &Error{Code: "conflict", Message: "conflict"}
	ErrIllegalState    = &Error{Code: "illegal_state", Message: "illegal state"}
	ErrQuotaExceeded   = &Error{Code: "quota_exceeded", Message: "quota exceeded"}
	ErrUnauthenticated = &Error{Code: "unauthenticated", Message: "unauthenticated"}
	ErrForbidden       = &Error{Code: "forbidden", Message: "forbidden"}
	ErrUnavailable     = &Error{Code: "unavailable", Message: "unavailable"}
	ErrNotServing      = &Error{Code: "not_serving", Message: "not serving"}
	ErrNoCapacity      = &Error{Code: "no_capacity", Message: "no capacity"}
	ErrRateLimited     = &Error{Code: "rate_limited", Message: "rate limited"}
	// ErrGone: a replica or handoff ticket that is no more (410); ask
	// get-endpoint afresh.
	ErrGone = &Error{Code: "gone", Message: "gone"}
)

// ErrUnreachable matches (errors.Is) every call that got no answer: the
// platform is down, the URL is wrong, or the connection broke.
var ErrUnreachable = errors.New("cannot reach the platform")

// UnreachableError is a call that got no answer at all.
type UnreachableError struct {
	// URL is the platform's base URL.
	URL string
	// Err is the transport's error.
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the platform at %s (%s)", e.URL, reason(e.Err))
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnreachable) hold.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }

// reason is the short cause of a transport error ("connection refused").
func reason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}
