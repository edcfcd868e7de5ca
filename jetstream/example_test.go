package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/kvsnapshot"
	"github.com/lexigram/events/platform"
)

type OrderPlaced struct{ Customer string }
type ItemAdded struct{ SKU string }

type Order struct {
	platform.AggregateRoot
	State struct {
		Customer string
		Items    []string
	}
}

func (o *Order) AggregateType() string { return "order" }

func (o *Order) Apply(event any) {
	switch e := event.(type) {
	case OrderPlaced:
		o.State.Customer = e.Customer
	case ItemAdded:
		o.State.Items = append(o.State.Items, e.SKU)
	}
}

func (o *Order) AddItem(sku string) error {
	if o.State.Customer == "" {
		return errors.New("place the order first")
	}
	platform.Raise(o, ItemAdded{SKU: sku})
	return nil
}

// The README's example: an aggregate saved to and loaded from JetStream.
func Example() {
	ctx := context.Background()
	reg := platform.NewRegistry() // the README uses platform.DefaultRegistry
	platform.MustRegister[OrderPlaced](reg, "order.placed", 1)
	platform.MustRegister[ItemAdded](reg, "order.item-added", 1)

	dir, _ := os.MkdirTemp("", "lexigram-example")
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(ctx, embedded.Options{DontListen: true, DataDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown(ctx)
	nc, _ := srv.Connect()
	defer nc.Close()
	js, _ := jetstream.New(nc)
	store, err := lxjs.New(ctx, js, lxjs.Options{Registry: reg})
	if err != nil {
		fmt.Println(err)
		return
	}
	snaps, _ := kvsnapshot.NewSnapshotStore(ctx, js, kvsnapshot.SnapshotOptions{})
	orders := platform.NewRepository(store, func() *Order { return &Order{} },
		platform.RepositoryOptions{Snapshots: snaps})

	o := &Order{}
	o.SetID("order-42")
	platform.Raise(o, OrderPlaced{Customer: "ada"})
	_ = o.AddItem("book")
	if _, err := orders.Save(ctx, o); err != nil {
		fmt.Println(err)
		return
	}
	_, res, err := orders.Update(ctx, "order-42", func(o *Order) error { return o.AddItem("pen") })
	if err != nil {
		fmt.Println(err)
		return
	}
	loaded, err := orders.Load(ctx, "order-42")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(loaded.State.Customer, loaded.State.Items, loaded.Version(), res.LastPosition)
	// Output: ada [book pen] 3 3
}
