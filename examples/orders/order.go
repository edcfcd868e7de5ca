package orders

import (
	"errors"
	"fmt"
	"slices"

	"github.com/lexigram/events/platform"
)

// AggregateType is the orders' aggregate type: their events are stored
// on <prefix>.order.<id>.
const AggregateType = "order"

// Status is where an order is in its life.
type Status string

const (
	StatusOpen      Status = "open"      // placed; items can be added and removed
	StatusConfirmed Status = "confirmed" // the customer confirmed it; fulfilment starts
	StatusShipped   Status = "shipped"   // fulfilment finished
	StatusCancelled Status = "cancelled" // by the customer, or by a failed fulfilment
)

// The rules' bounds.
const (
	MaxLines      = 100
	MaxQuantity   = 1000
	MaxPriceCents = 100_000_000 // a million in the currency's main unit
)

// The rules an order enforces, for errors.Is in process. Over NATS and
// HTTP the error's code (LXE-001) and text carry them.
var (
	ErrAlreadyPlaced = errors.New("the order is already placed")
	ErrNotOpen       = errors.New("the order is no longer open")
	ErrEmpty         = errors.New("the order has no items")
	ErrNoSuchItem    = errors.New("the order has no such item")
)

// The order's events.
type (
	OrderPlaced struct {
		Customer string `json:"customer"`
	}
	ItemAdded struct {
		SKU        string `json:"sku"`
		Quantity   int    `json:"quantity"`
		PriceCents int64  `json:"price_cents"` // per unit
	}
	ItemRemoved struct {
		SKU string `json:"sku"`
	}
	OrderConfirmed struct {
		TotalCents int64 `json:"total_cents"`
	}
	OrderShipped struct {
		PaymentID string `json:"payment_id"`
	}
	OrderCancelled struct {
		Reason string `json:"reason"`
	}
)

// Line is one SKU of an order.
type Line struct {
	SKU        string `json:"sku"`
	Quantity   int    `json:"quantity"`
	PriceCents int64  `json:"price_cents"`
}

// Order is the aggregate. Its state is exported so that snapshots carry
// it.
type Order struct {
	platform.AggregateRoot
	State OrderState
}

// OrderState is what an order's events add up to.
type OrderState struct {
	Customer string
	Status   Status
	Lines    []Line
}

// AggregateType names the aggregate in the store.
func (o *Order) AggregateType() string { return AggregateType }

// SnapshotState and SnapshotSchemaVersion make orders snapshotted
// (platform.Snapshotter): a long order loads from its latest snapshot.
func (o *Order) SnapshotState() any         { return &o.State }
func (o *Order) SnapshotSchemaVersion() int { return 1 }

// Apply changes the state for one event, new or from the history.
func (o *Order) Apply(event any) {
	s := &o.State
	switch e := event.(type) {
	case OrderPlaced:
		s.Customer, s.Status = e.Customer, StatusOpen
	case ItemAdded:
		if i := s.line(e.SKU); i >= 0 {
			s.Lines[i].Quantity += e.Quantity
		} else {
			s.Lines = append(s.Lines, Line(e))
		}
	case ItemRemoved:
		if i := s.line(e.SKU); i >= 0 {
			s.Lines = slices.Delete(s.Lines, i, i+1)
		}
	case OrderConfirmed:
		s.Status = StatusConfirmed
	case OrderShipped:
		s.Status = StatusShipped
	case OrderCancelled:
		s.Status = StatusCancelled
	}
}

func (s *OrderState) line(sku string) int {
	return slices.IndexFunc(s.Lines, func(l Line) bool { return l.SKU == sku })
}

// TotalCents is the order's value.
func (s *OrderState) TotalCents() int64 {
	var total int64
	for _, l := range s.Lines {
		total += int64(l.Quantity) * l.PriceCents
	}
	return total
}

