package jetstream_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

type itemAdded struct {
	SKU string
	Qty int
}

type orderPlaced struct {
	Customer string
}

func testRegistry() *platform.Registry {
	reg := platform.NewRegistry()
	platform.MustRegister[itemAdded](reg, "order.item-added", 1)
	platform.MustRegister[orderPlaced](reg, "order.placed", 1)
	return reg
}

// r1 is an R1 file store on a throwaway embedded server with fsync
// before ack, and the raw JetStream handle under it.
type r1 struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	store *lxjs.EventStore
	reg   *platform.Registry
}

func newR1(t *testing.T, opts ...func(*lxjs.Options)) r1 {
	t.Helper()
	s := embeddedtest.Server(t)
	nc := embeddedtest.Conn(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	o := lxjs.Options{Registry: testRegistry(), Logger: embeddedtest.Logger(t)}
	for _, f := range opts {
		f(&o)
	}
	st, err := lxjs.New(context.Background(), js, o)
	if err != nil {
		t.Fatal(err)
	}
	return r1{nc: nc, js: js, store: st, reg: o.Registry}
}

// readAll collects an aggregate's events or fails the test.
func readStream(t *testing.T, st platform.EventStore, id platform.StreamID) []platform.Envelope {
	t.Helper()
	var out []platform.Envelope
	for e, err := range st.Read(context.Background(), id, platform.Revision{}) {
		if err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		out = append(out, e)
	}
	return out
}

func events(evs ...any) []platform.Envelope {
	out := make([]platform.Envelope, len(evs))
	for i, e := range evs {
		out[i] = platform.Envelope{Event: e}
	}
	return out
}
