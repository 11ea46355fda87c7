package apps

import "errors"

// Sentinel errors of the apps domain. Callers wrap them with context; the API
// maps each to one HTTP status in one place.
var (
	ErrNotFound     = errors.New("apps: not found")
	ErrExists       = errors.New("apps: already exists")
	ErrInvalid      = errors.New("apps: invalid")
	ErrConflict     = errors.New("apps: conflict")
	ErrIllegalState = errors.New("apps: illegal state transition")
	// ErrNoLogs: this platform instance cannot read replicas' output.
	ErrNoLogs = errors.New("apps: no logs here")
)
