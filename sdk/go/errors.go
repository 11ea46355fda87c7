package discovery

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Errors a call to the platform may be matched against with errors.Is; the
// error itself is an *Error carrying the status and the platform's message.
var (
	// ErrMissingEnv: the environment lacks a variable the platform sets
	// (the process is not run by the platform).
	ErrMissingEnv = errors.New("discovery: environment incomplete")
	// ErrUnauthorized: the capability was refused (401, 403).
	ErrUnauthorized = errors.New("discovery: capability refused")
	// ErrNotFound: no such app, revision or lease (404).
	ErrNotFound = errors.New("discovery: not found")
	// ErrConflict: the platform refuses in the current state (409), e.g. a
	// handoff from a revision that is not draining, an app without
	// handoff_path, or no active revision to move players to.
	ErrConflict = errors.New("discovery: conflict")
	// ErrGone: a ticket or replica that cannot be used any more (410).
	ErrGone = errors.New("discovery: gone")
	// ErrTooLarge: a handoff state over MaxState (413).
	ErrTooLarge = errors.New("discovery: state too large")
	// ErrRateLimited: too many requests (429); Error.RetryAfter says when
	// to try again.
	ErrRateLimited = errors.New("discovery: rate limited")
	// ErrTargetFailed: the replica picked to receive a handoff did not take
	// the state (502); the ticket is void. Retry, or let the player fall
	// back (CloseGoElsewhere).
	ErrTargetFailed = errors.New("discovery: the target replica did not take the state")
	// ErrUnavailable: no replica has room, or the platform cannot serve now
	// (503).
	ErrUnavailable = errors.New("discovery: unavailable")
)

// Error is a call the platform answered with an error status.
type Error struct {
	// Op is what was asked, e.g. "handoff".
	Op string
	// Status is the HTTP status; Code and Message the platform's
	// {"error":{"code","message"}} when it sent one.
	Status  int
	Code    string
	Message string
	// RetryAfter is the answer's Retry-After, if any.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	s := fmt.Sprintf("discovery: %s: %d %s", e.Op, e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Unwrap returns the sentinel of the status (ErrNotFound for 404, …), so
// errors.Is(err, ErrConflict) reads as one expects; nil for other statuses.
func (e *Error) Unwrap() error {
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrUnauthorized
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusGone:
		return ErrGone
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case http.StatusTooManyRequests:
		return ErrRateLimited
	case http.StatusBadGateway:
		return ErrTargetFailed
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	}
	return nil
}
