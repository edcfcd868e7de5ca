package handlers

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/lexigram/events/platform"
)

// JSON on the wire, for clients that are not lexigram buses: `nats req`,
// a script, a service in another language (doc.go says how to call).
//
// A request without a Lexigram-Codec header whose body, after JSON
// white space, starts with '{' or '[' is JSON: no msgpack encoding of a
// struct, map or array starts with those bytes (they are the positive
// fixints 0x7b and 0x5b, and a lone integer is one byte), so a body from
// a msgpack bus is never taken for JSON. Such a request is decoded
// strictly (an unknown field is an error naming it, as over HTTP) and
// answered in JSON, errors included.

// looksLikeJSON reports whether a body without a codec header is JSON.
func looksLikeJSON(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) >= 2 && (b[0] == '{' || b[0] == '[')
}

// plainJSON is the codec of requests found to be JSON: json, decoding
// strictly. Its Name is "json", so results and errors encode as the JSON
// codec's do.
var plainJSON platform.Codec = plainJSONCodec{}

type plainJSONCodec struct{}

func (plainJSONCodec) Name() string                  { return platform.JSON.Name() }
func (plainJSONCodec) Marshal(v any) ([]byte, error) { return platform.JSON.Marshal(v) }
func (plainJSONCodec) Unmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return platform.Errorf(platform.CodeInvalidArgument, "the body holds more than one JSON value: send one")
	}
	return nil
}

// requestCodec is the codec of a served request: the header's, else JSON
// for a body that looks like it, else msgpack. With an unknown codec name
// it also returns the codec to answer the error in.
func requestCodec(name string, body []byte) (platform.Codec, error) {
	if name == "" {
		if looksLikeJSON(body) {
			return plainJSON, nil
		}
		return platform.Msgpack, nil
	}
	c, err := platform.CodecByName(name)
	if err != nil {
		if looksLikeJSON(body) {
			return plainJSON, err
		}
		return platform.Msgpack, err
	}
	return c, nil
}

// jsonResult is a CommandResult in JSON, in the form of the HTTP API's
// command result: events carry their decoded JSON under "event", so a
// person or a script reads them as they are.
type jsonResult struct {
	Aggregate *jsonAggregate `json:"aggregate,omitempty"` // nil: the command changed nothing
	Version   uint64         `json:"version"`
	Position  uint64         `json:"position"`
	Events    []jsonEvent    `json:"events"`
	Changes   []jsonChange   `json:"changes"`
}

type jsonAggregate struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type jsonEvent struct {
	ID            string            `json:"id"`
	Type          string            `json:"type"`
	SchemaVersion int               `json:"schema_version"`
	AggregateType string            `json:"aggregate_type"`
	AggregateID   string            `json:"aggregate_id"`
	Version       uint64            `json:"version"`
	Position      uint64            `json:"position"`
	Time          time.Time         `json:"time,omitzero"`
	CorrelationID string            `json:"correlation_id,omitempty"`
	CausationID   string            `json:"causation_id,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	Event         json.RawMessage   `json:"event,omitempty"`

	// The earlier JSON form (wireEvent's): read, never written, so
	// remembered idempotent results from before still decode.
	Stream *platform.StreamID `json:"stream,omitempty"`
	Data   []byte             `json:"data,omitempty"`
}

type jsonChange struct {
	Aggregate     jsonAggregate `json:"aggregate"`
	FirstVersion  uint64        `json:"first_version"`
	LastVersion   uint64        `json:"last_version"`
	FirstPosition uint64        `json:"first_position"`
	LastPosition  uint64        `json:"last_position"`
	// Durability is the store's account of what the append survives.
	Durability *platform.Durability `json:"durability,omitempty"`

	Result *platform.AppendResult `json:"result,omitempty"` // the earlier form; read only
}

// encodeResultJSON is encodeResult for the JSON codecs: always a whole
// object, also for a command that changed nothing.
func encodeResultJSON(c platform.Codec, res CommandResult) ([]byte, error) {
	out := jsonResult{Version: res.Version, Position: res.Position, Events: []jsonEvent{}, Changes: []jsonChange{}}
	if res.Aggregate != (platform.StreamID{}) {
		out.Aggregate = &jsonAggregate{res.Aggregate.Type, res.Aggregate.ID}
	}
	for _, e := range res.Events {
		data, err := c.Marshal(e.Event)
		if err != nil {
			return nil, err
		}
		out.Events = append(out.Events, jsonEvent{ID: e.ID, Type: e.Type, SchemaVersion: e.SchemaVersion, AggregateType: e.Stream.Type,
			AggregateID: e.Stream.ID, Version: e.Version, Position: e.Position, Time: e.Time, CorrelationID: e.CorrelationID,
			CausationID: e.CausationID, Metadata: e.Metadata, Event: data})
	}
	for _, ch := range res.Changes {
		jc := jsonChange{Aggregate: jsonAggregate{ch.Aggregate.Type, ch.Aggregate.ID}, FirstVersion: ch.Result.FirstVersion,
			LastVersion: ch.Result.LastVersion, FirstPosition: ch.Result.FirstPosition, LastPosition: ch.Result.LastPosition}
		if ch.Result.Durability != (platform.Durability{}) {
			d := ch.Result.Durability
			jc.Durability = &d
		}
		out.Changes = append(out.Changes, jc)
	}
	return c.Marshal(out)
}

// decodeResultJSON reads encodeResultJSON's form, and the earlier one.
func decodeResultJSON(reg *platform.Registry, data []byte) (CommandResult, error) {
	var w jsonResult
	if err := json.Unmarshal(data, &w); err != nil {
		return CommandResult{}, err
	}
	res := CommandResult{Version: w.Version, Position: w.Position}
	if w.Aggregate != nil {
		res.Aggregate = platform.StreamID{Type: w.Aggregate.Type, ID: w.Aggregate.ID}
	}
	if len(w.Changes) > 0 {
		res.Changes = make([]Change, 0, len(w.Changes))
	}
	for _, ch := range w.Changes {
		c := Change{Aggregate: platform.StreamID{Type: ch.Aggregate.Type, ID: ch.Aggregate.ID}, Result: platform.AppendResult{
			FirstVersion: ch.FirstVersion, LastVersion: ch.LastVersion, FirstPosition: ch.FirstPosition, LastPosition: ch.LastPosition}}
		if ch.Durability != nil {
			c.Result.Durability = *ch.Durability
		}
		if ch.Result != nil {
			c.Result = *ch.Result
		}
		res.Changes = append(res.Changes, c)
	}
	if len(w.Events) > 0 {
		res.Events = make([]platform.Envelope, 0, len(w.Events))
	}
	for _, e := range w.Events {
		env := platform.Envelope{ID: e.ID, Type: e.Type, SchemaVersion: e.SchemaVersion, Stream: platform.StreamID{Type: e.AggregateType, ID: e.AggregateID},
			Version: e.Version, Position: e.Position, Time: e.Time, CorrelationID: e.CorrelationID, CausationID: e.CausationID, Metadata: e.Metadata}
		body := []byte(e.Event)
		if e.Stream != nil {
			env.Stream = *e.Stream
		}
		if len(body) == 0 {
			body = e.Data
		}
		var err error
		if res.Events, err = reg.DecodeEnvelope(platform.JSON, &env, body, res.Events); err != nil {
			res.Events = append(res.Events, env)
		}
	}
	return res, nil
}
