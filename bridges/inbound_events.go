package bridges

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/lexigram/events/platform"
)

// EventAppender is what an inbound bridge that lands messages as events
// needs of the event store: jetstream.EventStore and
// platform.MemoryEventStore have it.
type EventAppender interface {
	Append(ctx context.Context, stream platform.StreamID, expected platform.ExpectedVersion, events []platform.Envelope) (platform.AppendResult, error)
}

// registryHolder is implemented by stores that know their registry
// (jetstream.EventStore).
type registryHolder interface {
	Registry() *platform.Registry
}

// InboundEvents make an inbound bridge append each message to the event
// store as an event instead of publishing it on a subject. Store is
// required; the zero value of the rest reads the event type from Lx-Type
// (which the CloudEvents formats fill from the CloudEvent's type) and the
// aggregate from the CloudEvent's lxaggregatetype and lxaggregateid, or
// its subject "<type>/<id>".
//
// Each event's ID is derived from the broker's message ID (see
// InboundOptions: the same as the Nats-Msg-Id of a plain inbound
// message), and the append expects any version, so the store's duplicate
// window stores a redelivered message once. A message whose type is not
// registered, whose body does not decode as that type or that names no
// aggregate is dead-lettered with the reason, and the bridge goes on.
type InboundEvents struct {
	Store EventAppender
	// Registry decodes the bodies; default the Store's (Registry()), else
	// platform.DefaultRegistry.
	Registry *platform.Registry
	// TypeHeader names the header holding the event type. Default Lx-Type.
	TypeHeader string
	// Types maps names from outside to registered event types: the
	// TypeHeader's value, or, when the message has none (or it is not
	// mapped), the broker's subject (routing key, topic). A type header
	// not in Types is taken as the registered name itself.
	Types map[string]string
	// AggregateType is the aggregate type when the message names none
	// (AggregateTypeHeader, the CloudEvent's lxaggregatetype or subject).
	AggregateType string
	// AggregateTypeHeader, if set, names the header with the aggregate
	// type; it wins over the CloudEvent attributes.
	AggregateTypeHeader string
	// AggregateIDHeader, if set, names the header with the aggregate ID.
	AggregateIDHeader string
	// AggregateIDField, if set, is a top-level field of the JSON body
	// holding the aggregate ID (a string or a number). Without it or
	// AggregateIDHeader, the ID is the CloudEvent's lxaggregateid, its
	// subject's "<type>/<id>", else the broker's key (Kafka's message key).
	AggregateIDField string
}

func (o *InboundEvents) defaults(bad func(string, ...any)) {
	if o.Store == nil {
		bad("events: no store: set InboundEvents.Store to the event store the messages are appended to")
	}
	if o.Registry == nil {
		if r, ok := o.Store.(registryHolder); ok {
			o.Registry = r.Registry()
		}
		if o.Registry == nil {
			o.Registry = platform.DefaultRegistry
		}
	}
	if o.TypeHeader == "" {
		o.TypeHeader = lxType
	}
	for _, from := range slices.Sorted(maps.Keys(o.Types)) {
		to := o.Types[from]
		if from == "" || to == "" {
			bad("events: type mapping %q -> %q: neither side may be empty; map a header value or broker subject to a registered event type, e.g. \"payments.received\": \"payment.received\"", from, to)
		} else if _, ok := o.Registry.Lookup(to); !ok {
			bad("events: type mapping %q -> %q: %q is not a registered event type; register it (platform.Register) or fix the name", from, to, to)
		}
	}
}

