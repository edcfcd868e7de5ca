package bridges_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/memory"
	"github.com/lexigram/events/embedded"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

type OrderPlaced struct{ Customer string }

// An outbound bridge sends the store's order events, as CloudEvents, to a
// broker: here the in-memory one, as in a user's test; with
// bridges.NewPublisher(ctx, "rabbitmq", settings) it is RabbitMQ.
func Example() {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir, _ := os.MkdirTemp("", "lexigram-bridge-example")
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(ctx, embedded.Options{DontListen: true, DataDir: dir, Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown(ctx)
	nc, _ := srv.Connect()
	defer nc.Close()
	js, _ := jetstream.New(nc)
	reg := platform.NewRegistry()
	platform.MustRegister[OrderPlaced](reg, "order.placed", 1)
	store, err := lxjs.New(ctx, js, lxjs.Options{Registry: reg, Codec: platform.JSON, Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}

	broker := memory.NewBroker()
	out, err := bridges.NewOutbound(ctx, js, broker.Publisher("orders"), bridges.OutboundOptions{
		Name: "orders-out", Stream: store.StreamName(), SubjectPrefix: store.SubjectPrefix(),
		AggregateTypes: []string{"order"}, Format: bridges.CloudEventsBinary, Source: "urn:shop", Logger: quiet,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer out.Stop(ctx)

	order := platform.StreamID{Type: "order", ID: "o-42"}
	if _, err := store.Append(ctx, order, platform.NoStream(), []platform.Envelope{{Event: OrderPlaced{Customer: "ada"}}}); err != nil {
		fmt.Println(err)
		return
	}
	deliveries, _ := broker.Subscriber("orders", 0).Subscribe(ctx)
	d := <-deliveries
	_ = d.Ack(ctx)
	fmt.Println(d.Key, d.Header["ce-type"], d.Header["ce-source"], d.Header["ce-subject"], d.Header["ce-lxversion"])
	fmt.Println(string(d.Data))
	// Output:
	// o-42 order.placed urn:shop order/o-42 1
	// {"Customer":"ada"}
}
