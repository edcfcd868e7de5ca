package handlers

import (
	"reflect"
	"testing"
	"time"

	"github.com/lexigram/events/platform"
)

type jsonPlaced struct{ Customer string }

// A result in JSON decodes to what was encoded, durability included; and
// a result in the earlier JSON form (base64 event bodies, as remembered
// by Idempotency before) still decodes.
func TestJSONResultRoundTripAndEarlierForm(t *testing.T) {
	reg := platform.NewRegistry()
	platform.MustRegister[jsonPlaced](reg, "json.placed", 1)
	stream := platform.StreamID{Type: "order", ID: "o-1"}
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	res := CommandResult{Aggregate: stream, Version: 2, Position: 7,
		Events: []platform.Envelope{{ID: "e-1", Type: "json.placed", SchemaVersion: 1, Stream: stream, Version: 2, Position: 7, Time: when,
			CorrelationID: "c-1", CausationID: "m-1", Event: jsonPlaced{Customer: "ada"}}},
		Changes: []Change{{Aggregate: stream, Result: platform.AppendResult{FirstVersion: 2, LastVersion: 2, FirstPosition: 7, LastPosition: 7,
			Durability: platform.Durability{Storage: "file", Replicas: 3}}}}}

	data, err := encodeResult(platform.JSON, res)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeResult(platform.JSON, reg, data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, res) {
		t.Errorf("round trip of %s:\n got %+v\nwant %+v", data, got, res)
	}

	// The earlier form: wireResult marshalled by the JSON codec.
	body, _ := platform.JSON.Marshal(jsonPlaced{Customer: "ada"})
	e := res.Events[0]
	old, err := platform.JSON.Marshal(wireResult{Aggregate: stream, Version: 2, Position: 7, Changes: res.Changes,
		Events: []wireEvent{{ID: e.ID, Type: e.Type, SchemaVersion: 1, Stream: stream, Version: 2, Position: 7, Time: when,
			CorrelationID: "c-1", CausationID: "m-1", Data: body}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err = decodeResult(platform.JSON, reg, old); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, res) {
		t.Errorf("earlier form %s:\n got %+v\nwant %+v", old, got, res)
	}

	// A command that changed nothing is an object in JSON, empty in msgpack.
	if data, _ := encodeResult(platform.JSON, CommandResult{}); string(data) != `{"version":0,"position":0,"events":[],"changes":[]}` {
		t.Errorf("JSON of no change: %s", data)
	}
	if data, _ := encodeResult(platform.Msgpack, CommandResult{}); len(data) != 0 {
		t.Errorf("msgpack of no change: %q, want empty", data)
	}
}
