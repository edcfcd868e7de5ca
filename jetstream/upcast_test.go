package jetstream_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lexigram/events/platform"
)

type (
	placedV2 struct {
		Customer string
		Channel  string
	}
	bundleV1 struct{ Customer string }
	noteV1   struct{ Text string }
)

// Decode and DecodeAll, the durable handlers' way in, read a stored
// message as the iterators do: upcast, split, retired. Decode takes only
// messages that read as exactly one event and points to DecodeAll for the
// others.
func TestDecodeUpcastMessages(t *testing.T) {
	r := newR1(t)
	platform.MustRegister[bundleV1](r.reg, "order.bundle", 1)
	platform.MustRegister[noteV1](r.reg, "order.note", 1)
	id := platform.StreamID{Type: "order", ID: "o-1"}
	if _, err := r.store.Append(context.Background(), id, platform.NoStream(), events(orderPlaced{Customer: "ada"}, bundleV1{Customer: "bob"}, noteV1{Text: "x"})); err != nil {
		t.Fatal(err)
	}
	platform.MustRegister[placedV2](r.reg, "order.placed", 2)
	platform.MustUpcast(r.reg, func(e orderPlaced) placedV2 { return placedV2{Customer: e.Customer, Channel: "web"} })
	platform.MustUpcastMany(r.reg, func(e bundleV1) []any { return []any{orderPlaced(e), itemAdded{SKU: "gift"}} })
	platform.MustRetire[noteV1](r.reg)
	if r.store.Registry() != r.reg {
		t.Fatal("Registry() is not the registry the store decodes with")
	}
	subject, err := r.store.Subject(id)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := r.js.Stream(context.Background(), r.store.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	wantParts := []int{1, 2, 1}
	for seq := uint64(1); seq <= 3; seq++ {
		m, err := stream.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		all, err := r.store.DecodeAll(subject, seq, m.Time, m.Header, m.Data, nil)
		if err != nil || len(all) != wantParts[seq-1] {
			t.Fatalf("DecodeAll of position %d = %+v, %v; want %d envelopes", seq, all, err, wantParts[seq-1])
		}
		one, err := r.store.Decode(subject, seq, m.Time, m.Header, m.Data)
		switch seq {
		case 1:
			if err != nil || one.Event != (placedV2{Customer: "ada", Channel: "web"}) || one.SchemaVersion != 2 || one.Origin.SchemaVersion != 1 || one.Position != 1 {
				t.Fatalf("Decode of an upcast event = %+v, %v", one, err)
			}
		case 2:
			if all[0].Event != (placedV2{Customer: "bob", Channel: "web"}) || all[1].Event != (itemAdded{SKU: "gift"}) {
				t.Fatalf("DecodeAll of the split = %+v", all)
			}
			fallthrough
		case 3:
			if !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), "DecodeAll") {
				t.Fatalf("Decode of a message read as %d events: %v, want an error pointing to DecodeAll", len(all), err)
			}
			if seq == 3 && !all[0].Retired() {
				t.Fatalf("DecodeAll of a retired event = %+v, want its marker", all)
			}
		}
	}
}
