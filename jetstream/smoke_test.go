package jetstream_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

type itemAdded struct {
	SKU string
	Qty int
}

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	s := embeddedtest.Server(t)
	js, _ := jetstream.New(embeddedtest.Conn(t, s))
	reg := platform.NewRegistry()
	platform.MustRegister[itemAdded](reg, "order.item-added", 1)
	st, err := lxjs.New(ctx, js, lxjs.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	id := platform.StreamID{Type: "order", ID: "a.b*c>d"}
	res, err := st.Append(ctx, id, platform.NoStream(), []platform.Envelope{{Event: itemAdded{"x", 1}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	res, err = st.Append(ctx, id, platform.ExactRevision(res.Revision()), []platform.Envelope{{Event: itemAdded{"y", 2}}, {Event: itemAdded{"z", 3}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	_, err = st.Append(ctx, id, platform.Exact(1), []platform.Envelope{{Event: itemAdded{"w", 2}}})
	var ce *platform.ConcurrencyError
	if !errors.As(err, &ce) {
		t.Fatalf("want conflict, got %v", err)
	}
	t.Log(err)
	for e, err := range st.Read(ctx, id, platform.Revision{}) {
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v", e)
	}
	for e, err := range st.ReadAll(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("all %d %v", e.Position, e.Event)
	}
}
