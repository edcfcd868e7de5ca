package handlers

import (
	"bytes"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lexigram/events/platform"
)

// The wire format of a remote command or query. Its type is the subject's
// last tokens; its body is the message encoded with the bus's codec.
//
// What every request carries, its ID and the time its caller has left,
// goes ahead of the body in a request prefix (see appendPrefix). NATS
// headers cost both processes about 4 µs a request just by being there,
// the same with one header as with two, out of the 25–30 µs a bus added
// to a raw round trip on the bench machine. What only some requests carry
// travels in headers: the correlation ID when it is not the message's ID,
// the causation ID, a command's idempotency key, the codec when it is not
// msgpack, and the W3C trace context ("traceparent", "tracestate"). A
// sender that is not a lexigram bus sends a plain body, JSON without a
// codec header (wire_json.go), and may put the ID and the time left in
// headers.
// Errors come back in the micro service error headers (micro.ErrorHeader,
// micro.ErrorCodeHeader) with the platform code as the error code.
const (
	HeaderID            = "Lexigram-Id"             // absent (and no prefix): the serving side makes one
	HeaderCorrelationID = "Lexigram-Correlation-Id" // absent: the message's ID
	HeaderCausationID   = "Lexigram-Causation-Id"
	// HeaderIdempotencyKey is a command's idempotency key (see
	// Idempotency), as the caller gave it. Absent: the command's
	// IdempotencyKey method's, if it has one, or none.
	HeaderIdempotencyKey = "Lexigram-Idempotency-Key"
	// HeaderTenant carries platform.Tenant of the sender's context; the
	// handler's context has it (platform.WithTenant).
	HeaderTenant = "Lexigram-Tenant"
	HeaderCodec  = "Lexigram-Codec" // absent: msgpack
	// HeaderTimeout is the caller's remaining time as a Go duration, cut
	// to the millisecond. A duration, not a deadline, so clock skew between
	// hosts does not matter. Absent (and no prefix): the serving Remote's
	// Timeout.
	HeaderTimeout = "Lexigram-Timeout"
)

// A request prefix is 0xC1 'L', a length byte n, then n bytes of text:
// the ID, one space, and the time left as in HeaderTimeout. 0xC1 is the
// one byte msgpack never uses and never starts UTF-8 text, so no msgpack
// or JSON body can be taken for a prefix.
const (
	prefixMark   = 0xC1
	prefixMarkL  = 'L'
	maxPrefixLen = 255
)

// appendPrefix appends the request prefix; false when the ID is too long
// for it, and then the ID and time left go in headers.
func appendPrefix(b []byte, id, timeLeft string) ([]byte, bool) {
	n := len(id) + 1 + len(timeLeft)
	if n > maxPrefixLen {
		return b, false
	}
	b = append(b, prefixMark, prefixMarkL, byte(n))
	b = append(b, id...)
	b = append(b, ' ')
	return append(b, timeLeft...), true
}

// cutPrefix splits a request into its prefix's ID and time left and its
// body; ok is false when data has no prefix.
func cutPrefix(data []byte) (id, timeLeft string, body []byte, ok bool, err error) {
	if len(data) < 2 || data[0] != prefixMark || data[1] != prefixMarkL {
		return "", "", data, false, nil
	}
	if len(data) < 3 || len(data) < 3+int(data[2]) {
		return "", "", nil, true, platform.Errorf(platform.CodeInvalidArgument,
			"the request prefix (0xC1 'L' and a length) runs past the message's %d bytes: send the prefix whole, or a plain body", len(data))
	}
	text := data[3 : 3+int(data[2])]
	sp := bytes.LastIndexByte(text, ' ')
	if sp < 0 {
		return "", "", nil, true, platform.Errorf(platform.CodeInvalidArgument,
			"the request prefix %q has no space between the ID and the time left: send \"<id> <duration>\"", text)
	}
	return string(text[:sp]), string(text[sp+1:]), data[3+len(text):], true, nil
}

// traceparent is the W3C trace context header, which TraceContext reads.
const traceparent = "traceparent"

// headerCarrier lets OpenTelemetry propagators read and write NATS headers.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string { return nats.Header(c).Get(key) }
func (c headerCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// wireError is an error's chain of codes and messages, so the caller can
// rebuild errors that errors.Is and errors.As recognise.
type wireError struct {
	Code        string           `msgpack:"c" json:"code"`
	Message     string           `msgpack:"m" json:"message"`
	Concurrency *wireConcurrency `msgpack:"x,omitempty" json:"concurrency,omitempty"`
	Cause       *wireError       `msgpack:"w,omitempty" json:"cause,omitempty"`
}

type wireConcurrency struct {
	Stream   platform.StreamID `msgpack:"s" json:"stream"`
	Expected uint64            `msgpack:"e" json:"expected"`
	Any      bool              `msgpack:"a" json:"any"`
	Actual   uint64            `msgpack:"v" json:"actual"`
}

// toWire keeps every error in err's chain that has a code; the messages of
// the others are already part of their parent's message.
func toWire(err error) *wireError {
	var top, last *wireError
	for e := err; e != nil; e = errors.Unwrap(e) {
		var w *wireError
		switch x := e.(type) {
		case *platform.ConcurrencyError:
			exp, ok := x.Expected.Expected()
			w = &wireError{Code: string(platform.CodeConcurrency), Message: x.Error(),
				Concurrency: &wireConcurrency{Stream: x.Stream, Expected: exp, Any: !ok, Actual: x.Actual}}
		case interface{ ErrorCode() platform.Code }:
			w = &wireError{Code: string(x.ErrorCode()), Message: messageOf(e)}
		}
		if w == nil {
			continue
		}
		if top == nil {
			top = w
		} else {
			last.Cause = w
		}
		last = w
	}
	if top == nil {
		return &wireError{Message: err.Error()}
	}
	if top.Message == "" {
		top.Message = err.Error()
	}
	return top
}

func messageOf(err error) string {
	if pe, ok := err.(*platform.Error); ok {
		return pe.Message
	}
	return err.Error()
}

// fromWire rebuilds the chain: *platform.ConcurrencyError where one was
// sent, *platform.Error otherwise.
func fromWire(w *wireError) error {
	if w == nil {
		return nil
	}
	if c := w.Concurrency; c != nil {
		exp := platform.Exact(c.Expected)
		if c.Any {
			exp = platform.Any()
		}
		return &platform.ConcurrencyError{Stream: c.Stream, Expected: exp, Actual: c.Actual}
	}
	e := &platform.Error{Code: platform.Code(w.Code), Message: w.Message}
	if cause := fromWire(w.Cause); cause != nil {
		e.Err = cause
	}
	return e
}

// headerText makes a message fit in a NATS header value.
func headerText(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r\n", "; ", "\n", "; ", "\r", " ").Replace(s)
	}
	if s == "" {
		s = "error"
	}
	return s
}