// Place opens a new order for a customer.
func (o *Order) Place(customer string) error {
	if o.State.Status != "" {
		return platform.Errorf(platform.CodeInvalidArgument, "order %q is already placed (it is %s): %w: place a new one with another id", o.ID(), o.State.Status, ErrAlreadyPlaced)
	}
	if customer == "" {
		return platform.Errorf(platform.CodeInvalidArgument, "order %q: customer is empty: name the customer placing it", o.ID())
	}
	platform.Raise(o, OrderPlaced{Customer: customer})
	return nil
}

// AddItem adds quantity units of a SKU at a unit price; a SKU already in
// the order must keep its price.
func (o *Order) AddItem(sku string, quantity int, priceCents int64) error {
	if err := o.open("add an item"); err != nil {
		return err
	}
	if i := o.State.line(sku); i >= 0 {
		l := o.State.Lines[i]
		if l.PriceCents != priceCents {
			return platform.Errorf(platform.CodeInvalidArgument, "order %q has sku %q at price_cents %d, not %d: remove the item first to change its price",
				o.ID(), sku, l.PriceCents, priceCents)
		}
		if l.Quantity+quantity > MaxQuantity {
			return platform.Errorf(platform.CodeInvalidArgument, "order %q: sku %q would have quantity %d, more than %d: order at most %d more",
				o.ID(), sku, l.Quantity+quantity, MaxQuantity, MaxQuantity-l.Quantity)
		}
	} else if len(o.State.Lines) >= MaxLines {
		return platform.Errorf(platform.CodeInvalidArgument, "order %q has %d items already, the most an order takes: place another order", o.ID(), MaxLines)
	}
	platform.Raise(o, ItemAdded{SKU: sku, Quantity: quantity, PriceCents: priceCents})
	return nil
}

// RemoveItem removes a SKU, all its units.
func (o *Order) RemoveItem(sku string) error {
	if err := o.open("remove an item"); err != nil {
		return err
	}
	if o.State.line(sku) < 0 {
		return platform.Errorf(platform.CodeInvalidArgument, "order %q has no sku %q: %w: name one of its items (%s)", o.ID(), sku, ErrNoSuchItem, o.skus())
	}
	platform.Raise(o, ItemRemoved{SKU: sku})
	return nil
}

// Confirm closes the order to changes; fulfilment starts.
func (o *Order) Confirm() error {
	if err := o.open("confirm it"); err != nil {
		return err
	}
	if len(o.State.Lines) == 0 {
		return platform.Errorf(platform.CodeInvalidArgument, "order %q: %w: add an item before confirming it", o.ID(), ErrEmpty)
	}
	platform.Raise(o, OrderConfirmed{TotalCents: o.State.TotalCents()})
	return nil
}

// Cancel cancels an order that has not shipped. Cancelling a cancelled
// order changes nothing, so a retried cancel is harmless.
func (o *Order) Cancel(reason string) error {
	switch o.State.Status {
	case StatusCancelled:
		return nil
	case StatusShipped:
		return platform.Errorf(platform.CodeInvalidArgument, "order %q has shipped: %w: it can no longer be cancelled; return the goods instead", o.ID(), ErrNotOpen)
	}
	platform.Raise(o, OrderCancelled{Reason: reason})
	return nil
}

// Ship marks a confirmed order shipped. Shipping a shipped order changes
// nothing: the saga's step may run twice.
func (o *Order) Ship(paymentID string) error {
	switch o.State.Status {
	case StatusShipped:
		return nil
	case StatusConfirmed:
		platform.Raise(o, OrderShipped{PaymentID: paymentID})
		return nil
	}
	return platform.Errorf(platform.CodeInvalidArgument, "order %q is %s: only a confirmed order ships", o.ID(), o.State.Status)
}

// open refuses a change to an order that is no longer open.
func (o *Order) open(what string) error {
	if o.State.Status != StatusOpen {
		return platform.Errorf(platform.CodeInvalidArgument, "order %q is %s: %w: cannot %s; place a new order", o.ID(), o.State.Status, ErrNotOpen, what)
	}
	return nil
}

func (o *Order) skus() string {
	if len(o.State.Lines) == 0 {
		return "it has none"
	}
	out := ""
	for i, l := range o.State.Lines {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%q", l.SKU)
	}
	return out
}
