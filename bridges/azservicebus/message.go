package azservicebus

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	sb "github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/nats-io/nuid"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// maxID is the longest MessageId and SessionId Service Bus takes.
const maxID = 128

// limit keeps an identifier within maxID characters: a longer one is
// replaced by a hash of it, the same every time, so that duplicate
// detection and sessions still see one value per message or key.
func limit(id string) string {
	if len(id) <= maxID {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// outgoing maps a bridge message to a Service Bus message: its ID is the
// MessageId (for the entity's duplicate detection), its subject the
// Subject, its Content-Type header the ContentType and every other header
// an application property. With sessions, its key is the SessionId (the
// aggregate ID for events, so one aggregate's events are delivered in
// order), or its subject when it has no key.
func outgoing(m *bridges.Message, sessions bool) *sb.Message {
	id := m.ID
	if id == "" {
		id = nuid.Next()
	}
	id = limit(id)
	out := &sb.Message{MessageID: &id, Body: m.Data}
	if m.Subject != "" {
		subject := m.Subject
		out.Subject = &subject
	}
	if sessions {
		key := sessionOf(m)
		out.SessionID = &key
	}
	for k, v := range m.Header {
		if k == bridges.HeaderContentType {
			ct := v
			out.ContentType = &ct
			continue
		}
		if out.ApplicationProperties == nil {
			out.ApplicationProperties = make(map[string]any, len(m.Header))
		}
		out.ApplicationProperties[k] = v
	}
	return out
}

// sessionOf is the SessionId of m on a session-enabled entity.
func sessionOf(m *bridges.Message) string {
	if m.Key != "" {
		return limit(m.Key)
	}
	return limit(m.Subject)
}

// incoming maps a received message back: MessageId to ID (the sequence
// number when it has none, which Service Bus keeps across redeliveries),
// SessionId to Key, Subject to Subject, ContentType and application
// properties to headers. An error means the message can never be
// represented (a body that is not one data section) and is dead-lettered
// on Service Bus.
func incoming(rm *sb.ReceivedMessage) (bridges.Message, error) {
	m := bridges.Message{ID: rm.MessageID, Data: rm.Body, Header: make(bridges.Header, len(rm.ApplicationProperties)+1)}
	if m.ID == "" && rm.SequenceNumber != nil {
		m.ID = "seq-" + strconv.FormatInt(*rm.SequenceNumber, 10)
	}
	if rm.SessionID != nil {
		m.Key = *rm.SessionID
	}
	if rm.Subject != nil {
		m.Subject = *rm.Subject
	}
	for k, v := range rm.ApplicationProperties {
		m.Header[k] = propertyText(v)
	}
	if rm.ContentType != nil && *rm.ContentType != "" {
		m.Header[bridges.HeaderContentType] = *rm.ContentType
	}
	if raw := rm.RawAMQPMessage; raw != nil {
		switch b := raw.Body; {
		case b.Value != nil:
			return m, platform.Errorf(platform.CodeInvalidArgument, "message %q has an AMQP value body (%T), not bytes: send the body as bytes (one data section), as the Azure SDKs do", m.ID, b.Value)
		case len(b.Sequence) > 0:
			return m, platform.Errorf(platform.CodeInvalidArgument, "message %q has an AMQP sequence body, not bytes: send the body as bytes (one data section), as the Azure SDKs do", m.ID)
		case len(b.Data) > 1:
			return m, platform.Errorf(platform.CodeInvalidArgument, "message %q has %d data sections: send the body as one", m.ID, len(b.Data))
		}
	}
	return m, nil
}

// propertyText renders an application property (any AMQP simple type)
// as a header value.
func propertyText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}