// wireResult is a CommandResult on the wire. Events carry their encoded
// bodies; the caller decodes them with its registry.
type wireResult struct {
	//lint:ignore U1000 msgpack reads the tag: fields by position, faster than by name
	_msgpack  struct{}          `msgpack:",as_array"`
	Aggregate platform.StreamID `msgpack:"a" json:"aggregate"`
	Version   uint64            `msgpack:"v" json:"version"`
	Position  uint64            `msgpack:"p" json:"position"`
	Events    []wireEvent       `msgpack:"e" json:"events"`
	Changes   []Change          `msgpack:"c" json:"changes"`
}

type wireEvent struct {
	//lint:ignore U1000 msgpack reads the tag
	_msgpack      struct{}          `msgpack:",as_array"`
	ID            string            `msgpack:"i" json:"id"`
	Type          string            `msgpack:"t" json:"type"`
	SchemaVersion int               `msgpack:"s" json:"schema_version"`
	Stream        platform.StreamID `msgpack:"a" json:"stream"`
	Version       uint64            `msgpack:"v" json:"version"`
	Position      uint64            `msgpack:"p" json:"position"`
	Time          time.Time         `msgpack:"z" json:"time"`
	CorrelationID string            `msgpack:"r" json:"correlation_id"`
	CausationID   string            `msgpack:"u" json:"causation_id"`
	Metadata      map[string]string `msgpack:"m,omitempty" json:"metadata,omitempty"`
	Data          []byte            `msgpack:"d" json:"data"`
}

// encodeResult encodes a CommandResult for the caller; a command that
// changed nothing gets an empty body in msgpack (JSON: wire_json.go).
func encodeResult(c platform.Codec, res CommandResult) ([]byte, error) {
	if c.Name() == platform.JSON.Name() {
		return encodeResultJSON(c, res)
	}
	if len(res.Changes) == 0 && len(res.Events) == 0 && res.Aggregate == (platform.StreamID{}) && res.Version == 0 && res.Position == 0 {
		return nil, nil
	}
	w := wireResult{Aggregate: res.Aggregate, Version: res.Version, Position: res.Position, Changes: res.Changes}
	if len(res.Events) > 0 {
		w.Events = make([]wireEvent, len(res.Events))
	}
	for i, e := range res.Events {
		data, err := c.Marshal(e.Event)
		if err != nil {
			return nil, err
		}
		w.Events[i] = wireEvent{ID: e.ID, Type: e.Type, SchemaVersion: e.SchemaVersion, Stream: e.Stream, Version: e.Version,
			Position: e.Position, Time: e.Time, CorrelationID: e.CorrelationID, CausationID: e.CausationID, Metadata: e.Metadata, Data: data}
	}
	return c.Marshal(w)
}

// decodeResult decodes a remote CommandResult. Events are read as a store
// reads them: upcast to the current version of this process's registry,
// which may be newer than the handler's, and split or retired as it says.
// An event whose type or version this process has not registered keeps a
// nil Event; its other fields are set.
func decodeResult(c platform.Codec, reg *platform.Registry, data []byte) (CommandResult, error) {
	if len(data) == 0 {
		return CommandResult{}, nil
	}
	if c.Name() == platform.JSON.Name() {
		return decodeResultJSON(reg, data)
	}
	var w wireResult
	if err := c.Unmarshal(data, &w); err != nil {
		return CommandResult{}, err
	}
	res := CommandResult{Aggregate: w.Aggregate, Version: w.Version, Position: w.Position, Changes: w.Changes}
	if len(w.Events) > 0 {
		res.Events = make([]platform.Envelope, 0, len(w.Events))
	}
	for _, e := range w.Events {
		env := platform.Envelope{ID: e.ID, Type: e.Type, SchemaVersion: e.SchemaVersion, Stream: e.Stream, Version: e.Version,
			Position: e.Position, Time: e.Time, CorrelationID: e.CorrelationID, CausationID: e.CausationID, Metadata: e.Metadata}
		var err error
		if res.Events, err = reg.DecodeEnvelope(c, &env, e.Data, res.Events); err != nil {
			res.Events = append(res.Events, env)
		}
	}
	return res, nil
}
