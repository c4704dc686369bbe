package planb

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrCode is a Matrix error code such as "M_FORBIDDEN".
type ErrCode string

// Matrix error codes used by planb (client-server API, "Standard error response").
const (
	CodeForbidden            ErrCode = "M_FORBIDDEN"
	CodeUnknownToken         ErrCode = "M_UNKNOWN_TOKEN"
	CodeMissingToken         ErrCode = "M_MISSING_TOKEN"
	CodeBadJSON              ErrCode = "M_BAD_JSON"
	CodeNotJSON              ErrCode = "M_NOT_JSON"
	CodeNotFound             ErrCode = "M_NOT_FOUND"
	CodeLimitExceeded        ErrCode = "M_LIMIT_EXCEEDED"
	CodeUnrecognized         ErrCode = "M_UNRECOGNIZED"
	CodeUnknown              ErrCode = "M_UNKNOWN"
	CodeUserInUse            ErrCode = "M_USER_IN_USE"
	CodeInvalidUsername      ErrCode = "M_INVALID_USERNAME"
	CodeRoomInUse            ErrCode = "M_ROOM_IN_USE"
	CodeInvalidRoomState     ErrCode = "M_INVALID_ROOM_STATE"
	CodeTooLarge             ErrCode = "M_TOO_LARGE"
	CodeInvalidParam         ErrCode = "M_INVALID_PARAM"
	CodeMissingParam         ErrCode = "M_MISSING_PARAM"
	CodeUnsupportedRoomVer   ErrCode = "M_UNSUPPORTED_ROOM_VERSION"
	CodeBadState             ErrCode = "M_BAD_STATE"
	CodeGuestAccess          ErrCode = "M_GUEST_ACCESS_FORBIDDEN"
	CodeUnauthorized         ErrCode = "M_UNAUTHORIZED"
	CodeUnavailable          ErrCode = "M_UNAVAILABLE"
	CodeUserDeactivated      ErrCode = "M_USER_DEACTIVATED"
	CodeExclusive            ErrCode = "M_EXCLUSIVE"
	CodeNotYetUploaded       ErrCode = "M_NOT_YET_UPLOADED"
	CodeWrongKeysVersion     ErrCode = "M_WRONG_ROOM_KEYS_VERSION"
	CodeBadAlias             ErrCode = "M_BAD_ALIAS"
	CodeCannotOverwriteMedia ErrCode = "M_CANNOT_OVERWRITE_MEDIA"
)

// Error is an error that the HTTP edge reports to clients as a Matrix error
// body {"errcode": ..., "error": ...} with the given HTTP status.
type Error struct {
	Code    ErrCode
	Status  int
	Message string
	// RetryAfter, when positive, is sent as retry_after_ms and Retry-After.
	RetryAfter time.Duration
	// Extra holds additional top-level fields of the error body.
	Extra map[string]any
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Is makes Matrix errors comparable by code: errors.Is(err, planb.MForbidden)
// holds for every M_FORBIDDEN error in err's chain, whatever its message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels to compare Matrix errors with errors.Is. Never return them:
// build errors with the constructors below, which carry a message.
var (
	MForbidden    = &Error{Code: CodeForbidden, Status: http.StatusForbidden}
	MNotFound     = &Error{Code: CodeNotFound, Status: http.StatusNotFound}
	MRoomInUse    = &Error{Code: CodeRoomInUse, Status: http.StatusBadRequest}
	MUnavailable  = &Error{Code: CodeUnavailable, Status: http.StatusServiceUnavailable}
	MUnknownToken = &Error{Code: CodeUnknownToken, Status: http.StatusUnauthorized}
)

// Errorf returns an *Error with the code, status and formatted message.
func Errorf(code ErrCode, status int, format string, args ...any) *Error {
	return &Error{Code: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

// Forbidden returns an M_FORBIDDEN (403) error.
func Forbidden(format string, args ...any) *Error {
	return Errorf(CodeForbidden, http.StatusForbidden, format, args...)
}

// NotFound returns an M_NOT_FOUND (404) error.
func NotFound(format string, args ...any) *Error {
	return Errorf(CodeNotFound, http.StatusNotFound, format, args...)
}

// BadJSON returns an M_BAD_JSON (400) error.
func BadJSON(format string, args ...any) *Error {
	return Errorf(CodeBadJSON, http.StatusBadRequest, format, args...)
}

// InvalidParam returns an M_INVALID_PARAM (400) error.
func InvalidParam(format string, args ...any) *Error {
	return Errorf(CodeInvalidParam, http.StatusBadRequest, format, args...)
}

// MissingParam returns an M_MISSING_PARAM (400) error.
func MissingParam(format string, args ...any) *Error {
	return Errorf(CodeMissingParam, http.StatusBadRequest, format, args...)
}

// NoQuorum is the answer to an engine failure: a 503 that says this data
// center cannot reach a quorum and to retry, here or elsewhere. Matrix
// errors and cancellations are returned as they are; turned reports
// whether err was turned into the 503 (callers log those).
func NoQuorum(err error) (answer error, turned bool) {
	if e, ok := AsError(err); ok {
		return e, false
	}
	if errors.Is(err, context.Canceled) {
		return err, false
	}
	return Unavailable(2*time.Second, "this data center cannot reach a quorum of data centers right now; retry (here or at another data center)"), true
}

// Unavailable returns an M_UNAVAILABLE (503) error telling the client to
// retry after d: this node cannot commit writes to a quorum right now.
func Unavailable(d time.Duration, format string, args ...any) *Error {
	e := Errorf(CodeUnavailable, http.StatusServiceUnavailable, format, args...)
	e.RetryAfter = d
	return e
}

// UnknownToken returns an M_UNKNOWN_TOKEN (401) error with soft_logout
// false: the client must log in again.
func UnknownToken(format string, args ...any) *Error {
	e := Errorf(CodeUnknownToken, http.StatusUnauthorized, format, args...)
	e.Extra = map[string]any{"soft_logout": false}
	return e
}

// LimitExceeded returns an M_LIMIT_EXCEEDED (429) error with retry_after_ms.
func LimitExceeded(d time.Duration) *Error {
	e := Errorf(CodeLimitExceeded, http.StatusTooManyRequests, "too many requests")
	e.RetryAfter = d
	return e
}

// AsError returns the *Error in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// ErrNotFound is returned by stores when a record does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned by stores when a record that must be new exists.
var ErrExists = errors.New("already exists")

// ErrConflict is returned by the log when the room moved on since the state
// a write was checked against; the caller re-reads and retries.
var ErrConflict = errors.New("room changed concurrently")

// ErrNoQuorum is returned when a write could not be committed by a quorum
// in time. The write may or may not have landed; retries are idempotent.
var ErrNoQuorum = errors.New("no quorum")
