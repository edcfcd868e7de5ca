package azservicebus

import (
	"context"
	"errors"
	"net/url"
	"strings"

	sb "github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// where names an entity in errors and logs: the namespace's host and the
// entity, never the connection string's key or signature.
type where struct {
	namespace string   // host of the Endpoint, "" when unknown
	entity    string   // `queue "orders"`, `topic "t"`, `subscription "s" of topic "t"`
	secrets   []string // values scrubbed from every error text
}

func newWhere(connStr string, entity string) where {
	w := where{entity: entity}
	for _, part := range strings.Split(connStr, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "endpoint":
			if u, err := url.Parse(v); err == nil && u.Host != "" {
				w.namespace = u.Host
			}
		case "sharedaccesskey", "sharedaccesssignature":
			if v != "" {
				w.secrets = append(w.secrets, v)
			}
		}
	}
	return w
}

func (w where) String() string {
	if w.namespace == "" {
		return "azservicebus " + w.entity
	}
	return "azservicebus " + w.entity + " on " + w.namespace
}

// errorf is platform.Errorf with the secrets scrubbed from the text.
func (w where) errorf(code platform.Code, format string, args ...any) error {
	err := platform.Errorf(code, format, args...)
	if pe, ok := err.(*platform.Error); ok {
		pe.Message = w.scrub(pe.Message)
	}
	return err
}

func (w where) scrub(s string) string {
	for _, secret := range w.secrets {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	return s
}

// codeOf is the azservicebus error code of err, "" when it has none.
func codeOf(err error) sb.Code {
	var e *sb.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func conditionOf(err error) amqp.ErrCond {
	var e *amqp.Error
	if errors.As(err, &e) {
		return e.Condition
	}
	return ""
}

// explain wraps the error of an SDK call (op: "send", "receive", ...)
// with what it means and what fixes it. Errors that no retry can fix for
// one message (too large) are marked bridges.Refused; everything else may
// succeed when tried again, and is, with backoff.
func (w where) explain(op string, err error) error {
	if err == nil {
		return nil
	}
	code := platform.CodeBridgeDelivery
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return w.errorf(code, "%s: %s: %w", w, op, err)
	case errors.Is(err, sb.ErrMessageTooLarge), conditionOf(err) == amqp.ErrCondMessageSizeExceeded:
		return bridges.Refused(w.errorf(code, "%s: %s: the message is larger than the entity accepts (%w): send smaller messages, or use a Premium namespace with a larger max message size", w, op, err))
	}
	switch codeOf(err) {
	case sb.CodeUnauthorizedAccess:
		return w.errorf(code, "%s: %s: not authorized (%w): give the connection string's shared access policy the %s claim on this entity, or replace an expired signature", w, op, err, claim(op))
	case sb.CodeNotFound:
		return w.errorf(code, "%s: %s: the entity does not exist (%w): create it in the namespace, or correct the queue, topic or subscription setting", w, op, err)
	case sb.CodeConnectionLost:
		return w.errorf(code, "%s: %s: the connection was lost and the SDK's retries ran out (%w): retrying with backoff; check that the namespace is reachable (AMQP on TCP 5671)", w, op, err)
	case sb.CodeLockLost:
		return w.errorf(code, "%s: %s: the lock expired or was lost (%w): the message will be delivered again; raise the entity's lock duration, or keep lock_renew on", w, op, err)
	case sb.CodeTimeout:
		return w.errorf(code, "%s: %s: Service Bus timed out (%w): retrying", w, op, err)
	case sb.CodeClosed:
		return w.errorf(code, "%s: %s: the link is closed (%w): a new one is opened", w, op, err)
	}
	switch conditionOf(err) {
	case amqp.ErrCondNotAllowed, amqp.ErrCondInvalidField:
		return w.errorf(code, "%s: %s: Service Bus refused the operation (%w): if the entity requires sessions set sessions=true, if it does not set sessions=false", w, op, err)
	case amqp.ErrCondResourceLimitExceeded:
		return w.errorf(code, "%s: %s: the entity is full (%w): retrying; drain it, or raise its maximum size", w, op, err)
	case "com.microsoft:entity-disabled":
		return w.errorf(code, "%s: %s: the entity is disabled (%w): enable it in the namespace", w, op, err)
	}
	return w.errorf(code, "%s: %s: %w", w, op, err)
}

func claim(op string) string {
	if strings.HasPrefix(op, "send") {
		return "Send"
	}
	return "Listen"
}

// reusable reports whether a receiver whose call failed may be called
// again: the SDK closes what broke and opens its connection and links
// again on the next call, whatever the error, until the receiver is
// closed.
func reusable(err error) bool {
	return codeOf(err) != sb.CodeClosed
}
