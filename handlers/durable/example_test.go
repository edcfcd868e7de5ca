package durable_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/handlers/durable"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

type InvoiceIssued struct{ Amount int }

// A durable handler that sends invoices, and the DLQ it fills when an
// invoice cannot be sent.
func Example() {
	ctx := context.Background()
	reg := platform.NewRegistry()
	platform.MustRegister[InvoiceIssued](reg, "invoice.issued", 1)

	dir, _ := os.MkdirTemp("", "lexigram-durable-example")
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
	quiet := slog.New(slog.DiscardHandler)
	store, err := lxjs.New(ctx, js, lxjs.Options{Registry: reg, Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}

	sent := make(chan int)
	send := func(ctx context.Context, e platform.Envelope) error {
		inv := e.Event.(InvoiceIssued)
		if inv.Amount < 0 {
			return durable.Permanent(errors.New("negative amount")) // no retry can fix it
		}
		sent <- inv.Amount
		return nil
	}
	h, err := durable.New(ctx, js, store, "invoice-mailer", send, durable.Options{
		AggregateTypes: []string{"invoice"},
		Logger:         quiet,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Stop(ctx)

	for i, amount := range []int{-5, 120} {
		id := platform.StreamID{Type: "invoice", ID: fmt.Sprint("inv-", i)}
		if _, err := store.Append(ctx, id, platform.NoStream(), []platform.Envelope{{Event: InvoiceIssued{Amount: amount}}}); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println("sent", <-sent)
	// The handler writes the entry before it terminates the event, and
	// handles events in order: the -5 invoice is in the DLQ by now.
	for entry, err := range h.DLQ().List(ctx, "invoice-mailer") {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("dead letter:", entry.ID.Handler, entry.Reason, entry.Error, "after", entry.Deliveries, "delivery")
	}
	// Output:
	// sent 120
	// dead letter: invoice-mailer terminated negative amount after 1 delivery
}
