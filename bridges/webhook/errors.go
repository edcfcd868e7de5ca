package webhook

import (
	"fmt"
	"strings"

	"github.com/lexigram/events/platform"
)

// Failure is one endpoint's failed delivery of a message.
type Failure struct {
	Endpoint string // the endpoint's name
	URL      string // scheme and host only: paths and queries may hold tokens
	Attempts int    // requests made, 0 when none was (open circuit, refused address)
	Status   int    // the last HTTP status, 0 without an answer
	Err      error  // why the last attempt failed, and what to do
}

func (f Failure) String() string {
	return fmt.Sprintf("endpoint %s (%s) after %d attempt(s): %v", f.Endpoint, f.URL, f.Attempts, f.Err)
}

// DeliveryError is the WebhookDeliveryError of the seed (code LXE-018):
// a message that one or more endpoints did not take, for good. The
// outbound bridge dead-letters the message with it as the reason.
// errors.Is(err, &platform.Error{Code: platform.CodeWebhookDelivery})
// matches it, and errors.Is and errors.As look into each failure's Err
// (e.g. platform.ErrCircuitOpen).
type DeliveryError struct {
	MessageID string
	Failures  []Failure
}

func (e *DeliveryError) Error() string {
	parts := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		parts[i] = f.String()
	}
	return fmt.Sprintf("%s: webhook message %q not delivered to %d endpoint(s): %s",
		platform.CodeWebhookDelivery, e.MessageID, len(e.Failures), strings.Join(parts, "; "))
}

// ErrorCode makes the code visible to platform.CodeOf.
func (e *DeliveryError) ErrorCode() platform.Code { return platform.CodeWebhookDelivery }

// Is matches the platform's sentinel form of the code.
func (e *DeliveryError) Is(target error) bool {
	t, ok := target.(*platform.Error)
	return ok && t.Code == platform.CodeWebhookDelivery && t.Message == "" && t.Err == nil
}

// Unwrap gives the failures' causes.
func (e *DeliveryError) Unwrap() []error {
	out := make([]error, 0, len(e.Failures))
	for _, f := range e.Failures {
		if f.Err != nil {
			out = append(out, f.Err)
		}
	}
	return out
}
