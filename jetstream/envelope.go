package jetstream

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// TypeHeader carries a stored event's type name, so a reader can route or
// skip an event without decoding it.
const TypeHeader = hdrType

// IDHeader carries a stored event's ID.
const IDHeader = hdrID

// CodecHeader names the codec a stored event's body was encoded with.
const CodecHeader = hdrCodec

// KeyHeader names the data key a sealed event's body is encrypted with
// (platform.Sealer, package encryption); events stored as encoded have
// none.
const KeyHeader = hdrKey

// SchemaHeader carries a stored event's schema version, with TypeHeader
// what a reader asks the registry about (platform.Registry.Resolve) to
// route an event without decoding it.
const SchemaHeader = hdrSchema

// Headers of a stored event. The aggregate type and ID are in the subject,
// the position and time in the stream's own metadata.
const (
	hdrID          = "Lx-Id"
	hdrType        = "Lx-Type"
	hdrSchema      = "Lx-Schema"
	hdrVersion     = "Lx-Version"
	hdrCodec       = "Lx-Codec"
	hdrKey         = "Lx-Key"
	hdrCorrelation = "Lx-Correlation"
	hdrCausation   = "Lx-Causation"
	hdrMetaPrefix  = "Lx-Meta-"
)

// newMsg builds the message for one prepared event. The version and
// expected-sequence headers are placeholders until the append knows them
// (setVersion).
//
// The event ID also goes in Nats-Msg-Id, for the server's duplicate window,
// only when dedupe is set: for appends that expect Any version. Every other
// append names the version it writes, so its expected sequence already
// stops a second copy for good, and landed tells a retry whose first
// attempt was stored from a conflict. The window would add nothing to
// those, yet the server keeps an entry per event for the whole window (two
// minutes by default) and spends about 1.3 µs on it per publish
// (docs/benchmarks.md).
func (s *EventStore) newMsg(subject string, e *platform.Envelope, body []byte, dedupe, batch bool) *nats.Msg {
	// Sized for every header the message will carry: a map of up to eight
	// is one allocation, and a larger one must not grow while being filled.
	n := 7 + len(e.Metadata) // ID, type, schema, codec, version, expected sequence, previous hash
	for _, more := range [...]bool{dedupe, e.CorrelationID != "", e.CausationID != "", e.KeyID != ""} {
		if more {
			n++
		}
	}
	if batch {
		n += 3 // the batch's ID, sequence and commit
	}
	h := make(nats.Header, n)
	// One backing array for the header values saves an allocation per header.
	vals := &[...]string{e.ID, e.Type, strconv.Itoa(e.SchemaVersion), s.codec.Name(), e.CorrelationID, e.CausationID, ""}
	h[hdrID] = vals[0:1:1]
	if dedupe {
		h[jetstream.MsgIDHeader] = vals[0:1:1]
	}
	h[hdrType] = vals[1:2:2]
	h[hdrSchema] = vals[2:3:3]
	h[hdrCodec] = vals[3:4:4]
	if e.CorrelationID != "" {
		h[hdrCorrelation] = vals[4:5:5]
	}
	if e.CausationID != "" {
		h[hdrCausation] = vals[5:6:6]
	}
	h[hdrVersion] = vals[6:7:7]
	if e.KeyID != "" {
		h[hdrKey] = []string{e.KeyID}
	}
	for k, v := range e.Metadata {
		h[hdrMetaPrefix+k] = []string{v}
	}
	return &nats.Msg{Subject: subject, Header: h, Data: body}
}

// eventID reads a stored event's ID. Events stored before Lx-Id existed
// carry it in Nats-Msg-Id only.
func eventID(h nats.Header) string {
	if id := h.Get(hdrID); id != "" {
		return id
	}
	return h.Get(jetstream.MsgIDHeader)
}

// setVersion sets the aggregate version of a message from newMsg.
func setVersion(m *nats.Msg, version uint64) {
	m.Header[hdrVersion][0] = strconv.FormatUint(version, 10)
}

