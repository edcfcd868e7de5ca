package kvsnapshot

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// storeErr wraps a NATS error with what we were doing. Errors that mean the
// server was not reached in time get CodeStoreUnavailable, so callers can
// tell "try again later" from a misconfiguration.
func storeErr(err error, format string, args ...any) error {
	msg := "kvsnapshot: " + fmt.Sprintf(format, args...)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrConnectionClosed) {
		return platform.Errorf(platform.CodeStoreUnavailable, "%s: %w", msg, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// isConflict reports a compare-and-set failure. Create reports one over a
// delete marker as a bare "wrong last sequence" API error, and replicated
// buckets use code 10164 instead of 10071, so the sentinels are not enough.
func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
