package handlers

import (
	"reflect"
	"testing"

	"github.com/lexigram/events/platform"
)

type (
	wirePlacedV1 struct{ Amount int }
	wirePlacedV2 struct{ Cents int }
	wireBundleV1 struct{ Amount int }
	wireShipped  struct{ Via string }
)

// A command result from a handler process that writes older versions
// reads, in a caller that knows newer ones, as the store would read the
// events: upcast, split; an unknown version keeps a nil Event.
func TestRemoteResultEventsAreUpcast(t *testing.T) {
	handler, caller := platform.NewRegistry(), platform.NewRegistry()
	for _, reg := range []*platform.Registry{handler, caller} {
		platform.MustRegister[wirePlacedV1](reg, "wire.placed", 1)
		platform.MustRegister[wireBundleV1](reg, "wire.bundle", 1)
	}
	platform.MustRegister[wirePlacedV2](caller, "wire.placed", 2)
	platform.MustRegister[wireShipped](caller, "wire.shipped", 1)
	platform.MustUpcast(caller, func(e wirePlacedV1) wirePlacedV2 { return wirePlacedV2{Cents: e.Amount} })
	platform.MustUpcastMany(caller, func(e wireBundleV1) []any { return []any{wirePlacedV1(e), wireShipped{Via: "post"}} })

	stream := platform.StreamID{Type: "wire", ID: "1"}
	res := CommandResult{Aggregate: stream, Version: 3, Position: 30, Events: []platform.Envelope{
		{ID: "E1", Type: "wire.placed", SchemaVersion: 1, Stream: stream, Version: 1, Position: 28, Event: wirePlacedV1{Amount: 1}},
		{ID: "E2", Type: "wire.bundle", SchemaVersion: 1, Stream: stream, Version: 2, Position: 29, Event: wireBundleV1{Amount: 2}},
		{ID: "E3", Type: "wire.placed", SchemaVersion: 7, Stream: stream, Version: 3, Position: 30, Event: wirePlacedV1{Amount: 3}},
	}}
	data, err := encodeResult(platform.Msgpack, res)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeResult(platform.Msgpack, caller, data)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id      string
		version uint64
		event   any
	}{{"E1", 1, wirePlacedV2{Cents: 1}}, {"E2", 2, wirePlacedV2{Cents: 2}}, {"E2.2", 2, wireShipped{Via: "post"}}, {"E3", 3, nil}}
	if len(got.Events) != len(want) {
		t.Fatalf("decoded %d events, want %d: %+v", len(got.Events), len(want), got.Events)
	}
	for i, w := range want {
		e := got.Events[i]
		if e.ID != w.id || e.Version != w.version || !reflect.DeepEqual(e.Event, w.event) {
			t.Fatalf("event %d = %s v%d %#v, want %s v%d %#v", i, e.ID, e.Version, e.Event, w.id, w.version, w.event)
		}
	}
	if e := got.Events[3]; e.Type != "wire.placed" || e.SchemaVersion != 7 {
		t.Fatalf("the undecodable event lost its stored type: %+v", e)
	}
}