// msgSize estimates the bytes a message takes against max_payload, which
// the server counts as headers plus body.
func msgSize(m *nats.Msg) int {
	n := len(m.Data) + len("NATS/1.0\r\n\r\n")
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// subjects remembers the last subject parsed: reads meet the same
// aggregate many times in a row.
type subjects struct {
	prefix  string
	subject string
	stream  platform.StreamID
}

func (c *subjects) streamOf(subject string) (platform.StreamID, error) {
	if subject == c.subject {
		return c.stream, nil
	}
	st, err := streamOf(c.prefix, subject)
	if err == nil {
		c.subject, c.stream = subject, st
	}
	return st, err
}

// Decode turns a message of the store's stream, as a consumer, a direct
// get or a copy of it delivers it, into an envelope: the event decoded
// with the store's registry and upcast to its current version, position =
// the stream sequence. A message that reads as several events or none (an
// event split or retired on read) is an error telling to use DecodeAll.
// Errors are *platform.DecodeError, with platform.CodeCorruptEvent or
// platform.CodeUnknownEventType: such a message can never be handled and
// should not be retried.
func (s *EventStore) Decode(subject string, position uint64, stored time.Time, h nats.Header, data []byte) (platform.Envelope, error) {
	var one [1]platform.Envelope
	out, err := s.DecodeAll(subject, position, stored, h, data, one[:0])
	if err != nil {
		return platform.Envelope{}, err
	}
	if n := len(out); n != 1 || out[0].Retired() {
		if n == 1 {
			n = 0 // the marker of a retired event
		}
		return platform.Envelope{}, platform.Errorf(platform.CodeInvalidArgument, "event at position %d on %s reads as %d events (type %q version %s, upcast): use DecodeAll",
			position, subject, n, h.Get(hdrType), h.Get(hdrSchema))
	}
	return out[0], nil
}

// DecodeAll is Decode for a message that may read as several events or
// none: it appends to out the envelopes the message reads as, the same
// that Read, ReadAll and Subscribe yield for it: one, the parts of an
// event split on read (platform.Origin), or the marker of a retired one
// (platform.Envelope.Retired).
func (s *EventStore) DecodeAll(subject string, position uint64, stored time.Time, h nats.Header, data []byte, out []platform.Envelope) ([]platform.Envelope, error) {
	names := subjects{prefix: s.opts.SubjectPrefix}
	return s.decode(context.Background(), &names, subject, position, stored, h, data, out)
}

// Registry is the registry the store decodes with.
func (s *EventStore) Registry() *platform.Registry { return s.registry }

// decode appends the envelopes a stored message reads as to out. Anything
// missing or unreadable is a *platform.DecodeError naming the position.
func (s *EventStore) decode(ctx context.Context, names *subjects, subject string, seq uint64, tm time.Time, h nats.Header, data []byte, out []platform.Envelope) ([]platform.Envelope, error) {
	corrupt := func(e platform.Envelope, format string, args ...any) ([]platform.Envelope, error) {
		return out, &platform.DecodeError{Stream: e.Stream, Version: e.Version, Position: seq, Type: h.Get(hdrType), SchemaVersion: e.SchemaVersion,
			Err: platform.Errorf(platform.CodeCorruptEvent, "on %s: "+format, append([]any{subject}, args...)...)}
	}
	stream, err := names.streamOf(subject)
	if err != nil {
		return corrupt(platform.Envelope{}, "%w", err)
	}
	e := platform.Envelope{
		ID:            eventID(h),
		Type:          h.Get(hdrType),
		Stream:        stream,
		Position:      seq,
		Time:          tm,
		CorrelationID: h.Get(hdrCorrelation),
		CausationID:   h.Get(hdrCausation),
		KeyID:         h.Get(hdrKey),
	}
	if e.Version, err = strconv.ParseUint(h.Get(hdrVersion), 10, 64); err != nil {
		return corrupt(e, "bad %s header: %w", hdrVersion, err)
	}
	if e.SchemaVersion, err = strconv.Atoi(h.Get(hdrSchema)); err != nil {
		return corrupt(e, "bad %s header: %w", hdrSchema, err)
	}
	for k, vs := range h {
		if key, ok := strings.CutPrefix(k, hdrMetaPrefix); ok && len(vs) > 0 {
			if e.Metadata == nil {
				e.Metadata = make(map[string]string)
			}
			e.Metadata[key] = vs[0]
		}
	}
	codec := s.codec
	if name := h.Get(hdrCodec); name != codec.Name() {
		if codec, err = platform.CodecByName(name); err != nil {
			return corrupt(e, "%w", err)
		}
	}
	return s.registry.DecodeEnvelopeContext(ctx, codec, &e, data, out)
}

// versionOf reads the aggregate version header of a stored message.
func versionOf(h nats.Header, seq uint64) (uint64, error) {
	v, err := strconv.ParseUint(h.Get(hdrVersion), 10, 64)
	if err != nil {
		return 0, platform.Errorf(platform.CodeCorruptEvent, "event at position %d: bad %s header: %w", seq, hdrVersion, err)
	}
	return v, nil
}
