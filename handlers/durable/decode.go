package durable

import (
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// The event store's header contract (package jetstream, envelope.go). The
// store keeps its decoder unexported, so this package reads the same
// headers itself; if jetstream ever exports a decoder, this file goes.
const (
	hdrType        = "Lx-Type"
	hdrSchema      = "Lx-Schema"
	hdrVersion     = "Lx-Version"
	hdrCodec       = "Lx-Codec"
	hdrCorrelation = "Lx-Correlation"
	hdrCausation   = "Lx-Causation"
	hdrMetaPrefix  = "Lx-Meta-"
)

// decoder turns a stored event message into an envelope.
type decoder struct {
	prefix   string // the store's subject prefix plus "."
	registry *platform.Registry
}

// streamOf parses <prefix>.<aggregate type>.<id token>.
func (d *decoder) streamOf(subject string) (platform.StreamID, error) {
	rest, ok := strings.CutPrefix(subject, d.prefix)
	typ, token, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return platform.StreamID{}, platform.Errorf(platform.CodeCorruptEvent, "subject %q is not <%s>.<aggregate type>.<aggregate id>", subject, strings.TrimSuffix(d.prefix, "."))
	}
	id, err := lxjs.DecodeToken(token)
	if err != nil {
		return platform.StreamID{}, platform.Errorf(platform.CodeCorruptEvent, "subject %q: %w", subject, err)
	}
	return platform.StreamID{Type: typ, ID: id}, nil
}

// decode builds the envelope of the event stored at seq on subject. Any
// failure carries CodeCorruptEvent or CodeUnknownEventType, which the
// handler treats as permanent.
func (d *decoder) decode(subject string, seq uint64, tm time.Time, h nats.Header, data []byte) (platform.Envelope, error) {
	stream, err := d.streamOf(subject)
	if err != nil {
		return platform.Envelope{}, err
	}
	e := platform.Envelope{
		ID:            h.Get(jetstream.MsgIDHeader),
		Type:          h.Get(hdrType),
		Stream:        stream,
		Position:      seq,
		Time:          tm,
		CorrelationID: h.Get(hdrCorrelation),
		CausationID:   h.Get(hdrCausation),
	}
	if e.Version, err = strconv.ParseUint(h.Get(hdrVersion), 10, 64); err != nil {
		return platform.Envelope{}, platform.Errorf(platform.CodeCorruptEvent, "event at position %d on %s: bad %s header: %w", seq, subject, hdrVersion, err)
	}
	if e.SchemaVersion, err = strconv.Atoi(h.Get(hdrSchema)); err != nil {
		return platform.Envelope{}, platform.Errorf(platform.CodeCorruptEvent, "event at position %d on %s: bad %s header: %w", seq, subject, hdrSchema, err)
	}
	for k, vs := range h {
		if key, ok := strings.CutPrefix(k, hdrMetaPrefix); ok && len(vs) > 0 {
			if e.Metadata == nil {
				e.Metadata = make(map[string]string)
			}
			e.Metadata[key] = vs[0]
		}
	}
	codec, err := platform.CodecByName(h.Get(hdrCodec))
	if err != nil {
		return platform.Envelope{}, platform.Errorf(platform.CodeCorruptEvent, "event at position %d on %s: %w", seq, subject, err)
	}
	if e.Event, err = d.registry.Decode(codec, e.Type, data); err != nil {
		return platform.Envelope{}, platform.Errorf(platform.CodeOf(err), "event at position %d (%s version %d): %w", seq, stream, e.Version, err)
	}
	return e, nil
}
