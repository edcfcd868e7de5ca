package platform_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/lexigram/events/platform"
)

type foreignKey int

type customErr struct{ detail string }

func (e *customErr) Error() string { return "custom: " + e.detail }

func TestErrorfKeepsCause(t *testing.T) {
	cause := &customErr{detail: "disk on fire"}
	err := platform.Errorf(platform.CodeStoreUnavailable, "append to %s: %w", "order/1", cause)
	if !errors.Is(err, cause) {
		t.Fatal("errors.Is does not find the cause")
	}
	var ce *customErr
	if !errors.As(err, &ce) || ce.detail != "disk on fire" {
		t.Fatalf("errors.As does not find the cause: %v", ce)
	}
	if errors.Unwrap(err) != cause {
		t.Fatalf("Unwrap = %v, want the cause", errors.Unwrap(err))
	}
	if !errors.Is(err, platform.ErrStoreUnavailable) || errors.Is(err, platform.ErrInvalidArgument) {
		t.Fatal("the error matches the wrong sentinels")
	}
	if got, want := err.Error(), "LXE-010: append to order/1: custom: disk on fire"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if platform.CodeOf(err) != platform.CodeStoreUnavailable {
		t.Fatalf("CodeOf = %q", platform.CodeOf(err))
	}

	// Standard causes survive too.
	err = platform.Errorf(platform.CodeStoreUnavailable, "read: %w", context.DeadlineExceeded)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("errors.Is does not find context.DeadlineExceeded")
	}
	var pe *fs.PathError
	err = platform.Errorf(platform.CodeConfigConflict, "open: %w", &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist})
	if !errors.As(err, &pe) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a wrapped *fs.PathError is lost")
	}
}

