package eventio

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/vmihailenco/msgpack/v5"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// Line is one stored event, as Export writes it.
type Line struct {
	Position      uint64      `json:"position"`
	Time          time.Time   `json:"time"`
	AggregateType string      `json:"aggregate_type"`
	AggregateID   string      `json:"aggregate_id"`
	Header        nats.Header `json:"header"` // the stored Lx-* headers
	Data          []byte      `json:"data"`   // the stored body (base64 in JSON)
}

// Stream is the line's aggregate.
func (l Line) Stream() platform.StreamID {
	return platform.StreamID{Type: l.AggregateType, ID: l.AggregateID}
}

// EventType is the stored event type name.
func (l Line) EventType() string { return l.Header.Get(lxjs.TypeHeader) }

// EventID is the stored event ID.
func (l Line) EventID() string { return l.Header.Get(lxjs.IDHeader) }

// Version is the aggregate version the event was stored at; 0 if the
// header is missing or malformed.
func (l Line) Version() uint64 {
	v, _ := strconv.ParseUint(l.Header.Get(lxjs.VersionHeader), 10, 64)
	return v
}

// Decoded is the body as plain values (maps, slices, numbers, strings),
// whatever Go type it was encoded from, or an error naming the codec.
func (l Line) Decoded() (any, error) {
	v, err := DecodePlain(l.Header.Get(lxjs.CodecHeader), l.Data)
	if err != nil && l.Header.Get(lxjs.KeyHeader) != "" {
		// Sealed whole (package encryption): only its key ring reads it.
		return map[string]any{"sealed_with_key": l.Header.Get(lxjs.KeyHeader)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("event at position %d: %w", l.Position, err)
	}
	return v, nil
}

// DecodePlain decodes data encoded with the named codec (msgpack or
// json; "" is msgpack) into plain values, without the Go type it was
// encoded from: for showing events and snapshots to people.
func DecodePlain(codec string, data []byte) (any, error) {
	var v any
	switch codec {
	case "msgpack", "":
		return v, msgpack.Unmarshal(data, &v)
	case "json":
		return v, json.Unmarshal(data, &v)
	}
	return nil, platform.Errorf(platform.CodeInvalidArgument, "codec %q is unknown here: only msgpack and json decode without their Go type", codec)
}
