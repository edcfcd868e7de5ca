package orders

import (
	"context"
	"errors"
	"time"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
)

// FulfillmentSaga is the saga type's name (lexigram sagas ls, /api/sagas).
const FulfillmentSaga = "order-fulfillment"

// PaymentTimeout is how long the saga waits for the payment's capture
// before it times out and compensates.
const PaymentTimeout = 10 * time.Minute

// Fulfillment is the saga's data.
type Fulfillment struct {
	OrderID    string `json:"order_id"`
	TotalCents int64  `json:"total_cents"`
	PaymentID  string `json:"payment_id,omitempty"`
}

// The warehouse's and the payment service's commands and events, which
// stand in for other teams' services here: each is a small aggregate.
type (
	ReserveStock struct {
		OrderID string `json:"order_id"`
	}
	ReleaseStock struct {
		OrderID string `json:"order_id"`
	}
	TakePayment struct {
		OrderID     string `json:"order_id"`
		AmountCents int64  `json:"amount_cents"`
	}
	RefundPayment struct {
		OrderID string `json:"order_id"`
	}

	StockReserved struct {
		OrderID string `json:"order_id"`
	}
	StockReleased struct {
		OrderID string `json:"order_id"`
	}
	PaymentCaptured struct {
		OrderID     string `json:"order_id"`
		PaymentID   string `json:"payment_id"`
		AmountCents int64  `json:"amount_cents"`
	}
	PaymentRefunded struct {
		PaymentID string `json:"payment_id"`
	}
)

// Reservation is the warehouse's hold on an order's goods (aggregate
// "stock", ID the order's).
type Reservation struct {
	platform.AggregateRoot
	Released bool
}

func (r *Reservation) AggregateType() string { return "stock" }
func (r *Reservation) Apply(event any) {
	if _, ok := event.(StockReleased); ok {
		r.Released = true
	}
}

// Payment is a captured payment (aggregate "payment", ID "pay-<order>").
type Payment struct {
	platform.AggregateRoot
	Refunded bool
}

func (p *Payment) AggregateType() string { return "payment" }
func (p *Payment) Apply(event any) {
	if _, ok := event.(PaymentRefunded); ok {
		p.Refunded = true
	}
}

func paymentID(orderID string) string { return "pay-" + orderID }

// fulfillment is the seed's OrderFulfillmentSaga: a confirmed order's
// stock is reserved and its payment taken; once the payment service
// reports the capture (within PaymentTimeout) the order ships. A failure
// for good, or the timeout, refunds and releases what was done and
// cancels the order.
func fulfillment() *sagas.Definition[Fulfillment] {
	send := func(cmd func(f *Fulfillment) any) sagas.StepFunc[Fulfillment] {
		return func(ctx context.Context, sc *sagas.Context[Fulfillment]) error {
			_, err := sc.Send(ctx, cmd(sc.Data))
			return err
		}
	}
	return sagas.Define[Fulfillment](FulfillmentSaga).
		StartOn(sagas.When[Fulfillment](AggregateType, func(e OrderConfirmed, env platform.Envelope) (string, Fulfillment, bool) {
			return env.Stream.ID, Fulfillment{OrderID: env.Stream.ID, TotalCents: e.TotalCents}, true
		})).
		Step("reserve-stock", send(func(f *Fulfillment) any { return ReserveStock{OrderID: f.OrderID} }),
			sagas.Compensation(func(ctx context.Context, sc *sagas.Context[Fulfillment]) error {
				if _, err := sc.Send(ctx, ReleaseStock{OrderID: sc.Data.OrderID}); err != nil {
					return err
				}
				_, err := sc.Send(ctx, CancelOrder{ID: sc.Data.OrderID, Reason: "fulfilment failed"})
				return err
			})).
		Step("take-payment", send(func(f *Fulfillment) any { return TakePayment{OrderID: f.OrderID, AmountCents: f.TotalCents} }),
			sagas.Compensation(send(func(f *Fulfillment) any { return RefundPayment{OrderID: f.OrderID} }))).
		Wait("payment-captured", sagas.On("payment",
			func(e PaymentCaptured, _ platform.Envelope) string { return e.OrderID },
			func(_ context.Context, sc *sagas.Context[Fulfillment], e PaymentCaptured) error {
				sc.Data.PaymentID = e.PaymentID
				return nil
			}),
			sagas.Within[Fulfillment](PaymentTimeout)).
		Step("ship", func(ctx context.Context, sc *sagas.Context[Fulfillment]) error {
			_, err := sc.Send(ctx, ShipOrder{ID: sc.Data.OrderID, PaymentID: sc.Data.PaymentID})
			if errors.Is(err, platform.ErrInvalidArgument) {
				return sagas.Fail(err) // the order refuses to ship (it was cancelled): compensate
			}
			return err
		})
}

// handleServices registers the warehouse's and the payment service's
// command handlers on cmds. Each bears being run twice, as a saga step
// may be.
func (d *domain) handleServices(cmds *handlers.CommandBus) error {
	return errors.Join(
		handlers.HandleCommand(cmds, func(ctx context.Context, c ReserveStock) error {
			if _, err := d.reservations.Load(ctx, c.OrderID); err == nil || !errors.Is(err, platform.ErrStreamNotFound) {
				return err // reserved already, or the store failed
			}
			r := &Reservation{}
			r.SetID(c.OrderID)
			platform.Raise(r, StockReserved(c))
			return handlers.Track(ctx, d.reservations, r)
		}),
		handlers.HandleCommand(cmds, func(ctx context.Context, c ReleaseStock) error {
			r, err := handlers.Load(ctx, d.reservations, c.OrderID)
			if errors.Is(err, platform.ErrStreamNotFound) {
				return nil // nothing was reserved
			}
			if err == nil && !r.Released {
				platform.Raise(r, StockReleased(c))
			}
			return err
		}),
		handlers.HandleCommand(cmds, func(ctx context.Context, c TakePayment) error {
			id := paymentID(c.OrderID)
			if _, err := d.payments.Load(ctx, id); err == nil || !errors.Is(err, platform.ErrStreamNotFound) {
				return err
			}
			p := &Payment{}
			p.SetID(id)
			// The capture is immediate here; a real service reports it
			// later, and the saga waits for it either way.
			platform.Raise(p, PaymentCaptured{OrderID: c.OrderID, PaymentID: id, AmountCents: c.AmountCents})
			return handlers.Track(ctx, d.payments, p)
		}),
		handlers.HandleCommand(cmds, func(ctx context.Context, c RefundPayment) error {
			p, err := handlers.Load(ctx, d.payments, paymentID(c.OrderID))
			if errors.Is(err, platform.ErrStreamNotFound) {
				return nil // nothing was taken
			}
			if err == nil && !p.Refunded {
				platform.Raise(p, PaymentRefunded{PaymentID: p.ID()})
			}
			return err
		}),
	)
}