// header reads a header by name, in any case.
func header(h nats.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// eventOf builds the event a message becomes; an error means it can never
// be appended (it is dead-lettered). decoded is the message as decode
// gives it: CloudEvents attributes in ce-* headers, its Nats-Msg-Id set.
func (in *Inbound) eventOf(d *Delivery, decoded *nats.Msg) (platform.StreamID, platform.Envelope, error) {
	o := in.opts.Events
	h := decoded.Header
	var stream platform.StreamID
	fail := func(format string, args ...any) (platform.StreamID, platform.Envelope, error) {
		return stream, platform.Envelope{}, platform.Errorf(platform.CodeInvalidArgument, "bridge %s: message %q from %q: "+format, append([]any{in.opts.Name, d.ID, d.Subject}, args...)...)
	}

	name := header(h, o.TypeHeader)
	if t, ok := o.Types[name]; ok && name != "" {
		name = t
	} else if t, ok := o.Types[d.Subject]; ok && (name == "" || name == d.Subject) {
		name = t
	}
	if name == "" {
		return fail("no event type: it has no %s header and its subject is not in the bridge's type mapping; send the header, or map the subject to a registered event type", o.TypeHeader)
	}
	et, ok := o.Registry.Lookup(name)
	if !ok {
		return fail("event type %q is not registered in this process: register it (platform.Register), or map the name to a registered type", name)
	}
	if s := firstHeader(h, lxSchema, "ce-"+ceSchema); s != "" && s != strconv.Itoa(et.SchemaVersion) {
		return fail("event type %q schema version %s: this process's current version is %d; send the current version", name, s, et.SchemaVersion)
	}
	codec := platform.JSON
	if c := strings.ToLower(header(h, lxCodec)); c == "msgpack" || strings.Contains(strings.ToLower(header(h, HeaderContentType)), "msgpack") {
		codec = platform.Msgpack
	}
	event, err := o.Registry.Decode(codec, name, decoded.Data)
	if err != nil {
		return fail("the body does not decode as %q with %s: %w", name, codec.Name(), err)
	}

	ceSubType, ceSubID, ok := strings.Cut(header(h, "ce-subject"), "/")
	if !ok {
		ceSubType, ceSubID = "", "" // a subject not "<type>/<id>" names no aggregate
	}
	var fromTypeHeader string
	if o.AggregateTypeHeader != "" {
		fromTypeHeader = header(h, o.AggregateTypeHeader)
	}
	stream.Type = firstNonEmpty(fromTypeHeader, header(h, "ce-"+ceAggregateType), ceSubType, o.AggregateType)
	var fromField string
	if o.AggregateIDField != "" {
		fromField = jsonField(decoded.Data, o.AggregateIDField)
	}
	var fromHeader string
	if o.AggregateIDHeader != "" {
		fromHeader = header(h, o.AggregateIDHeader)
	}
	stream.ID = firstNonEmpty(fromHeader, fromField, header(h, "ce-"+ceAggregateID), ceSubID, d.Key)
	if stream.Type == "" || stream.ID == "" {
		return fail("no aggregate (type %q, ID %q): send the CloudEvent's lxaggregatetype and lxaggregateid (or subject \"<type>/<id>\"), or configure the bridge's aggregate type and ID header or field", stream.Type, stream.ID)
	}
	if err := stream.Validate(); err != nil {
		return fail("aggregate: %w", err)
	}

	env := platform.Envelope{
		ID:            eventID(in.opts.Name, h.Get(nats.MsgIdHdr)),
		Type:          et.Name,
		Event:         event,
		CorrelationID: firstHeader(h, lxCorrelation, "ce-"+ceCorrelation),
		CausationID:   firstHeader(h, lxCausation, "ce-"+ceCausation),
	}
	for k, vs := range h {
		if meta, ok := strings.CutPrefix(k, "Lx-Meta-"); ok && len(vs) > 0 {
			if env.Metadata == nil {
				env.Metadata = map[string]string{}
			}
			env.Metadata[meta] = vs[0]
		}
	}
	return stream, env, nil
}

// eventID turns the Nats-Msg-Id of an inbound message into an event ID:
// the same message always gives the same ID, made of letters, digits and
// '-' so that it fits wherever event IDs go (headers, keys, tokens).
func eventID(bridge, msgID string) string {
	sum := sha256.Sum256([]byte(msgID))
	return bridge + "-" + hex.EncodeToString(sum[:16])
}

func firstHeader(h nats.Header, names ...string) string {
	for _, n := range names {
		if v := header(h, n); v != "" {
			return v
		}
	}
	return ""
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// jsonField reads a top-level string or number field of a JSON object.
func jsonField(data []byte, field string) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return ""
	}
	raw, ok := obj[field]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// permanentAppendError tells append failures no retry can fix: the
// message is dead-lettered.
func permanentAppendError(err error) bool {
	switch platform.CodeOf(err) {
	case platform.CodeInvalidArgument, platform.CodeUnknownEventType, platform.CodeCorruptEvent, platform.CodeUnsupported:
		return true
	}
	return false
}

// storeEvent appends one delivery as an event, retrying with backoff
// while the store is unavailable, and settles it. false means Stop gave
// up.
func (in *Inbound) storeEvent(d *Delivery) bool {
	decoded, err := in.dec.decode(&d.Message, "")
	if err != nil {
		in.deadLetter(d, err)
		return true
	}
	stream, env, err := in.eventOf(d, decoded)
	if err != nil {
		in.deadLetter(d, err)
		return true
	}
	events := []platform.Envelope{env}
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(in.ctx, in.opts.PublishTimeout)
		_, err := in.opts.Events.Store.Append(ctx, stream, platform.Any(), events)
		cancel()
		if err == nil {
			break
		}
		if permanentAppendError(err) {
			in.deadLetter(d, platform.Errorf(platform.CodeBridgeDelivery, "bridge %s: the store refused message %q as %s on %s: %w", in.opts.Name, d.ID, env.Type, stream, err))
			return true
		}
		if in.ctx.Err() != nil {
			return false // Stop gave up: the broker delivers it again
		}
		in.m.errored(err)
		in.up.Store(false)
		if attempt == 0 {
			in.log.Warn("bridge: append to the event store failed; retrying with backoff", "stream", stream.String(), "err", err)
		}
		if !in.opts.Backoff.Sleep(in.ctx, attempt) {
			return false
		}
	}
	in.up.Store(true)
	in.m.movedN(1, len(decoded.Data))
	in.ack(d)
	return true
}
