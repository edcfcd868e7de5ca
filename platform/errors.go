package platform

import (
	"errors"
	"fmt"
)

// Code is a stable error code. Codes keep their meaning across releases and
// across the wire, so callers in other processes can branch on them.
type Code string

// Stable error codes. The numbers follow the Python original where it had
// one (004 to 008, 015, 018).
const (
	CodeInvalidArgument    Code = "LXE-001" // the caller passed something unusable
	CodeUnknownEventType   Code = "LXE-002" // an event type that is not registered
	CodeCorruptEvent       Code = "LXE-003" // a stored event that cannot be decoded
	CodeConcurrency        Code = "LXE-004"
	CodeCommandExecution   Code = "LXE-005"
	CodeQueryExecution     Code = "LXE-006"
	CodeStreamNotFound     Code = "LXE-007"
	CodeEventHandler       Code = "LXE-008"
	CodeUnsupported        Code = "LXE-009" // the server lacks a feature the call needs
	CodeStoreUnavailable   Code = "LXE-010" // the store could not be reached in time
	CodeConfigConflict     Code = "LXE-011" // existing infrastructure contradicts what we need
	CodeNoHandler          Code = "LXE-012" // no handler is registered for a command or query type
	CodeDuplicateHandler   Code = "LXE-013" // a second handler for a type that takes exactly one
	CodeHandlerTimeout     Code = "LXE-014" // a handler ran past its deadline
	CodeProjectionBuild    Code = "LXE-015"
	CodeCircuitOpen        Code = "LXE-016" // a circuit breaker refused the call
	CodeSagaExecution      Code = "LXE-017" // a saga step or its compensation failed
	CodeWebhookDelivery    Code = "LXE-018"
	CodeHandlerPanic       Code = "LXE-019" // a handler panicked; the panic was recovered
	CodeCheckpointConflict Code = "LXE-020" // a checkpoint moved under a compare-and-set
	CodeNotLeader          Code = "LXE-021" // another instance holds the lease or the pin
	CodeSagaNotFound       Code = "LXE-022" // no saga instance has that ID or association key
	CodeSagaConflict       Code = "LXE-023" // a saga instance moved under a compare-and-set
	CodeCorruptSaga        Code = "LXE-024" // a stored saga instance that cannot be decoded
	CodeBridgeDelivery     Code = "LXE-025" // a bridge could not move a message to or from another broker
	CodeDurability         Code = "LXE-026" // the durability in force is below the one required
)

// Error is the error type of the platform: a stable code, a message for
// people and, optionally, the cause.
//
// A bare *Error with only a Code is a sentinel: errors.Is(err, ErrConcurrency)
// is true for every error carrying that code.
type Error struct {
	Code    Code
	Message string
	Err     error
}

// Error prints the code and the message; the cause is printed only when
// there is no message, because Errorf already puts it in the message.
func (e *Error) Error() string {
	switch {
	case e.Message != "":
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	case e.Err != nil:
		return fmt.Sprintf("%s: %v", e.Code, e.Err)
	}
	return string(e.Code)
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches sentinels by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Err == nil && t.Code == e.Code
}

// Sentinels for errors.Is.
var (
	ErrInvalidArgument    = &Error{Code: CodeInvalidArgument}
	ErrUnknownEventType   = &Error{Code: CodeUnknownEventType}
	ErrCorruptEvent       = &Error{Code: CodeCorruptEvent}
	ErrConcurrency        = &Error{Code: CodeConcurrency}
	ErrStreamNotFound     = &Error{Code: CodeStreamNotFound}
	ErrUnsupported        = &Error{Code: CodeUnsupported}
	ErrStoreUnavailable   = &Error{Code: CodeStoreUnavailable}
	ErrConfigConflict     = &Error{Code: CodeConfigConflict}
	ErrCheckpointConflict = &Error{Code: CodeCheckpointConflict}
	ErrCommandExecution   = &Error{Code: CodeCommandExecution}
	ErrQueryExecution     = &Error{Code: CodeQueryExecution}
	ErrEventHandler       = &Error{Code: CodeEventHandler}
	ErrNoHandler          = &Error{Code: CodeNoHandler}
	ErrDuplicateHandler   = &Error{Code: CodeDuplicateHandler}
	ErrHandlerTimeout     = &Error{Code: CodeHandlerTimeout}
	ErrProjectionBuild    = &Error{Code: CodeProjectionBuild}
	ErrCircuitOpen        = &Error{Code: CodeCircuitOpen}
	ErrSagaExecution      = &Error{Code: CodeSagaExecution}
	ErrHandlerPanic       = &Error{Code: CodeHandlerPanic}
	ErrNotLeader          = &Error{Code: CodeNotLeader}
	ErrSagaNotFound       = &Error{Code: CodeSagaNotFound}
	ErrSagaConflict       = &Error{Code: CodeSagaConflict}
	ErrCorruptSaga        = &Error{Code: CodeCorruptSaga}
	ErrBridgeDelivery     = &Error{Code: CodeBridgeDelivery}
	ErrDurability         = &Error{Code: CodeDurability}
)

// Errorf builds an *Error with a formatted message; a %w verb in format
// becomes the cause.
func Errorf(code Code, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	cause := errors.Unwrap(err)
	if _, multi := err.(interface{ Unwrap() []error }); multi {
		cause = err
	}
	return &Error{Code: code, Message: err.Error(), Err: cause}
}

// CodeOf returns the code of the first error in err's chain that has one,
// or "" if none does.
func CodeOf(err error) Code {
	var c interface{ ErrorCode() Code }
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	return ""
}

// ErrorCode makes *Error visible to CodeOf.
func (e *Error) ErrorCode() Code { return e.Code }

// ConcurrencyError reports that an append's expected version did not match
// the aggregate's version in the store. Reload and decide again.
type ConcurrencyError struct {
	Stream   StreamID
	Expected ExpectedVersion
	Actual   uint64 // the aggregate's version in the store (0: it has no events)
}

func (e *ConcurrencyError) Error() string {
	return fmt.Sprintf("%s: concurrency conflict on %s: expected %s, but the stored version is %d: reload the aggregate and try again",
		CodeConcurrency, e.Stream, e.Expected, e.Actual)
}

func (e *ConcurrencyError) Is(target error) bool { return target == ErrConcurrency }

func (e *ConcurrencyError) ErrorCode() Code { return CodeConcurrency }
