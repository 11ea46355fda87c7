package api

import (
	"context"
	"errors"
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"github.com/discovery-platform/discovery/apps"
	"github.com/discovery-platform/discovery/authz"
	"github.com/discovery-platform/discovery/endpoint"
	"github.com/discovery-platform/discovery/images"
	"github.com/discovery-platform/discovery/internal/storeerr"
	"github.com/discovery-platform/discovery/tenants"
)

// errorBody is every error the API returns: {"error":{"code","message"}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// codes maps domain sentinels to HTTP statuses: the one place that does so.
// msg, when set, is what the client is told instead of the error's text.
var errorCodes = []struct {
	err    error
	status int
	code   string
	msg    string
}{
	{apps.ErrNotFound, fiber.StatusNotFound, "not_found", ""},
	{tenants.ErrNotFound, fiber.StatusNotFound, "not_found", ""},
	{tenants.ErrExists, fiber.StatusConflict, "already_exists", ""},
	{tenants.ErrInvalid, fiber.StatusBadRequest, "invalid", ""},
	{tenants.ErrConflict, fiber.StatusConflict, "conflict", ""},
	{tenants.ErrQuotaExceeded, fiber.StatusForbidden, "quota_exceeded", ""},
	{authz.ErrInvalid, fiber.StatusBadRequest, "invalid", ""},
	{authz.ErrUnauthenticated, fiber.StatusUnauthorized, "unauthenticated", ""},
	{authz.ErrForbidden, fiber.StatusForbidden, "forbidden", ""},
	{images.ErrNotFound, fiber.StatusNotFound, "not_found", ""},
	{images.ErrInvalid, fiber.StatusBadRequest, "invalid", ""},
	{apps.ErrExists, fiber.StatusConflict, "already_exists", ""},
	{apps.ErrInvalid, fiber.StatusBadRequest, "invalid", ""},
	{apps.ErrConflict, fiber.StatusConflict, "conflict", ""},
	{apps.ErrIllegalState, fiber.StatusConflict, "illegal_state", ""},
	{apps.ErrNoLogs, fiber.StatusNotImplemented, "not_implemented", ""},
	{apps.ErrGone, fiber.StatusGone, "gone", ""},
	{errBadRequest, fiber.StatusBadRequest, "bad_request", ""},
	{errUnavailable, fiber.StatusServiceUnavailable, "unavailable", ""},
	{endpoint.ErrTooManyReservations, fiber.StatusTooManyRequests, "too_many_reservations", ""},
	{endpoint.ErrNoCapacity, fiber.StatusServiceUnavailable, "no_capacity", ""},
	{endpoint.ErrNotServing, fiber.StatusServiceUnavailable, "not_serving", ""},
	{endpoint.ErrStateTooLarge, fiber.StatusRequestEntityTooLarge, "too_large", ""},
	{endpoint.ErrTargetRefused, fiber.StatusBadGateway, "bad_gateway", ""},
	// The store over its quota (etcd's NOSPACE alarm) refuses every write
	// until space is freed and the alarm disarmed.
	{storeerr.ErrFull, fiber.StatusServiceUnavailable, "store_full",
		"the platform's store (etcd) is full (NOSPACE alarm); nothing was changed. The embedded etcd recovers by itself (compaction, defragmentation); an external cluster needs its operator. Retry later"},
	{storeerr.ErrUnavailable, fiber.StatusServiceUnavailable, "unavailable",
		"the platform's store (etcd) is unreachable; nothing was changed, retry later"},
}

var (
	errBadRequest  = errors.New("bad request")
	errUnavailable = errors.New("unavailable")
)

// errorHandler turns any error a handler returns into the JSON error body.
// Internal errors are logged, never shown.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		status, code, msg := classify(err)
		if status == fiber.StatusInternalServerError {
			log.Error("internal error", "method", c.Method(), "path", c.Path(), "err", err)
			msg = "internal error; see the platform log"
		}
		if status == fiber.StatusServiceUnavailable || status == fiber.StatusTooManyRequests && c.GetRespHeader(fiber.HeaderRetryAfter) == "" {
			c.Set(fiber.HeaderRetryAfter, "2")
		}
		return c.Status(status).JSON(errorBody{errorDetail{Code: code, Message: msg}})
	}
}

func classify(err error) (int, string, string) {
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			if e.msg != "" {
				return e.status, e.code, e.msg
			}
			return e.status, e.code, err.Error()
		}
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		code := "error"
		switch fe.Code {
		case fiber.StatusNotFound:
			code = "not_found"
		case fiber.StatusMethodNotAllowed:
			code = "method_not_allowed"
		case fiber.StatusRequestEntityTooLarge:
			code = "too_large"
		case fiber.StatusBadRequest:
			code = "bad_request"
		case fiber.StatusUnauthorized:
			code = "unauthenticated"
		case fiber.StatusForbidden:
			code = "forbidden"
		case fiber.StatusTooManyRequests:
			code = "rate_limited"
		}
		return fe.Code, code, fe.Message
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fiber.StatusServiceUnavailable, "unavailable", "the request ran out of time; nothing was changed, retry later"
	}
	return fiber.StatusInternalServerError, "internal", err.Error()
}