func TestErrorfWithoutCause(t *testing.T) {
	err := platform.Errorf(platform.CodeInvalidArgument, "aggregate ID %q is %d bytes", "abc", 3)
	if errors.Unwrap(err) != nil {
		t.Fatalf("Unwrap = %v, want nil", errors.Unwrap(err))
	}
	if got, want := err.Error(), `LXE-001: aggregate ID "abc" is 3 bytes`; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

// Errorf documents that "a %w verb in format becomes the cause"; with two,
// fmt.Errorf returns an error whose Unwrap gives []error, which
// errors.Unwrap does not see, so both causes are lost.
func TestErrorfKeepsEveryCause(t *testing.T) {
	err := platform.Errorf(platform.CodeStoreUnavailable, "flush: %w; close: %w", io.ErrShortWrite, io.ErrClosedPipe)
	for _, cause := range []error{io.ErrShortWrite, io.ErrClosedPipe} {
		if !errors.Is(err, cause) {
			t.Errorf("errors.Is(%q, %v) = false", err, cause)
		}
	}
}

func TestErrorfWrapsPlatformError(t *testing.T) {
	inner := platform.Errorf(platform.CodeUnknownEventType, "event type %q is not registered", "x.y")
	outer := platform.Errorf(platform.CodeOf(inner), "read order/1 at position %d: %w", 42, inner)
	if !errors.Is(outer, platform.ErrUnknownEventType) || !errors.Is(outer, inner) {
		t.Fatal("the wrapped platform error is lost")
	}
	// An outer error with another code matches both sentinels, and CodeOf
	// gives the outermost code.
	outer = platform.Errorf(platform.CodeProjectionBuild, "projection p: %w", inner)
	if !errors.Is(outer, platform.ErrUnknownEventType) {
		t.Fatal("the inner code is not matched")
	}
	if !errors.Is(outer, &platform.Error{Code: platform.CodeProjectionBuild}) {
		t.Fatal("the outer code is not matched")
	}
	if platform.CodeOf(outer) != platform.CodeProjectionBuild {
		t.Fatalf("CodeOf = %q, want the outer code", platform.CodeOf(outer))
	}
	for _, part := range []string{"projection p", "x.y", "LXE-015"} {
		if !strings.Contains(outer.Error(), part) {
			t.Fatalf("%q does not contain %q", outer, part)
		}
	}
}

func TestCodeOf(t *testing.T) {
	cases := []struct {
		err  error
		want platform.Code
	}{
		{nil, ""},
		{errors.New("plain"), ""},
		{platform.ErrInvalidArgument, platform.CodeInvalidArgument},
		{&platform.Error{Code: platform.CodeCorruptEvent, Message: "m"}, platform.CodeCorruptEvent},
		{fmt.Errorf("outer: %w", platform.Errorf(platform.CodeStreamNotFound, "gone")), platform.CodeStreamNotFound},
		{&platform.ConcurrencyError{}, platform.CodeConcurrency},
		{fmt.Errorf("save: %w", &platform.ConcurrencyError{}), platform.CodeConcurrency},
		{errors.Join(errors.New("a"), platform.ErrUnsupported), platform.CodeUnsupported},
	}
	for _, c := range cases {
		if got := platform.CodeOf(c.err); got != c.want {
			t.Errorf("CodeOf(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestSentinels(t *testing.T) {
	sentinels := map[platform.Code]error{
		platform.CodeInvalidArgument:    platform.ErrInvalidArgument,
		platform.CodeUnknownEventType:   platform.ErrUnknownEventType,
		platform.CodeCorruptEvent:       platform.ErrCorruptEvent,
		platform.CodeConcurrency:        platform.ErrConcurrency,
		platform.CodeStreamNotFound:     platform.ErrStreamNotFound,
		platform.CodeUnsupported:        platform.ErrUnsupported,
		platform.CodeStoreUnavailable:   platform.ErrStoreUnavailable,
		platform.CodeConfigConflict:     platform.ErrConfigConflict,
		platform.CodeCheckpointConflict: platform.ErrCheckpointConflict,
		platform.CodeBridgeDelivery:     platform.ErrBridgeDelivery,
		platform.CodeDurability:         platform.ErrDurability,
	}
	for code, sentinel := range sentinels {
		err := fmt.Errorf("ctx: %w", &platform.Error{Code: code, Message: "something"})
		for other, s := range sentinels {
			if got := errors.Is(err, s); got != (other == code) {
				t.Errorf("errors.Is(error with %s, sentinel %s) = %v", code, other, got)
			}
		}
		if platform.CodeOf(sentinel) != code || sentinel.Error() != string(code) {
			t.Errorf("sentinel %v: CodeOf %q, Error %q", sentinel, platform.CodeOf(sentinel), sentinel.Error())
		}
	}
	// Only a bare *Error is a sentinel: one with a message is matched by
	// identity alone.
	withMsg := &platform.Error{Code: platform.CodeInvalidArgument, Message: "x"}
	if errors.Is(platform.Errorf(platform.CodeInvalidArgument, "y"), withMsg) {
		t.Fatal("an *Error with a message matched another error of its code")
	}
	if !errors.Is(withMsg, withMsg) {
		t.Fatal("an error does not match itself")
	}
	// Only the cause-only form prints the cause.
	if got := (&platform.Error{Code: platform.CodeCorruptEvent, Err: io.EOF}).Error(); got != "LXE-003: EOF" {
		t.Fatalf("Error() with only a cause = %q", got)
	}
}

// The codes are part of the wire contract: they must never change.
func TestCodesAreStable(t *testing.T) {
	want := map[platform.Code]string{
		platform.CodeInvalidArgument:    "LXE-001",
		platform.CodeUnknownEventType:   "LXE-002",
		platform.CodeCorruptEvent:       "LXE-003",
		platform.CodeConcurrency:        "LXE-004",
		platform.CodeCommandExecution:   "LXE-005",
		platform.CodeQueryExecution:     "LXE-006",
		platform.CodeStreamNotFound:     "LXE-007",
		platform.CodeEventHandler:       "LXE-008",
		platform.CodeUnsupported:        "LXE-009",
		platform.CodeStoreUnavailable:   "LXE-010",
		platform.CodeConfigConflict:     "LXE-011",
		platform.CodeProjectionBuild:    "LXE-015",
		platform.CodeWebhookDelivery:    "LXE-018",
		platform.CodeCheckpointConflict: "LXE-020",
		platform.CodeSagaNotFound:       "LXE-022",
		platform.CodeSagaConflict:       "LXE-023",
		platform.CodeCorruptSaga:        "LXE-024",
		platform.CodeBridgeDelivery:     "LXE-025",
		platform.CodeDurability:         "LXE-026",
	}
	if len(want) != 19 {
		t.Fatal("two codes share a value")
	}
	for code, s := range want {
		if string(code) != s {
			t.Errorf("code %q, want %q", code, s)
		}
	}
}

func TestConcurrencyError(t *testing.T) {
	stream := platform.StreamID{Type: "order", ID: "o-42"}
	err := error(&platform.ConcurrencyError{Stream: stream, Expected: platform.Exact(7), Actual: 9})
	wrapped := fmt.Errorf("save order: %w", err)
	for _, e := range []error{err, wrapped} {
		if !errors.Is(e, platform.ErrConcurrency) {
			t.Fatalf("%v does not match ErrConcurrency", e)
		}
		if errors.Is(e, platform.ErrInvalidArgument) || errors.Is(e, platform.ErrCheckpointConflict) {
			t.Fatalf("%v matches another sentinel", e)
		}
		var ce *platform.ConcurrencyError
		if !errors.As(e, &ce) || ce.Actual != 9 || ce.Expected != platform.Exact(7) || ce.Stream != stream {
			t.Fatalf("errors.As(%v) = %+v", e, ce)
		}
		if platform.CodeOf(e) != platform.CodeConcurrency {
			t.Fatalf("CodeOf(%v) = %q", e, platform.CodeOf(e))
		}
	}
	for _, part := range []string{"LXE-004", "order", "o-42", "version 7", "9"} {
		if !strings.Contains(err.Error(), part) {
			t.Fatalf("%q does not contain %q", err, part)
		}
	}
	noStream := &platform.ConcurrencyError{Stream: stream, Expected: platform.NoStream(), Actual: 3}
	if !strings.Contains(noStream.Error(), "no stream") {
		t.Fatalf("%q does not say what was expected", noStream)
	}
}

func TestExpectedVersion(t *testing.T) {
	rev := platform.Revision{Version: 4, Position: 99}
	cases := []struct {
		e       platform.ExpectedVersion
		version uint64
		check   bool
		any     bool
		rev     platform.Revision
		str     string
	}{
		{platform.Any(), 0, false, true, platform.Revision{}, "any version"},
		{platform.NoStream(), 0, true, false, platform.Revision{}, "no stream"},
		{platform.Exact(0), 0, true, false, platform.Revision{}, "no stream"},
		{platform.Exact(5), 5, true, false, platform.Revision{Version: 5}, "version 5"},
		{platform.ExactRevision(rev), 4, true, false, rev, "version 4"},
		{platform.ExactRevision(platform.Revision{}), 0, true, false, platform.Revision{}, "no stream"},
		{platform.ExpectedVersion{}, 0, false, true, platform.Revision{}, "any version"},
	}
	for i, c := range cases {
		v, check := c.e.Expected()
		if v != c.version || check != c.check || c.e.IsAny() != c.any || c.e.Revision() != c.rev || c.e.String() != c.str {
			t.Errorf("case %d: Expected() = %d, %v; IsAny %v; Revision %+v; String %q", i, v, check, c.e.IsAny(), c.e.Revision(), c.e.String())
		}
	}
	if platform.Exact(0) != platform.NoStream() || platform.ExactRevision(platform.Revision{Position: 7}) != platform.NoStream() {
		t.Fatal("Exact(0) or ExactRevision of version 0 is not NoStream")
	}
}

func TestStreamIDValidate(t *testing.T) {
	for _, s := range []platform.StreamID{
		{Type: "order", ID: "x"},
		{Type: "Order_2-b", ID: "a.b*> \n\x00ü"},
		{Type: strings.Repeat("t", platform.MaxAggregateTypeLen), ID: strings.Repeat("i", platform.MaxAggregateIDLen)},
	} {
		if err := s.Validate(); err != nil {
			t.Errorf("Validate(%v) = %v", s, err)
		}
	}
	for _, s := range []platform.StreamID{
		{ID: "x"}, {Type: "order"}, {Type: "a.b", ID: "x"}, {Type: "a b", ID: "x"}, {Type: "ü", ID: "x"},
		{Type: strings.Repeat("t", platform.MaxAggregateTypeLen+1), ID: "x"},
		{Type: "order", ID: strings.Repeat("i", platform.MaxAggregateIDLen+1)},
	} {
		mustFail(t, fmt.Sprintf("Validate(%v)", s), s.Validate(), platform.ErrInvalidArgument)
	}
	if got := (platform.StreamID{Type: "order", ID: "a\"b"}).String(); got != `order/"a\"b"` {
		t.Fatalf("String() = %s", got)
	}
}

func TestContextIDs(t *testing.T) {
	ctx := context.Background()
	if platform.CorrelationID(ctx) != "" || platform.CausationID(ctx) != "" {
		t.Fatal("an empty context carries IDs")
	}
	ctx = platform.WithCausationID(platform.WithCorrelationID(ctx, "corr"), "cause")
	if platform.CorrelationID(ctx) != "corr" || platform.CausationID(ctx) != "cause" {
		t.Fatalf("IDs %q, %q", platform.CorrelationID(ctx), platform.CausationID(ctx))
	}
	// Another package's key of the same underlying type and value does
	// not collide.
	ctx = context.WithValue(context.Background(), foreignKey(0), "x")
	if platform.CorrelationID(ctx) != "" {
		t.Fatal("a foreign context key is read as the correlation ID")
	}
}
