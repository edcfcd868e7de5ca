package bridges

import (
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/lexigram/events/platform"
)

// Headers the bridges add to what they store in JetStream or send out.
const (
	HeaderContentType = "Content-Type"
	// HeaderBridge names the bridge a dead-lettered message came through.
	HeaderBridge = "Lx-Bridge"
	// HeaderDirection is "inbound" or "outbound" on a dead-lettered message.
	HeaderDirection = "Lx-Bridge-Direction"
	// HeaderReason says why a message was dead-lettered.
	HeaderReason = "Lx-Bridge-Reason"
	// HeaderMessageID is the message's ID (Message.ID) on a dead-lettered message.
	HeaderMessageID = "Lx-Bridge-Message-Id"
	// HeaderSubject is the subject (outbound) or the broker's subject
	// (inbound) of a dead-lettered message.
	HeaderSubject = "Lx-Bridge-Subject"
	// HeaderSequence is the JetStream stream sequence of a dead-lettered
	// outbound message.
	HeaderSequence = "Lx-Bridge-Sequence"
	// HeaderTruncated is "true" on a dead-lettered message whose body was
	// left out because it did not fit.
	HeaderTruncated = "Lx-Bridge-Truncated"
)

// natsReserved reports a header name JetStream acts on: every Nats-
// header, whatever its case. None may come in from another broker: a
// Nats-TTL, Nats-Schedule or Nats-Expected-* from outside must not act on
// our streams, and a Nats-Msg-Id from outside must not replace ours.
func natsReserved(name string) bool {
	return len(name) >= 5 && strings.EqualFold(name[:5], "nats-")
}

// validHeaderName reports whether name can be a NATS header name: the
// wire format is MIME, so a colon, white space or control byte would
// corrupt the message.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// natsHeader turns the headers of a message from outside into NATS
// headers. Nats- headers are dropped; a header that NATS cannot carry
// makes the message undecodable (CodeInvalidArgument).
func natsHeader(h Header) (nats.Header, error) {
	out := make(nats.Header, len(h)+1)
	for k, v := range h {
		if natsReserved(k) {
			continue
		}
		if !validHeaderName(k) {
			return nil, platform.Errorf(platform.CodeInvalidArgument, "header name %q cannot be a NATS header: it must be printable ASCII without ':' or spaces", k)
		}
		if strings.ContainsAny(v, "\r\n") {
			return nil, platform.Errorf(platform.CodeInvalidArgument, "header %q: the value holds a line break, which NATS headers cannot carry", k)
		}
		// Set, not Add: the header is stored under the name as given, so
		// that names survive the round trip unchanged (NATS does not
		// canonicalise them either).
		out[k] = []string{v}
	}
	return out, nil
}

// oneLine makes text fit in a header value.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(s)
}
