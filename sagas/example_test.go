package sagas_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/handlers"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
)

// The seed's OrderFulfillmentSaga: reserve the stock, take the payment
// and wait (at most ten minutes) for the payment service to confirm it,
// ship; a failure undoes what was done, newest first.
type Fulfillment struct {
	OrderID     string
	Amount      int64
	Reservation string
	PaymentID   string
}

type (
	ReserveStock struct{ OrderID string }
	ReleaseStock struct{ Reservation string }
	TakePayment  struct {
		OrderID string
		Amount  int64
	}
	RefundPayment struct{ PaymentID string }
	ShipOrder     struct{ OrderID string }

	// PaymentCaptured is the payment service's event.
	PaymentCaptured struct {
		OrderID   string
		PaymentID string
	}
)

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "lexigram-saga-example")
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.DiscardHandler)
	srv, _ := embedded.Start(ctx, embedded.Options{Port: embedded.RandomPort, DontListen: true, DataDir: dir, Logger: quiet})
	defer srv.Shutdown(ctx)
	nc, _ := srv.Connect()
	js, _ := jetstream.New(nc)

	reg := platform.NewRegistry()
	platform.MustRegister[ReserveStock](reg, "stock.reserve", 1)
	platform.MustRegister[ReleaseStock](reg, "stock.release", 1)
	platform.MustRegister[TakePayment](reg, "payment.take", 1)
	platform.MustRegister[RefundPayment](reg, "payment.refund", 1)
	platform.MustRegister[ShipOrder](reg, "order.ship", 1)
	platform.MustRegister[PaymentCaptured](reg, "payment.captured", 1)
	events, _ := lxjs.New(ctx, js, lxjs.Options{Registry: reg, Logger: quiet})
	idem, _ := handlers.OpenIdempotencyBucket(ctx, js, handlers.IdempotencyBucketOptions{})
	commands := handlers.NewCommandBus(handlers.Options{Registry: reg, Logger: quiet,
		Middleware: []handlers.Middleware{handlers.Idempotency(idem, handlers.IdempotencyOptions{})}})
	done := make(chan string, 10)
	_ = handlers.HandleCommand(commands, func(_ context.Context, c ReserveStock) error { done <- "reserved"; return nil })
	_ = handlers.HandleCommand(commands, func(_ context.Context, c ReleaseStock) error { done <- "released"; return nil })
	_ = handlers.HandleCommand(commands, func(ctx context.Context, c TakePayment) error {
		// The payment service confirms with an event, later.
		_, err := events.Append(ctx, platform.StreamID{Type: "payment", ID: "pay-" + c.OrderID}, platform.NoStream(),
			[]platform.Envelope{{Event: PaymentCaptured{OrderID: c.OrderID, PaymentID: "pay-" + c.OrderID}}})
		done <- "payment requested"
		return err
	})
	_ = handlers.HandleCommand(commands, func(_ context.Context, c RefundPayment) error { done <- "refunded"; return nil })
	_ = handlers.HandleCommand(commands, func(_ context.Context, c ShipOrder) error {
		return errors.New("the carrier refuses the parcel")
	})

	saga := sagas.Define[Fulfillment]("order-fulfillment").
		Step("reserve-inventory", func(ctx context.Context, sc *sagas.Context[Fulfillment]) error {
			if _, err := sc.Send(ctx, ReserveStock{sc.Data.OrderID}); err != nil {
				return err
			}
			sc.Data.Reservation = "res-" + sc.Data.OrderID // kept for the compensation
			return nil
		}, sagas.Compensation(func(ctx context.Context, sc *sagas.Context[Fulfillment]) error {
			_, err := sc.Send(ctx, ReleaseStock{sc.Data.Reservation})
			return err
		})).
		Step("take-payment", func(ctx context.Context, sc *sagas.Context[Fulfillment]) error {
			_, err := sc.Send(ctx, TakePayment{sc.Data.OrderID, sc.Data.Amount})
			return err
		}).
		Wait("payment-captured", sagas.On("payment",
			func(e PaymentCaptured, _ platform.Envelope) string { return e.OrderID }, // the association key
			func(_ context.Context, sc *sagas.Context[Fulfillment], e PaymentCaptured) error {
				sc.Data.PaymentID = e.PaymentID
				done <- "paid"
				return nil
			}),
			sagas.Within[Fulfillment](10*time.Minute), // else: TIMED_OUT, and compensate
			sagas.Compensation(func(ctx context.Context, sc *sagas.Context[Fulfillment]) error {
				_, err := sc.Send(ctx, RefundPayment{sc.Data.PaymentID})
				return err
			})).
		Step("ship", func(ctx context.Context, sc *sagas.Context[Fulfillment]) error {
			_, err := sc.Send(ctx, ShipOrder{sc.Data.OrderID})
			return sagas.Fail(err) // a refusal is final: compensate
		})

	store, _ := sagas.NewKVStore(ctx, js, sagas.KVOptions{})
	manager, _ := sagas.NewManager(ctx, js, store, sagas.Options{Commands: commands, Events: events, Logger: quiet})
	if err := manager.Register(saga); err != nil {
		fmt.Println(err)
		return
	}
	runCtx, stop := context.WithCancel(ctx)
	go manager.Run(runCtx)
	defer stop()

	in, _ := manager.Start(ctx, "order-fulfillment", "order-42", Fulfillment{OrderID: "order-42", Amount: 1999})
	for range 5 {
		fmt.Println(<-done)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if in, _ = manager.Get(ctx, in.ID); in.State.Finished() {
			break
		}
	}
	fmt.Println(in.State)
	// Output:
	// reserved
	// payment requested
	// paid
	// refunded
	// released
	// COMPENSATED
}
